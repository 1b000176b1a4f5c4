"""Reference mode against numbers produced by the public Liquid-S4 layer (raminmh/liquid-s4, class S4,
liquid_kernel polyb / kb) with the same parameters and inputs, float64 on the CPU.

tests/golden/liquid_reference.{npz,json} are written by benchmarks/liquid_golden.py from a checkout of
the public code; the public PB term is cast to float32 by that code (`.float()`), hence ~3e-8 there.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.liquid import LiquidS4

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CASES = json.loads((GOLDEN / "liquid_reference.json").read_text())["cases"]
ARRAYS = np.load(GOLDEN / "liquid_reference.npz")


def layer_from_golden(name: str, mode: str = "reference") -> LiquidS4:
    """Our layer with the public layer's parameters (raw C; C~ recomputed for l_max)."""
    case = CASES[name]
    m = LiquidS4(case["d_model"], case["d_state"], bidirectional=case["bidirectional"], l_max=case["l_max"],
                 liquid_kernel=case["liquid_kernel"], liquid_degree=case["liquid_degree"], liquid_mode=mode).double()
    with torch.no_grad():
        for param in ("log_dt", "A_log_re", "A_im", "P", "B", "C", "D"):
            getattr(m, param).copy_(torch.from_numpy(ARRAYS[f"{name}/{param}"]))
        m.L.fill_(0)
        m._length = 0
        m._grow(case["l_max"])
        if mode == "reference":
            m.freeze_reference()
    return m


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_mode_reproduces_the_public_layer(name):
    m, case = layer_from_golden(name), CASES[name]
    u, y, y_linear = (torch.from_numpy(ARRAYS[f"{name}/{k}"]) for k in ("u", "y", "y_linear"))
    with torch.no_grad():
        out, liquid = m(u, rate=case["rate"]), m.liquid_term(u, rate=case["rate"])
    assert rel(liquid, y - y_linear) < 1e-6, "liquid term"  # the term alone: 3e-8 (PB), 6e-11 (KB)
    assert rel(out, y) < 1e-6, "layer output"
    assert rel(y, y_linear) > 1e-3  # the golden liquid term is not negligible: a wrong term cannot pass


def test_the_golden_liquid_term_is_not_the_exact_mode():
    """The reference term differs from the expansion: the golden numbers pin down the reference quirks."""
    name = "pb2_uni_rate1"
    u, y, y_linear = (torch.from_numpy(ARRAYS[f"{name}/{k}"]) for k in ("u", "y", "y_linear"))
    with torch.no_grad():
        assert rel(layer_from_golden(name, "exact").liquid_term(u), y - y_linear) > 0.1


@pytest.mark.parametrize("name", ["pb3_bi_rate1", "kb2_bi_rate2"])
def test_to_float64_keeps_the_frozen_complex_coefficients(name):
    """`.to(torch.float64)` casts complex tensors too (dropping imaginary parts): the frozen Lambda, B, C
    must survive it, and a float32 round trip."""
    case = CASES[name]
    m32 = layer_from_golden(name).to(torch.float32)
    m64 = m32.to(torch.float64)
    u = torch.from_numpy(ARRAYS[f"{name}/u"])
    y, y_linear = (torch.from_numpy(ARRAYS[f"{name}/{k}"]) for k in ("y", "y_linear"))
    with torch.no_grad():
        assert rel(m64.liquid_term(u, rate=case["rate"]), y - y_linear) < 1e-5  # float32-rounded parameters
    assert torch.view_as_complex(m64._ref_Lambda).imag.abs().max() > 1
