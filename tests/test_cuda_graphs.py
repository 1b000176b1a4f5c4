"""`trainer.cuda_graph: true`: the training forward and backward replayed as CUDA graphs.

What the CPU can check: the zero padding that buckets variable lengths into a few shapes is invisible
to the network (float64, layer norm, both directions), and a run without a GPU or with mixed precision
is refused with a clear error. On a GPU (benchmarks/gpu_session.py runs this file there) the graphed
step matches the eager one: outputs and every gradient within 1e-4 relative.
"""

from __future__ import annotations

import types

import pytest
import torch

from suite import config
from suite.cuda_graphs import BUCKET, GraphedTraining, pad_sequence_axis
from suite.errors import ConfigError
from tests.conftest import run_suite

VOCAB, CLASSES = 18, 10


def network(model: str, overrides: list[str]):
    from suite.run import build_model

    cfg = config.resolve("listops", model, "smoke", overrides=overrides)
    shapes = types.SimpleNamespace(d_input=VOCAB, d_output=CLASSES, encoder="embedding")
    torch.manual_seed(0)
    return build_model(cfg, shapes)


def test_padding_goes_on_the_sequence_axis_up_to_a_multiple():
    tokens = torch.ones(3, 300, dtype=torch.long)
    pairs = torch.ones(3, 2, 300, dtype=torch.long)
    feats = torch.ones(3, 300, 5)
    assert pad_sequence_axis(tokens, 256).shape == (3, 512)
    assert pad_sequence_axis(pairs, 256).shape == (3, 2, 512)
    assert pad_sequence_axis(feats, 256).shape == (3, 512, 5)
    assert pad_sequence_axis(tokens, 256)[:, 300:].abs().sum() == 0
    assert pad_sequence_axis(feats, 256)[:, :300].equal(feats)
    same = torch.ones(2, 512, dtype=torch.long)
    assert pad_sequence_axis(same, 256) is same


@pytest.mark.parametrize("model,bidirectional", [("s4d", True), ("liquid_s4_kb", False), ("s4", True)])
def test_zero_padding_past_the_lengths_changes_no_output(model, bidirectional):
    """Every position past a sequence's length is zeroed before each SSM layer and left out of the
    pooling, so padding to a bucket gives the same logits (layer norm: no batch statistics). Liquid-S4 in its
    exact mode: the reference mode's term is built from the last positions of the padded batch, as the public
    code's is, so padding changes it (README, CUDA graphs)."""
    liquid = ["model.liquid_mode=exact"] if model.startswith("liquid") else []
    net = network(model, ["model.norm=layer", f"model.bidirectional={str(bidirectional).lower()}", *liquid]).double()
    x = torch.randint(1, VOCAB, (4, 300))
    lengths = torch.tensor([300, 120, 257, 1])
    padded = net(pad_sequence_axis(x, BUCKET), lengths)  # first: the S4 kernels grow to the longer length
    ref = net(x, lengths)
    torch.testing.assert_close(padded, ref, rtol=1e-9, atol=1e-9)


def test_cuda_graph_with_mixed_precision_is_refused():
    with pytest.raises(ConfigError, match="trainer.precision"):
        config.resolve("listops", "s4d", "smoke", overrides=["trainer.cuda_graph=true", "trainer.precision=bf16-mixed"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_cuda_graph_without_a_gpu_is_a_clean_config_error(tmp_path):
    result = run_suite("run", "--task", "listops", "--model", "s4d", "--preset", "smoke",
                       "--set", "trainer.cuda_graph=true", "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "trainer.cuda_graph = true needs a CUDA GPU" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("model", ["s4d", "s4", "liquid_s4_pb", "liquid_s4_kb"])
def test_graphed_training_step_matches_eager_on_the_gpu(model):
    net = network(model, ["model.dropout=0.0"]).cuda().train()
    graphed = GraphedTraining(net)
    y = torch.randint(0, CLASSES, (8,), device="cuda")
    for L in (300, 700, 300):  # two buckets, then the first graph again
        x = torch.randint(1, VOCAB, (8, L), device="cuda")
        lengths = torch.randint(1, L + 1, (8,), device="cuda")
        results = []
        for forward in (lambda: graphed(x, lengths), lambda: net(pad_sequence_axis(x, BUCKET), lengths)):
            net.zero_grad(set_to_none=True)
            out = forward()
            torch.nn.functional.cross_entropy(out, y).backward()
            results.append([out.detach()] + [p.grad.clone() for p in net.parameters()])
        for a, b in zip(*results):
            assert ((a - b).abs().max() / b.abs().max().clamp(min=1e-12)).item() < 1e-4
    assert len(graphed.graphs) == 2
