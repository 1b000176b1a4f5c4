"""The KB tap map of a zero-padded batch (models/liquid_reference.py `kb_tap_map_ref`, its Triton twin
models/ops/kb_taps_triton.py; docs/liquid.md, "Padded batches"): the public KB term's product of spectra on grids
of L0 + 1 and 2 L0 points, written as a convolution on the padded 2L grid whose kernel is G applied to the S4
kernel's first L0 + 1 taps, for an L0 given as a device tensor."""

from __future__ import annotations

import pytest
import torch

from models.liquid_reference import kb_tap_map, kb_tap_map_ref, padded_kb_spectrum_kernel, sin_pi
from models.ops import kb_taps_triton
from models.ops._triton import INTERPRET
from tests.models.triton_interpreter import run_interpreted

needs_triton = pytest.mark.skipif(kb_taps_triton.triton is None, reason="triton is not installed")


def two_sided_by_ffts(k1: torch.Tensor, L0: int, L: int) -> torch.Tensor:
    """The oracle, with torch.fft at the true length: h = irfft_{2 L0}(fft_{L0+1}(k1[:L0 + 1])); the taps h[d],
    d < L0, at lags d and h[2 L0 - e], 0 < e < L0, at lags -e of the 2L grid; (H, 2L)."""
    h = torch.fft.irfft(torch.fft.fft(k1[:, : L0 + 1]), n=2 * L0)
    out = torch.zeros(k1.shape[0], 2 * L, dtype=k1.dtype)
    out[:, :L0] = h[:, :L0]
    e = torch.arange(1, L0)
    out[:, 2 * L - e] = h[:, 2 * L0 - e]
    return out


@pytest.mark.parametrize("L,L0", [(8, 1), (8, 2), (8, 8), (64, 17), (64, 63), (300, 299), (300, 2), (2048, 1900),
                                  (2048, 2048)])
def test_the_tap_map_is_the_product_on_the_two_grids(L, L0):
    """G k1 against the FFTs at the true length, float64, to 1e-12 of the largest tap (1e-13 measured at L0 =
    2048): from a one-tap batch to the ListOps length, the full and a shorter batch."""
    torch.manual_seed(0)
    k1 = torch.randn(3, L + 1, dtype=torch.float64)
    k1[:, L0 + 1:] = 0
    want = two_sided_by_ffts(k1, L0, L)
    got = padded_kb_spectrum_kernel(k1, torch.tensor(L0), L, use_triton=False)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12 * want.abs().max().item())


def test_the_reduced_sine_keeps_its_precision_next_to_its_zeros():
    """sin(pi r / N) near r = k N, where a float64 argument pi r / N would lose the small difference."""
    N = torch.tensor(2 * 2048 * 2049)
    r = torch.tensor([1, N - 1, N + 1, 2 * N - 1, 7 * N + 3, -1, -N - 2])
    want = torch.tensor([1.0, 1.0, -1.0, -1.0, -3.0, -1.0, 2.0], dtype=torch.float64) * torch.pi / N.double()
    torch.testing.assert_close(sin_pi(r, N), torch.sin(want), rtol=1e-15, atol=0)  # sin x = x to 1e-26 here


def test_the_map_is_built_once_per_batch_scope_and_shared_by_the_layers(monkeypatch):
    """Inside one `batch_length` scope every layer reads the same G, built once; a new scope (a new batch) builds
    it again, for its own length; a length other than the scope's is not served the scope's map."""
    from models import liquid_reference
    from models.padding import batch_length

    builds = []
    monkeypatch.setattr(liquid_reference, "kb_tap_map", lambda L0, L, t: builds.append(int(L0)) or kb_tap_map_ref(L0, L))
    k1 = torch.randn(2, 41, dtype=torch.float64)
    k1[:, 31:] = 0
    net = torch.nn.Module()
    for L0 in (torch.tensor(30), torch.tensor(12)):
        with batch_length(net, L0):
            for _ in range(3):  # three layers
                got = padded_kb_spectrum_kernel(k1, L0, 40, False)
                torch.testing.assert_close(got, two_sided_by_ffts(k1, int(L0), 40), rtol=0, atol=1e-12)
            other = torch.tensor(7)
            padded_kb_spectrum_kernel(k1, other, 40, False)
        k1[:, 13:] = 0
    assert builds == [30, 7, 12, 7]
    padded_kb_spectrum_kernel(k1, torch.tensor(12), 40, False)  # outside a scope: built at each call
    padded_kb_spectrum_kernel(k1, torch.tensor(12), 40, False)
    assert builds[4:] == [12, 12]


def test_cpu_lengths_take_the_pytorch_map():
    assert not kb_taps_triton.supported(torch.tensor(5.0), 9)
    assert not kb_taps_triton.supported(torch.tensor(5), kb_taps_triton.MAX_L + 1)
    if not INTERPRET:
        assert not kb_taps_triton.supported(torch.tensor(5), 9)
        assert torch.equal(kb_tap_map(torch.tensor(5), 9, use_triton=True), kb_tap_map_ref(torch.tensor(5), 9))


INTERPRETED_CHECK = """
import json, torch, triton
from models.liquid_reference import kb_tap_map_ref
from models.ops import kb_taps_triton
out = {}
for L, L0 in ((8, 1), (40, 33), (40, 40), (130, 129), (130, 3)):
    L0 = torch.tensor(L0)
    assert kb_taps_triton.supported(L0, L)
    a, b = kb_taps_triton.kb_tap_map(L0, L), kb_tap_map_ref(L0, L)
    out[f"{L}/{int(L0)}"] = float((a - b).abs().max() / b.abs().max())
# the longest length the kernel takes, where its int32 phases come closest to 2^31: rows 0..15 only
L, cols = kb_taps_triton.MAX_L, [0, 1, 4097, 15446, 16383, 16384]
rows = {}
for L0 in (15447, 16384):
    G = torch.zeros(16, L + 1, dtype=torch.float64)
    B = kb_taps_triton.BLOCK_N
    kb_taps_triton._kb_taps[(16, triton.cdiv(L + 1, B))](G, torch.tensor([L0]), L, BLOCK_N=B)
    rows[L0] = G[:, cols].tolist()
print(json.dumps({"err": out, "rows": rows, "cols": cols}))
"""


@needs_triton
def test_the_triton_map_is_its_twin_under_the_interpreter():
    result = run_interpreted(INTERPRETED_CHECK)
    for case, err in result["err"].items():
        assert err < 1e-12, (case, err)
    L, cols = kb_taps_triton.MAX_L, result["cols"]
    for L0, got in result["rows"].items():  # column n of G is the two-sided kernel of the unit tap e_n
        units = torch.zeros(len(cols), L + 1, dtype=torch.float64)
        units[range(len(cols)), cols] = 1.0
        want = two_sided_by_ffts(units, int(L0), L)[:, :16].t()
        torch.testing.assert_close(torch.tensor(got, dtype=torch.float64), want, rtol=0, atol=1e-13)


@needs_triton
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("L,L0", [(2048, 1900), (2048, 2048), (512, 1), (768, 700)])
def test_the_triton_map_is_its_twin_on_the_gpu(L, L0):
    L0 = torch.tensor(L0, device="cuda")
    assert kb_taps_triton.supported(L0, L)
    a, b = kb_taps_triton.kb_tap_map(L0, L), kb_tap_map_ref(L0, L)
    assert ((a - b).abs().max() / b.abs().max()).item() < 1e-12
