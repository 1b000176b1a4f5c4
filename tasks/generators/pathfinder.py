"""The Pathfinder contour generator of Long Range Arena (docs/generators.md §2), seeded; numpy + Pillow.

One image: two "target snakes" of N dashed paddles grown from tails D pixels apart, a few short
distractor snakes, and two markers: one on the first tail of a target snake, the other on the last
paddle of the same snake (label 1) or of the other one (label 0). The legacy behaviour the release
depends on is reproduced on purpose (section 2.9): ceiling steps and floored ring candidates, the
one-pixel-offset seed kernel, "value <= 0.3" availability (with no tail at all where the seed kernel
leaves a pixel uncovered), the max(M + mu) < 1.8 collision rule, masks committed one paddle late,
restart of both targets on any failure, the stroke drawn by PIL's ImageDraw (as the original does),
scipy.misc.imresize's 8-bit Lanczos for strokes, masks and markers (Pillow's fixed point, in numpy),
and the final min-max save. Paddles are rasterised once per angle and reused.

Images are written as the release lays them out:
    <level>/imgs/<batch>/sample_<k>.png   (8-bit grey, res x res)
    <level>/metadata/<batch>.npy          (UTF-8 text despite the suffix: one 11-field line per image)
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, field, replace
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tasks.progress import bar as progress_bar

LEVELS = {  # difficulty directory -> (contour_length N, distractor_length N_d); docs/generators.md §2.8
    "curv_baseline": (6, 2),
    "curv_contour_length_9": (9, 3),
    "curv_contour_length_14": (14, 4),
}
CHUNK = 25  # images per work unit: the unit of seeding, progress and resumption
BATCH = 1000  # images per imgs/<batch>/ folder and metadata/<batch>.npy file


@dataclass(frozen=True)
class Params:
    """The generator's parameters (docs/generators.md §2.5)."""

    window: int  # canvas H = W
    padding: int  # border pre-marked as occupied
    seed_distance: int  # D: distance between the two target tails
    paddle_length: int  # L
    paddle_thickness: float  # t
    margins: tuple[int, ...]  # m, drawn per image
    continuity: float  # kappa_c
    num_distractors: int
    snake_contrast: tuple[float, ...]
    paddle_contrast: tuple[float, ...]
    marker_radius: float
    contour_length: int = 14  # N
    distractor_length: int = 4  # N_d
    aa: int = 2  # supersampling factor
    max_paddle_retrial: int = 2
    max_distractor_retrial: int = 4


# The LRA overrides at 32 px (pathfinder) and 128 px (Path-X), hard level.
LRA = {
    32: Params(window=32, padding=1, seed_distance=7, paddle_length=2, paddle_thickness=0.5, margins=(1,),
               continuity=1.0, num_distractors=20 // 4, snake_contrast=(2.0,), paddle_contrast=(0.75,),
               marker_radius=1.5),
    128: Params(window=128, padding=1, seed_distance=20, paddle_length=5, paddle_thickness=1.5, margins=(2, 3),
                continuity=1.8, num_distractors=35 // 4, snake_contrast=(0.9,), paddle_contrast=(1.0,),
                marker_radius=3),
}


def lra_params(resolution: int, difficulty: str = "curv_contour_length_14") -> Params:
    """LRA parameters for a resolution and difficulty level. The number of distractors is the one the
    driver script computes once from its initial settings, for every level (the literal reading of
    docs/generators.md §2.8's open point)."""
    if resolution not in LRA:
        raise ValueError(f"no LRA Pathfinder parameters for {resolution} px (have {sorted(LRA)})")
    n, n_d = LEVELS[difficulty]
    return replace(LRA[resolution], contour_length=n, distractor_length=n_d)


# ------------------------------------------------------------------------------------------------
# Primitives (docs/generators.md §2.2)
# ------------------------------------------------------------------------------------------------


def step(p: tuple[int, int], theta: float, d: float) -> tuple[int, int]:
    """STEP: move d along theta, rounding both coordinates up."""
    return math.ceil(p[0] + d * math.sin(theta)), math.ceil(p[1] + d * math.cos(theta))


def rev(theta: float) -> float:
    return theta + math.pi if theta < 0 else theta - math.pi


def disc(radius: int) -> np.ndarray:
    """DISC(rho): (2rho+1, 2rho+1) bool, ones where i^2 + j^2 <= rho^2."""
    i = np.arange(-radius, radius + 1)
    return (i[:, None] ** 2 + i[None, :] ** 2) <= radius**2


def dilate(a: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """DIL: out(p) = max over kernel cells q of a(p + q - centre); outside positions are ignored; the
    kernel is not mirrored (cv2.dilate). a (H, W) real, kernel (k, k) bool with k odd."""
    r = kernel.shape[0] // 2
    h, w = a.shape
    pad = np.full((h + 2 * r, w + 2 * r), -np.inf)
    pad[r:r + h, r:r + w] = a
    out = np.full_like(a, -np.inf, dtype=float)
    for qi, qj in zip(*np.nonzero(kernel)):
        np.maximum(out, pad[qi:qi + h, qj:qj + w], out=out)
    return out


def to_bytes(x: np.ndarray) -> np.ndarray:
    """BYTES: min-max scale to 0..255, round half up, uint8 (scipy.misc's bytescale)."""
    if x.dtype == np.uint8:
        return x
    lo, hi = float(x.min()), float(x.max())
    s = 255.0 / (hi - lo) if hi != lo else 255.0
    return np.floor(np.clip((x - lo) * s, 0, 255) + 0.5).astype(np.uint8)


def _lanczos(x: np.ndarray) -> np.ndarray:
    return np.where((x >= -3) & (x < 3), np.sinc(x) * np.sinc(x / 3), 0.0)


@lru_cache(maxsize=None)
def lanczos_weights(n_in: int, n_out: int) -> np.ndarray:
    """PIL's LANCZOS resampling along one axis as a dense (n_out, n_in) matrix of normalised weights."""
    scale = n_in / n_out
    f = max(scale, 1.0)
    support = 3.0 * f
    w = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) * scale
        lo = max(0, int(centre - support + 0.5))
        hi = min(n_in, int(centre + support + 0.5))
        j = np.arange(lo, hi)
        k = _lanczos((j - centre + 0.5) / f)
        w[i, lo:hi] = k / k.sum()
    return w


@lru_cache(maxsize=None)
def _fixed_weights(n_in: int, n_out: int) -> np.ndarray:
    """The weights in 22-bit fixed point, rounded half away from zero (Pillow's 8-bit path)."""
    w = lanczos_weights(n_in, n_out) * (1 << 22)
    return np.trunc(w + np.where(w < 0, -0.5, 0.5))


def _pass8(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    # Integer-valued float64 products stay exact (|sum| < 2^53), so BLAS does Pillow's integer arithmetic.
    return np.clip(np.floor((a @ w.T + (1 << 21)) / (1 << 22)), 0, 255)


def resize8(a: np.ndarray, n: int) -> np.ndarray:
    """RESIZE8: PIL LANCZOS of an 8-bit image to (n, n): columns first into an 8-bit intermediate,
    then rows. a (H, W) uint8 -> (n, n) uint8."""
    tmp = _pass8(a.astype(np.float64), _fixed_weights(a.shape[1], n))  # (H, n)
    return _pass8(tmp.T, _fixed_weights(a.shape[0], n)).T.astype(np.uint8)  # (n, n)


# ------------------------------------------------------------------------------------------------
# Rasterisers (docs/generators.md §2.3, 2.4)
# ------------------------------------------------------------------------------------------------


def stroke(size: int, centre: int, end: tuple[int, int], width: int) -> np.ndarray:
    """The supersampled stroke, 255 on 0: PIL's ImageDraw line on a float image, as the original draws
    it (a 1-pixel Bresenham line with both end pixels, or PIL's filled quadrilateral for width > 1).
    -> (size, size) float64."""
    im = Image.new("F", (size, size), 0.0)
    ImageDraw.Draw(im).line([(centre, centre), (end[1], end[0])], fill=255.0, width=width)
    return np.asarray(im, dtype=np.float64)


@dataclass
class Paddle:
    """One rasterised paddle, position-free: patches of size S = 2K+1 whose pixel (K, K) is the start."""

    line: np.ndarray  # (S, S) float, stroke intensity before contrast (about 0..1)
    mask: np.ndarray  # (S, S) float in [0, 1], occupancy
    grown: np.ndarray  # (S + 2m, S + 2m): the mask dilated by DISC(m), for the extension weights


class PaddleBank:
    """Paddles of one (parameters, margin), rasterised once per angle and reused (the angles a snake
    uses form a finite set: whole degrees and the directions of integer ring offsets)."""

    def __init__(self, p: Params, margin: int):
        self.p, self.m = p, margin
        self.K = p.paddle_length + math.ceil(p.paddle_thickness) + margin
        self.width = round(p.paddle_thickness * p.aa)
        if self.width != p.paddle_thickness * p.aa:
            raise ValueError("paddle_thickness * aa must be an integer")
        self.big_disc = disc(margin * p.aa)
        self.small_disc = disc(margin)
        self._paddles: dict[float, Paddle] = {}
        self._seed_kernels: dict[int, np.ndarray] = {}
        self._seed_reach: dict[int, bool] = {}
        self._rings: dict[tuple[int, int], tuple | None] = {}

    def ring(self, q: tuple[int, int]):
        """Extension candidates around pivot q (docs/generators.md §2.6, EXTEND 3): the ring of radius L + m,
        off-canvas points dropped, floored, de-duplicated in (row, col) order. -> (cand (k, 2) int,
        alpha (k,) their directions from q, flat (k,) indices into the canvas), or None if empty.
        Depends on q only, so it is computed once per pivot."""
        if q in self._rings:
            return self._rings[q]
        n = self.p.window
        dr, dc = _ring(self.p.paddle_length + self.m)
        rows, cols = q[0] + dr, q[1] + dc  # real positions, (n_ring,)
        ok = (rows >= 0) & (rows < n) & (cols >= 0) & (cols < n)
        out = None
        if ok.any():
            cand = np.unique(np.stack([rows[ok], cols[ok]], axis=1).astype(np.int64), axis=0)
            alpha = np.arctan2(cand[:, 0] - q[0], cand[:, 1] - q[1])
            out = (cand, alpha, cand[:, 0] * n + cand[:, 1])
        self._rings[q] = out
        return out

    def paddle(self, theta: float) -> Paddle:
        hit = self._paddles.get(theta)
        if hit is None:
            hit = self._paddles[theta] = self._draw(theta)
        return hit

    def _draw(self, theta: float) -> Paddle:
        p, K = self.p, self.K
        sb, cb = 2 * K * p.aa + 1, K * p.aa
        line_b = stroke(sb, cb, step((cb, cb), theta, p.paddle_length * p.aa), self.width)  # (S_b, S_b)
        # scipy.misc.imresize as the original: BYTES (the identity on this 0/255 stroke), then 8-bit Lanczos,
        # clipped to 0..255 (docs/generators.md §2.3 step 3, 2.10). A float resize overshoots to ~1.2 at 128 px,
        # so 0.9-contrast paddles would outshine the markers and every image would be rescaled darker.
        line = resize8(to_bytes(line_b), 2 * K + 1) / 255.0  # (S, S)
        mask = resize8(dilate(line_b, self.big_disc).astype(np.uint8), 2 * K + 1) / 255.0  # (S, S)
        m = self.m
        padded = np.zeros((2 * K + 1 + 2 * m,) * 2)
        padded[m:-m, m:-m] = mask
        return Paddle(line, mask, dilate(padded, self.small_disc))

    def seed_offsets(self, degrees: int) -> np.ndarray:
        """The seed kernel of a tail at this angle as (k, 2) offsets q - anchor (docs/generators.md §2.6, SEED 1.2)."""
        hit = self._seed_kernels.get(degrees)
        if hit is None:
            lm = self.p.paddle_length + self.m
            size = 2 * lm + 1
            mask = paste(np.zeros((size, size)), self.paddle(math.radians(degrees)).mask, (lm + 1, lm + 1))
            hit = self._seed_kernels[degrees] = np.argwhere(mask == 1.0) - lm
        return hit

    def seed_reaches_every_pixel(self, degrees: int) -> bool:
        """Whether every canvas pixel p has a kernel cell p + q inside the canvas.

        Where none has, E = DIL(B, kernel) at p is a maximum over nothing: OpenCV's dilation of a float64
        array gives -DBL_MAX there, and the original's availability search (find_available_coordinates
        on ceil(E - 0.3)) returns no candidate at all as soon as any value is negative. So a seed angle
        whose kernel leaves a pixel uncovered finds no tail anywhere (docs/generators.md §2.6 SEED 1.5). At 32 px
        the kernel has 1-4 cells, all on one side of the anchor for 330 of 360 angles (the last row or
        column is uncovered); at 128 px it has 10-41 cells around the anchor and misses only at -59..-54
        degrees with m = 2."""
        hit = self._seed_reach.get(degrees)
        if hit is None:
            i = np.arange(self.p.window)
            reach = np.zeros((len(i), len(i)), bool)  # (n, n): some kernel cell of p lies on the canvas
            for dr, dc in self.seed_offsets(degrees):
                reach |= ((i + dr >= 0) & (i + dr < len(i)))[:, None] & ((i + dc >= 0) & (i + dc < len(i)))[None, :]
            hit = self._seed_reach[degrees] = bool(reach.all())
        return hit


def paste(canvas: np.ndarray, patch: np.ndarray, at: tuple[int, int], op=None) -> np.ndarray:
    """Place `patch` so that its centre lands on canvas pixel `at`, cropping; op(canvas_view, patch_view)
    combines (default: overwrite). Returns the canvas."""
    r0, c0, view, pview = _window(canvas.shape, patch.shape[0] // 2, at)
    if view is None:
        return canvas
    target = canvas[view]
    if op is None:
        canvas[view] = patch[pview]
    else:
        op(target, patch[pview], out=target)
    return canvas


def _window(shape, k: int, at: tuple[int, int]):
    r, c = at
    top, left = max(r - k, 0), max(c - k, 0)
    bottom, right = min(r + k + 1, shape[0]), min(c + k + 1, shape[1])
    if top >= bottom or left >= right:
        return r, c, None, None
    view = (slice(top, bottom), slice(left, right))
    pview = (slice(top - (r - k), bottom - (r - k)), slice(left - (c - k), right - (c - k)))
    return r, c, view, pview


def marker(n: int, centre: tuple[int, int], radius: float, aa: int) -> np.ndarray:
    """MARKER: a disc drawn at aa x the resolution, byte-scaled, Lanczos-resized to (n, n), in [0, 1]."""
    i = np.arange(n * aa)
    big = ((i[:, None] - centre[0] * aa) ** 2 + (i[None, :] - centre[1] * aa) ** 2) <= (radius * aa) ** 2
    return resize8(to_bytes(big.astype(np.float64)), n) / 255.0


# ------------------------------------------------------------------------------------------------
# Snakes (docs/generators.md §2.6, 2.7)
# ------------------------------------------------------------------------------------------------


class Failed(Exception):
    """A seed or extension could not be placed."""


@dataclass
class Snake:
    pivot: tuple[int, int]
    theta: float
    pending: tuple[Paddle, tuple[int, int]]  # the last paddle, whose mask is committed one step late
    tail: tuple[int, int]  # the first paddle's free end (origin tip)
    tip: tuple[int, int]  # the last paddle's far end (terminal tip)
    paddles: list[tuple[tuple[int, int], float]] = field(default_factory=list)  # (start, angle) of each paddle


class Scene:
    """The shared image I, occupancy M and its margin-grown copy A = DIL(M, DISC(m)) of one image."""

    def __init__(self, p: Params, bank: PaddleBank, rng: np.random.Generator):
        self.p, self.bank, self.rng = p, bank, rng
        n, m = p.window, bank.m
        self.image = np.zeros((n, n))
        self.mask = np.zeros((n, n))
        pad = p.padding
        self.mask[:pad, :] = self.mask[-pad:, :] = self.mask[:, :pad] = self.mask[:, -pad:] = 1.0
        self.grown = dilate(self.mask, bank.small_disc)

    def snapshot(self):
        return self.image.copy(), self.mask.copy(), self.grown.copy()

    def restore(self, state) -> None:
        self.image, self.mask, self.grown = (a.copy() for a in state)

    def commit(self, pending: tuple[Paddle, tuple[int, int]]) -> None:
        """M = max(M, mu) and A = max(A, DIL(mu, DISC(m)))."""
        paddle, at = pending
        paste(self.mask, paddle.mask, at, np.maximum)
        paste(self.grown, paddle.grown, at, np.maximum)

    def draw(self, paddle: Paddle, at: tuple[int, int], contrast: float) -> None:
        paste(self.image, paddle.line * contrast, at, np.maximum)

    def inside(self, *points: tuple[int, int]) -> bool:
        n = self.p.window
        return all(0 <= r < n and 0 <= c < n for r, c in points)

    def free_tails(self, degrees: int, blocked: np.ndarray) -> np.ndarray:
        """Pixels p whose seed-kernel footprint avoids every blocked pixel (E <= 0.3): (k, 2) positions.
        None at all when the kernel leaves some canvas pixel uncovered (E = -inf there; see
        PaddleBank.seed_reaches_every_pixel), as in the original."""
        if not self.bank.seed_reaches_every_pixel(degrees):  # also the case of an empty kernel
            return np.zeros((0, 2), np.int64)
        offsets = self.bank.seed_offsets(degrees)
        n = self.p.window
        r = int(np.abs(offsets).max())
        pad = np.zeros((n + 2 * r, n + 2 * r), bool)
        pad[r:r + n, r:r + n] = blocked
        hit = np.zeros((n, n), bool)
        for dr, dc in offsets:
            hit |= pad[r + dr:r + dr + n, r + dc:r + dc + n]
        return np.argwhere(~hit)

    def seed(self, contrast: float) -> Snake:
        """SEED of a distractor: a free tail whose first paddle fits, up to max_paddle_retrial + 1 tries."""
        p, rng = self.p, self.rng
        for _ in range(p.max_paddle_retrial + 1):
            degrees = int(rng.integers(-180, 180))
            theta = math.radians(degrees)
            framed = self.mask.copy()
            framed[0, :] = framed[-1, :] = framed[:, 0] = framed[:, -1] = 1.0
            if np.mean(self.mask <= 0.3) < 0.01:
                raise Failed
            tails = self.free_tails(degrees, framed > 0.3)
            if len(tails) == 0:
                raise Failed
            tail = tuple(int(v) for v in tails[rng.integers(len(tails))])
            head = step(tail, theta, p.paddle_length)
            pivot = step(head, rev(theta), p.paddle_length + self.bank.m)
            if self.inside(head, pivot):
                return self._start(tail, theta, pivot, contrast)
        raise Failed

    def _start(self, tail, theta, pivot, contrast) -> Snake:
        paddle = self.bank.paddle(theta)
        self.draw(paddle, tail, contrast)
        return Snake(pivot, theta, (paddle, tail), tail, tail, [(tail, theta)])

    def extend(self, s: Snake, contrast: float) -> None:
        """EXTEND: one more paddle on a ring of radius L + m around the next pivot, or Failed."""
        p, rng, m = self.p, self.rng, self.bank.m
        q = step(s.pivot, s.theta, p.paddle_length + 2 * m)
        ring = self.bank.ring(q)
        if ring is None:
            raise Failed
        cand, alpha, flat = ring
        d = np.abs(alpha - s.theta)
        delta = np.minimum(d, 2 * np.pi - d)
        weight = np.maximum(np.cos(np.minimum(delta * p.continuity, 0.5 * np.pi)), 0) ** 2
        prob = weight * (1 - self.grown.ravel()[flat])
        total = prob.sum()
        if total < 1e-4:
            raise Failed
        cdf = np.cumsum(prob / total)
        for _ in range(p.max_paddle_retrial + 1):
            k = min(int(np.searchsorted(cdf, rng.random(), side="right")), len(cand) - 1)
            c = (int(cand[k, 0]), int(cand[k, 1]))
            a = float(alpha[k])
            paddle = self.bank.paddle(rev(a))
            if self._fits(paddle, c):
                self.draw(paddle, c, contrast)
                self.commit(s.pending)
                s.pivot, s.theta, s.pending, s.tip = q, a, (paddle, c), c
                s.paddles.append((c, rev(a)))
                return
        raise Failed

    def _fits(self, paddle: Paddle, at: tuple[int, int]) -> bool:
        _, _, view, pview = _window(self.mask.shape, paddle.mask.shape[0] // 2, at)
        if view is None:
            return True
        return float((self.mask[view] + paddle.mask[pview]).max()) < 1.8


@lru_cache(maxsize=None)
def _ring(radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (R sin phi, R cos phi) for phi = 0, D, 2D, ... < 360 degrees, D = 360 / (2 pi R)."""
    phi = np.radians(np.arange(0, 360, 360 / (2 * np.pi * radius)))
    return radius * np.sin(phi), radius * np.cos(phi)


def two_targets(scene: Scene, contrasts: tuple[float, float]) -> tuple[Snake, Snake] | None:
    """Steps 3.2-3.9 of docs/generators.md §2.7: one attempt at both target snakes, or None."""
    p, rng, m = scene.p, scene.rng, scene.bank.m
    scene.image[:] = 0
    scene.mask[:] = 0
    pad = p.padding
    scene.mask[:pad, :] = scene.mask[-pad:, :] = scene.mask[:, :pad] = scene.mask[:, -pad:] = 1.0
    scene.grown = dilate(scene.mask, scene.bank.small_disc)
    L, D, n = p.paddle_length, p.seed_distance, p.window
    paddle_contrast = p.paddle_contrast[int(rng.integers(len(p.paddle_contrast)))]
    first = None
    for _ in range(p.max_paddle_retrial + 1):  # tail 1
        degrees = int(rng.integers(-180, 180))
        theta = math.radians(degrees)
        banded = scene.mask.copy()
        banded[: 2 * D, :] = banded[n - 2 * D :, :] = banded[:, : 2 * D] = banded[:, n - 2 * D :] = 1.0
        tails = scene.free_tails(degrees, banded > 0.3)
        if len(tails) == 0:
            return None
        tail = tuple(int(v) for v in tails[rng.integers(len(tails))])
        head = step(tail, theta, L)
        pivot = step(head, rev(theta), L + m)
        if scene.inside(head, pivot):
            first = (tail, theta, pivot)
            break
    if first is None:
        return None
    s1 = scene._start(*first, paddle_contrast * contrasts[0])
    paddle_contrast = p.paddle_contrast[int(rng.integers(len(p.paddle_contrast)))]
    s2 = None
    for _ in range(p.max_paddle_retrial + 1):  # tail 2: D away from tail 1, not tested against M
        theta = math.radians(int(rng.integers(-180, 180)))
        phi = math.radians(int(rng.integers(0, 360)))
        tail = (int(np.round(s1.tail[0] + D * math.sin(phi))), int(np.round(s1.tail[1] + D * math.cos(phi))))
        head = step(tail, theta, L)
        pivot = step(head, rev(theta), L + m)
        if scene.inside(head, pivot):
            s2 = scene._start(tail, theta, pivot, paddle_contrast * contrasts[1])
            break
    if s2 is None:
        return None
    try:
        for _ in range(p.contour_length - 1):
            value = p.paddle_contrast[int(rng.integers(len(p.paddle_contrast)))]
            scene.extend(s1, value * contrasts[0])
            scene.extend(s2, value * contrasts[1])
    except Failed:
        return None
    scene.commit(s2.pending)  # snake 1's last mask is never committed (original quirk)
    return s1, s2


def distractor(scene: Scene) -> Snake | None:
    """A short snake of N_d paddles, up to max_distractor_retrial + 1 attempts; None when all fail."""
    p, rng = scene.p, scene.rng
    for _ in range(p.max_distractor_retrial + 1):
        state = scene.snapshot()
        contrast = p.snake_contrast[int(rng.integers(len(p.snake_contrast)))]
        try:
            s = scene.seed(contrast)
            for _ in range(p.distractor_length - 1):
                scene.extend(s, contrast)
        except Failed:
            scene.restore(state)
            continue
        scene.commit(s.pending)
        return s
    return None


@dataclass
class Sample:
    """One generated image and how it was made (what the tests check the label against)."""

    image: np.ndarray  # (res, res) uint8, as saved
    label: int  # 1 = both markers on one snake
    margin: int
    targets: tuple[Snake, Snake]
    origin: int  # index of the target snake carrying the origin marker
    terminal: int  # index of the target snake carrying the terminal marker
    markers: tuple[tuple[int, int], tuple[int, int]]  # (origin tip, terminal tip)
    distractors: list[Snake]
    attempts: int  # two-snake attempts it took
    peak: float  # max(I) before the save's min-max scaling (1.0: the image was not rescaled)


def sample(p: Params, rng: np.random.Generator, banks: dict[int, PaddleBank] | None = None) -> Sample:
    """One image (docs/generators.md §2.7)."""
    banks = {} if banks is None else banks
    label = int(rng.integers(0, 2))
    margin = p.margins[int(rng.integers(len(p.margins)))]
    bank = banks.get(margin) or banks.setdefault(margin, PaddleBank(p, margin))
    scene = Scene(p, bank, rng)
    attempts = 0
    targets = None
    while targets is None:
        attempts += 1
        mu = list(p.snake_contrast) * 2
        rng.shuffle(mu)
        targets = two_targets(scene, (mu[0], mu[1]))
    distractors = [s for s in (distractor(scene) for _ in range(p.num_distractors)) if s is not None]
    origin = int(rng.integers(0, 2))
    terminal = origin if label == 1 else 1 - origin
    tips = (targets[origin].tail, targets[terminal].tip)
    marks = np.maximum(*(marker(p.window, t, p.marker_radius, p.aa) for t in tips))
    image = np.maximum(scene.image, marks)
    return Sample(to_bytes(image), label, margin, targets, origin, terminal, tips, distractors, attempts,
                  float(image.max()))


# ------------------------------------------------------------------------------------------------
# Files (docs/generators.md §2.8)
# ------------------------------------------------------------------------------------------------


def metadata_line(p: Params, batch: int, k: int, label: int, margin: int) -> str:
    """One record: 11 single-space-separated fields, newline-terminated."""
    fields = [f"imgs/{batch}", f"sample_{k}.png", k, label, p.continuity, p.contour_length, p.distractor_length,
              p.paddle_length, p.paddle_thickness, margin, len(p.paddle_contrast)]
    return " ".join(str(f) for f in fields) + "\n"


def write_png(path: Path, image: np.ndarray) -> None:
    Image.fromarray(np.ascontiguousarray(image), mode="L").save(path)


def _chunks(n_images: int) -> list[tuple[int, int, int]]:
    """(batch, first k, count) work units."""
    out = []
    for batch, first in enumerate(range(0, n_images, BATCH)):
        size = min(BATCH, n_images - first)
        out += [(batch, k, min(CHUNK, size - k)) for k in range(0, size, CHUNK)]
    return out


def _make_chunk(args) -> tuple[int, int, int]:
    p, seed, level_dir, batch, k0, count = args
    rng = np.random.default_rng([seed, batch, k0])
    banks: dict[int, PaddleBank] = {}
    lines = []
    img_dir = level_dir / "imgs" / str(batch)
    img_dir.mkdir(parents=True, exist_ok=True)
    for k in range(k0, k0 + count):
        s = sample(p, rng, banks)
        write_png(img_dir / f"sample_{k}.png", s.image)
        lines.append(metadata_line(p, batch, k, s.label, s.margin))
    done = level_dir / "chunks" / f"{batch}_{k0}.txt"
    tmp = done.with_suffix(".tmp")
    tmp.write_text("".join(lines))
    tmp.replace(done)  # a chunk counts as done only once all its images are written
    return batch, k0, count


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def write_dataset(level_dir: Path, p: Params, n_images: int, seed: int, workers: int = 0,
                  progress: bool = True) -> None:
    """Generate n_images into level_dir (imgs/<batch>/sample_<k>.png + metadata/<batch>.npy + GENERATED.json).

    Work goes into level_dir.partial/ in chunks of CHUNK images, each seeded by (seed, batch, k), so
    the result does not depend on the number of workers and an interrupted run resumes where it stopped.
    """
    level_dir = Path(level_dir)
    tmp = level_dir.with_name(level_dir.name + ".partial")
    (tmp / "chunks").mkdir(parents=True, exist_ok=True)
    todo = [c for c in _chunks(n_images) if not (tmp / "chunks" / f"{c[0]}_{c[1]}.txt").is_file()]
    jobs = [(p, seed, tmp, *c) for c in todo]
    workers = min(workers or default_workers(), max(len(jobs), 1))
    with progress_bar(total=n_images, initial=n_images - sum(c[2] for c in todo),
                      desc=f"generating Pathfinder {p.window}px", unit="img", progress=progress) as bar:
        if workers <= 1:
            for job in jobs:
                bar.update(_make_chunk(job)[2])
        else:
            with get_context("fork").Pool(workers) as pool:
                for _, _, count in pool.imap_unordered(_make_chunk, jobs):
                    bar.update(count)
    (tmp / "metadata").mkdir(exist_ok=True)
    for batch in sorted({c[0] for c in _chunks(n_images)}):
        parts = sorted((c for c in _chunks(n_images) if c[0] == batch), key=lambda c: c[1])
        text = "".join((tmp / "chunks" / f"{b}_{k}.txt").read_text() for b, k, _ in parts)
        (tmp / "metadata" / f"{batch}.npy").write_text(text)
    shutil.rmtree(tmp / "chunks")
    info = {"generator": "pathfinder", "n_images": n_images, "seed": seed, **_plain(p)}
    (tmp / "GENERATED.json").write_text(json.dumps(info, indent=2))
    shutil.rmtree(level_dir, ignore_errors=True)
    tmp.replace(level_dir)


def _plain(p: Params) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in p.__dict__.items()}
