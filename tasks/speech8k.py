"""Speech Commands zero-shot at 8 kHz: the `speech` task, whose headline metric is `test8k/accuracy`.

The data, the cache and the training are those of `tasks.speech` (every speech run already evaluates
the 8 kHz test); the registry's `split = "test8k"` makes tables report that split. `suite run --task
speech8k --from-run RUN_ID` evaluates an existing speech run instead of training (suite/train/evaluate.py).
"""

from __future__ import annotations

from tasks.speech import fetch, load, prepare, status

__all__ = ["fetch", "load", "prepare", "status"]
