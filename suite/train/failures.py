"""A run's failures that have a remedy a user can apply, turned into the suite's errors (suite/errors.py).

Out of memory is the one today: a CUDA or host out-of-memory error during training, evaluation or a benchmark
becomes a ResourceError (exit 7) that says what to make smaller. `suite.cli` applies it to any error outside
training too, once torch is loaded.
"""

from __future__ import annotations

from suite.errors import ResourceError


def out_of_memory(exc: BaseException) -> ResourceError | None:
    """A ResourceError for a CUDA or host out-of-memory error, else None."""
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        what = "the GPU ran out of memory"
    elif isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)):
        what = "the machine ran out of host memory"
    else:
        return None
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ResourceError(
        f"out of memory: {what} ({first[:200]}).",
        hint="use a smaller batch (--set trainer.batch_size=N, half the current value), mixed precision "
             "(--precision bf16-mixed), or a smaller model (model.d_model, model.n_layers); on a shared GPU, "
             "check what else runs there with nvidia-smi",
    )
