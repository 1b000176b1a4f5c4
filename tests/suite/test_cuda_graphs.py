"""`trainer.cuda_graph: true`: the training forward and backward replayed as CUDA graphs.

What the CPU can check: the zero padding that buckets variable lengths into a few shapes is invisible
to the network (float64, batch and layer norm, both directions, both liquid modes), and a run without a GPU or with mixed precision
is refused with a clear error. On a GPU (benchmarks/gpu_session.py runs this file there) the graphed
step matches the eager one: outputs and every gradient within 1e-4 relative.
"""

from __future__ import annotations

import types

import pytest
import torch

from models import liquid_reference
from models.padding import batch_length
from suite import config
from suite.train.cuda_graphs import BUCKET, GraphedTraining, KernelLengths, pad_sequence_axis, padded_length
from suite.errors import ConfigError
from tests.conftest import run_suite

VOCAB, CLASSES = 18, 10


def network(model: str, overrides: list[str]):
    from suite.train.build import build_model

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


def test_the_kernel_lengths_the_graphs_watch_follow_a_layer_that_grows():
    """The graphs are dropped when an S4 layer's kernel grows (its C~ then refers to a longer length): the lengths
    are read from the S4 layers, found once, and change when a longer input arrives."""
    net = network("s4", [])
    lengths = KernelLengths(net)
    assert lengths.layers and all(type(m).__name__ == "S4" for m in lengths.layers)
    before = lengths()
    net(torch.randint(0, VOCAB, (2, 2 * max(before) + 1)), None)
    assert all(b < a for b, a in zip(before, lengths())), (before, lengths())
    assert KernelLengths(network("s4d", []))() == ()  # S4D's kernel has no stored length


def test_padding_stops_at_the_length_the_kernels_were_built_for():
    """A 4000-step task (Retrieval, BIDMC) padded to 4096 would double every S4 kernel and train C~ at 8000 steps
    where the eager step trains it at 4000: the bucket padding stops at the kernels' room; an input that is longer
    already (the kernels grow for it anyway) is rounded up as usual."""
    assert padded_length(300, 256) == 512
    assert padded_length(3900, 256, room=4000) == 4000
    assert padded_length(3000, 256, room=4000) == 3072
    assert padded_length(4100, 256, room=4000) == 4352
    assert pad_sequence_axis(torch.ones(2, 3900, dtype=torch.long), 256, room=4000).shape == (2, 4000)
    net = network("s4", ["data.l_max=4000"])
    lengths = KernelLengths(net)
    assert lengths.room() == 4000 and lengths.room(rate=2.0) == 2000
    before = lengths()
    net(pad_sequence_axis(torch.randint(1, VOCAB, (2, 3900)), BUCKET, lengths.room()), torch.tensor([3900, 10]))
    assert lengths() == before
    net(pad_sequence_axis(torch.randint(1, VOCAB, (2, 3900)), BUCKET), torch.tensor([3900, 10]))  # uncapped
    assert lengths() != before
    assert KernelLengths(network("s4d", [])).room() is None


def test_the_padding_cap_follows_the_networks_rate():
    """At rate 2 (model.rate) an S4 kernel of length 1000 serves inputs of 500 steps: a 480-step batch is padded
    to 500, not to the 512 that would double the kernels."""
    net = network("s4", ["data.l_max=1000", "model.rate=2"])
    lengths = KernelLengths(net)
    assert net.rate == 2 and lengths.room(net.rate) == 500
    x = pad_sequence_axis(torch.randint(1, VOCAB, (2, 480)), BUCKET, lengths.room(net.rate))
    assert x.shape[-1] == 500
    before = lengths()
    net(x, torch.tensor([480, 7]))
    assert lengths() == before


def padded_and_unpadded(net, x, lengths, y):
    """Outputs and gradients of one training step on the batch as collated (padded to its longest sequence) and
    on the same batch zero-padded to the CUDA-graph bucket, given its true length (models/padding.py)."""
    results = []
    for padded in (True, False):
        net.zero_grad(set_to_none=True)
        if padded:
            with batch_length(net, lengths.max()):
                out = net(pad_sequence_axis(x, BUCKET), lengths)
        else:
            out = net(x, lengths)
        torch.nn.functional.cross_entropy(out, y).backward()
        results.append([out.detach()] + [p.grad.clone() for p in net.parameters()])
    return results


@pytest.mark.parametrize("model,bidirectional,liquid_mode", [
    ("s4d", True, None), ("s4", True, None),
    ("liquid_s4_pb", False, "reference"), ("liquid_s4_pb", True, "reference"),
    ("liquid_s4_kb", False, "reference"), ("liquid_s4_kb", True, "reference"),
    ("liquid_s4_kb", False, "exact"),
])
@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_bucket_padding_changes_no_output_and_no_gradient(model, bidirectional, liquid_mode, norm):
    """Every position past a sequence's length is zeroed before each SSM layer and left out of the pooling; the
    batch's own length (BatchNorm's statistics in training, the reference liquid term's combination window and
    FFT grids) is given as a device tensor: the bucket-padded step computes the collated batch's step (float64).
    Lengths 300, 37 and 2 take the padding to 512 and 256; 2 is below the liquid window's n_p (index wrap)."""
    liquid = [f"model.liquid_mode={liquid_mode}"] if liquid_mode else []
    net = network(model, [f"model.norm={norm}", f"model.bidirectional={str(bidirectional).lower()}",
                          "model.dropout=0.0", *liquid]).double().train()
    for lengths in ([300, 120, 257, 1], [37, 2, 5, 30], [2, 1, 1, 2]):
        lengths = torch.tensor(lengths)
        x = torch.randint(1, VOCAB, (4, int(lengths.max())))
        y = torch.randint(0, CLASSES, (4,))
        for a, b in zip(*padded_and_unpadded(net, x, lengths, y)):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("model", ["liquid_s4_pb", "liquid_s4_kb"])
def test_without_the_true_length_padding_changes_the_reference_term(model):
    """What the device-side length is for: the reference term read off the padded length is another term."""
    net = network(model, ["model.norm=layer", "model.dropout=0.0"]).double().train()
    x = torch.randint(1, VOCAB, (4, 300))
    lengths = torch.tensor([300, 120, 257, 1])
    padded, ref = net(pad_sequence_axis(x, BUCKET), lengths), net(x, lengths)
    assert (padded - ref).abs().max() > 1e-6


def test_the_reference_window_table_is_built_once_per_length_and_device():
    u = torch.randn(2, 3, 40)
    first = liquid_reference.reference_window(u, 2)
    assert (40, 2, u.device) in liquid_reference._WINDOWS
    table = liquid_reference._WINDOWS[(40, 2, u.device)]
    torch.testing.assert_close(liquid_reference.reference_window(u, 2), first)
    assert liquid_reference._WINDOWS[(40, 2, u.device)] is table


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


def gpu_network(model: str, overrides: list[str], d_input: int = VOCAB, d_output: int = CLASSES,
                encoder: str = "embedding"):
    from suite.train.build import build_model

    cfg = config.resolve("listops", model, "smoke", overrides=["model.dropout=0.0", *overrides])
    torch.manual_seed(0)
    shapes = types.SimpleNamespace(d_input=d_input, d_output=d_output, encoder=encoder)
    return build_model(cfg, shapes).cuda().train()


# (model, overrides, input kind): every path the default `suite run` takes on one GPU
GPU_CASES = [
    ("s4d", [], "tokens"), ("s4", [], "tokens"),
    ("liquid_s4_pb", [], "tokens"), ("liquid_s4_kb", [], "tokens"),  # reference mode, the default
    ("liquid_s4_pb", ["model.liquid_mode=exact"], "tokens"), ("liquid_s4_kb", ["model.liquid_mode=exact"], "tokens"),
    ("s4d", ["model.bidirectional=true"], "tokens"), ("liquid_s4_kb", ["model.bidirectional=true"], "tokens"),
    ("liquid_s4_pb", ["model.bidirectional=true"], "tokens"),
    ("s4d", ["model.decoder=retrieval"], "pairs"), ("liquid_s4_pb", ["model.decoder=retrieval"], "pairs"),
    ("s4d", ["model.norm=layer"], "regression"), ("liquid_s4_kb", ["model.norm=layer"], "regression"),
]


def gpu_batch(kind: str, L: int, gen: torch.Generator):
    """(x, y, lengths) on the GPU as a task's collate gives them: padded to the longest sequence."""
    B = 8
    if kind == "regression":  # BIDMC-like: fixed length, real features, one output
        x = torch.randn(B, L, 2, generator=gen)
        return x.cuda(), torch.randn(B, generator=gen).cuda(), None
    shape = (B, 2) if kind == "pairs" else (B,)
    lengths = torch.randint(1, L + 1, shape, generator=gen)
    lengths.view(-1)[0] = L
    x = torch.randint(1, VOCAB, (*shape, L), generator=gen)
    return x.cuda(), torch.randint(0, 2 if kind == "pairs" else CLASSES, (B,), generator=gen).cuda(), lengths.cuda()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("model,overrides,kind", GPU_CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("precision", [None, torch.bfloat16])
def test_graphed_training_step_matches_the_eager_step_on_the_gpu(model, overrides, kind, precision):
    """The network graphs (scope network) over bucket-padded batches against the eager step on the collated batch:
    outputs and every gradient within 1e-4 of the largest value in fp32 (4e-2 under bf16 autocast: the smoke
    network's outputs are ~1e-4, and bf16's rounding (2^-8) over its layers gave 2.9e-2 for s4 on an H200)."""
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # fp32 is fp32 on both sides
    regression = kind == "regression"
    net = gpu_network(model, overrides, d_input=2 if regression else VOCAB, d_output=1 if regression else
                      (2 if kind == "pairs" else CLASSES), encoder="linear" if regression else "embedding")
    graphed = GraphedTraining(net)
    gen = torch.Generator().manual_seed(1)
    tol = 1e-4 if precision is None else 4e-2
    for L in (300, 700, 290) if not regression else (512, 512):  # two buckets, then the first graph again
        x, y, lengths = gpu_batch(kind, L, gen)
        results = []
        for forward in (lambda: graphed(x, lengths), lambda: net(x, lengths)):
            net.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=precision, enabled=precision is not None):
                out = forward()
                loss = (torch.nn.functional.mse_loss(out.squeeze(-1), y) if regression
                        else torch.nn.functional.cross_entropy(out, y))
            loss.backward()
            results.append([out.detach().float()] + [p.grad.clone() for p in net.parameters()])
        for a, b in zip(*results):
            assert ((a - b).abs().max() / b.abs().max().clamp(min=1e-12)).item() < tol
    assert len(graphed.graphs) == (2 if not regression else 1)
