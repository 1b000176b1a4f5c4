"""Triton kernels on a CPU: under Triton's interpreter, which must be chosen (TRITON_INTERPRET=1) before triton is
imported, so in a subprocess of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_interpreted(script: str, timeout: int = 300):
    """Runs `script` (Python source) under Triton's interpreter from the repository's root and returns the JSON
    value its last line of output prints; fails the test with the script's stderr if it fails."""
    env = os.environ | {"TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
