"""Reading 16-bit PCM WAV files with the standard library (`wave`) and numpy: no torchaudio, torchcodec or FFmpeg.

Speech Commands clips are RIFF/WAVE, PCM, 16 bit, mono, 16 kHz. Anything else (another sample
width, stereo, a truncated or non-WAV file) is a DataError naming the file.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from tasks.errors import DataError


def read_pcm16(path: Path, rate: int | None = None) -> np.ndarray:
    """The samples of a mono 16-bit PCM WAV file as int16, shape (n_samples,).

    `rate`, when given, is the sample rate the file must have.
    """
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as f:
            channels, width, framerate, n = f.getnchannels(), f.getsampwidth(), f.getframerate(), f.getnframes()
            raw = f.readframes(n)
    except (wave.Error, EOFError, OSError) as exc:
        raise _bad(path, f"not a readable WAV file ({exc})") from None
    if width != 2 or channels != 1:
        raise _bad(path, f"expected 16-bit mono PCM, found {8 * width}-bit with {channels} channel(s)")
    if rate is not None and framerate != rate:
        raise _bad(path, f"expected a sample rate of {rate} Hz, found {framerate} Hz")
    if len(raw) != 2 * n:
        raise _bad(path, f"truncated: the header announces {n} samples, the file holds {len(raw) // 2}")
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)


def write_pcm16(path: Path, samples: np.ndarray, rate: int = 16000) -> None:
    """Write int16 samples (n,) as a mono 16-bit PCM WAV file (the inverse of `read_pcm16`)."""
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(np.asarray(samples, dtype="<i2").tobytes())


def _bad(path: Path, what: str) -> DataError:
    return DataError(f"{path}: {what}.", hint="delete the file's folder and fetch the dataset again, "
                                              "or replace the file with the original from the archive")
