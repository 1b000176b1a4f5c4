"""Triton, where it is installed, for the kernels of this package, and where they may run.

The kernels run on CUDA tensors, or on CPU tensors under Triton's interpreter (TRITON_INTERPRET=1 set before
triton is imported), which the CPU tests use.
"""

from __future__ import annotations

import os

import torch

try:  # triton ships with torch's CUDA wheels; absent on some CPU-only installs
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = tl = None

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


def runs_on(*tensors: torch.Tensor) -> bool:
    """Whether a kernel may take these tensors: triton importable, and all of them on CUDA (or any device under
    the interpreter)."""
    return triton is not None and (all(t.is_cuda for t in tensors) or INTERPRET)


def complex64_spectra(*tensors: torch.Tensor) -> bool:
    """`runs_on`, for the kernels that read complex64 spectra as interleaved float32 pairs."""
    return runs_on(*tensors) and all(t.dtype == torch.complex64 for t in tensors)
