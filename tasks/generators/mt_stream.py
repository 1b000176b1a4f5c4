"""Python's `random.Random(seed)` stream as numbered 32-bit words, reproducible from any position.

`random.Random` is a Mersenne Twister (MT19937): every draw consumes whole 32-bit outputs ("words") of
one stream. numpy's `MT19937` bit generator is the same twister with the same state layout (624 words
and a position), so a state taken from `random.Random(seed).getstate()` makes numpy emit the very same
words, in bulk and fast, and any position of the stream can be reached by drawing and dropping words.
This is what lets several processes each replay their own stretch of one single seeded stream
(docs/data.md, "Parallel ListOps generation").

How CPython 3.11's `random.Random` turns words into draws (Lib/random.py and _randommodule.c):

- `random()` takes two words a, b: ((a >> 5) * 2**26 + (b >> 6)) / 2**53;
- `getrandbits(k)`, k <= 32, takes one word: word >> (32 - k);
- `_randbelow(n)` draws `getrandbits(n.bit_length())` until the value is below n (rejection); `randint(a, b)`
  is a + _randbelow(b - a + 1), `choice(seq)` is seq[_randbelow(len(seq))], `shuffle` uses _randbelow.
"""

from __future__ import annotations

import random

import numpy as np

N_STATE = 624  # words of MT19937 state


def numpy_state(seed: int) -> dict:
    """The numpy MT19937 state whose words are those of `random.Random(seed)`."""
    version, internal, _ = random.Random(seed).getstate()
    assert version == 3 and len(internal) == N_STATE + 1
    return _as_numpy(np.array(internal[:N_STATE], dtype=np.uint32), internal[N_STATE])


def _as_numpy(key: np.ndarray, pos: int) -> dict:
    return {"bit_generator": "MT19937", "state": {"key": key, "pos": int(pos)}}


def python_random(state: dict) -> random.Random:
    """A `random.Random` continuing the stream exactly where the numpy state stands."""
    rng = random.Random()
    rng.setstate((3, tuple(int(w) for w in state["state"]["key"]) + (int(state["state"]["pos"]),), None))
    return rng


def generator(state: dict) -> np.random.MT19937:
    bits = np.random.MT19937()
    bits.state = state
    return bits


def advance(state: dict, n_words: int) -> dict:
    """The state n_words further down the stream."""
    bits = generator(state)
    while n_words > 0:
        step = min(n_words, 1 << 22)
        bits.random_raw(step)
        n_words -= step
    return bits.state


def words(bits: np.random.MT19937, n: int) -> list[int]:
    """The next n words as Python ints (list indexing is what the tree parser does fastest)."""
    return bits.random_raw(n).tolist()


class Stream:
    """One seeded stream cut into consecutive chunks [start, start + size); remembers each chunk's
    starting state so that any later position can be reached from the chunk holding it.

    Each chunk also comes with a lead-in: the state `lead` words before its start (a sixteenth of the
    chunk before it), taken while that chunk was drawn, so a worker can begin parsing a little early."""

    LEAD_FRACTION = 16

    def __init__(self, seed: int):
        self._bits = generator(numpy_state(seed))
        self.starts: list[int] = []  # chunk k covers [starts[k], starts[k + 1])
        self.states: list[dict] = []
        self.end = 0  # first position not covered by a chunk yet
        self._lead = (self._bits.state, 0)  # (state, position) where the next chunk's lead-in begins

    def add_chunk(self, size: int) -> tuple[dict, int, int]:
        """Cut the next chunk: (the state where its lead-in begins, that position, the chunk's end)."""
        lead_state, lead_first = self._lead
        self.starts.append(self.end)
        self.states.append(self._bits.state)
        lead = size // self.LEAD_FRACTION
        self._bits.random_raw(size - lead)
        self._lead = (self._bits.state, self.end + size - lead)
        self._bits.random_raw(lead)
        self.end += size
        return lead_state, lead_first, self.end

    def state_at(self, pos: int) -> dict:
        """The state at stream position pos (any position: past the last chunk it is drawn on from there)."""
        if pos >= self.end:
            return advance(self._bits.state, pos - self.end)
        k = int(np.searchsorted(self.starts, pos, side="right")) - 1
        return advance(self.states[k], pos - self.starts[k])
