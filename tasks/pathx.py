"""LRA Path-X: Pathfinder at 128x128 = 16384 pixels (tasks/pathfinder.py with RESOLUTION = 128).

Files: the release's `lra_release/pathfinder128/<difficulty>/...` or generated ones under
`generated/pathfinder/pathfinder128_n<N>_seed<S>/`; same preprocessing, split and cache as Pathfinder.
"""

from __future__ import annotations

from functools import partial

from tasks import pathfinder

RESOLUTION = 128

status = partial(pathfinder.status, resolution=RESOLUTION)
fetch = partial(pathfinder.fetch, resolution=RESOLUTION)
prepare = partial(pathfinder.prepare, resolution=RESOLUTION)
load = partial(pathfinder.load, resolution=RESOLUTION)
generate = partial(pathfinder.generate, resolution=RESOLUTION)
generated_sets = partial(pathfinder.generated_sets, resolution=RESOLUTION)
