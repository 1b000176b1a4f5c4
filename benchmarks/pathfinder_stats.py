"""Pathfinder generator statistics against the reference values of docs/generators.md §3.2.

Generates n images per (resolution, level) with tasks/generators/pathfinder.py (in memory, nothing
written) and prints, beside the reference measured from the original code: distractor snakes placed,
mean pixel and its spread, the pixel-value fractions and the 32-wide-bin histogram, lit pixels and
blobs, two-snake attempts (cost of the restart rule), how often the image needed no rescale, the
lit-pixel centroid, marker distances and the class-conditional means.

    .venv/bin/python -m benchmarks.pathfinder_stats                       # 32 hard (400) and 128 hard (60)
    .venv/bin/python -m benchmarks.pathfinder_stats --res 32 --levels all --n 300 --workers 2

Easy and intermediate use the per-level distractor counts the reference column assumes (32 px: 10 and
6; 128 px: 17 and 11), not the generator's literal default (see docs/generators.md §2.8).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from multiprocessing import get_context

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from tasks.generators import pathfinder as gen

SHORT = {"easy": "curv_baseline", "inter": "curv_contour_length_9", "hard": "curv_contour_length_14"}
REF_DISTRACTORS = {(32, "easy"): 10, (32, "inter"): 6, (128, "easy"): 17, (128, "inter"): 11}

# docs/generators.md §3.2, (resolution, level) -> statistic -> reference value
REF = {
    (32, "easy"): dict(distractors=3.4, mean=13.2, mean_sd=1.9, zero=0.769, ge1=0.231, ge64=0.077, ge128=0.053,
                       ge192=0.017, eq255=0.0016, lit=79, lit_sd=11, blobs=7.5, blobs_sd=2.4, unscaled=0.13,
                       pos_dist=15.2, neg_dist=14.8, centroid=(13.7, 13.1), attempts=(18, 3, 51),
                       hist=(0.909, 0.014, 0.011, 0.014, 0.018, 0.018, 0.011, 0.007)),
    (32, "inter"): dict(distractors=1.8, mean=15.6, mean_sd=2.0, zero=0.731, ge1=0.269, ge64=0.094, ge128=0.064,
                        ge192=0.018, eq255=0.0019, lit=96, lit_sd=12, blobs=9.2, blobs_sd=2.7, unscaled=0.23,
                        pos_dist=14.8, neg_dist=13.6, centroid=(13.5, 13.2), attempts=(43, 7, 149),
                        hist=(0.891, 0.016, 0.014, 0.016, 0.026, 0.021, 0.011, 0.007)),
    (32, "hard"): dict(distractors=1.2, mean=20.2, mean_sd=2.1, zero=0.658, ge1=0.342, ge64=0.126, ge128=0.085,
                       ge192=0.019, eq255=0.0022, lit=129, lit_sd=13, blobs=13.6, blobs_sd=3.4, unscaled=0.33,
                       pos_dist=13.4, neg_dist=13.1, centroid=(14.6, 14.4), attempts=(218, 31, 752),
                       hist=(0.855, 0.019, 0.020, 0.021, 0.039, 0.027, 0.013, 0.007)),
    (128, "easy"): dict(distractors=17.0, mean=6.33, mean_sd=0.14, zero=0.889, ge1=0.111, ge64=0.033, ge128=0.025,
                        ge192=0.013, eq255=0.0007, lit=542, lit_sd=14, blobs=45.2, blobs_sd=1.1, unscaled=1.0,
                        pos_dist=51.4, neg_dist=54.5, centroid=(63.5, 62.8), attempts=(1, 1, 4),
                        hist=(0.957, 0.010, 0.006, 0.003, 0.003, 0.009, 0.005, 0.008)),
    (128, "inter"): dict(distractors=10.9, mean=6.94, mean_sd=0.21, zero=0.879, ge1=0.121, ge64=0.036,
                         ge128=0.027, ge192=0.014, eq255=0.0007, lit=592, lit_sd=20, blobs=50.0, blobs_sd=1.2,
                         unscaled=1.0, pos_dist=73.1, neg_dist=73.9, centroid=(61.4, 61.1), attempts=(6, 1, 32),
                         hist=(0.953, 0.011, 0.006, 0.003, 0.003, 0.010, 0.006, 0.008)),
    (128, "hard"): dict(distractors=7.75, mean=7.94, mean_sd=0.31, zero=0.863, ge1=0.137, ge64=0.041, ge128=0.030,
                        ge192=0.016, eq255=0.0007, lit=673, lit_sd=31, blobs=57.7, blobs_sd=2.4, unscaled=1.0,
                        pos_dist=75.8, neg_dist=76.0, centroid=(60.2, 59.7), attempts=(110, 11, 990),
                        hist=(0.945, 0.014, 0.007, 0.004, 0.003, 0.011, 0.007, 0.009)),
}


def params(res: int, level: str) -> gen.Params:
    p = gen.lra_params(res, SHORT[level])
    if (res, level) in REF_DISTRACTORS:
        p = replace(p, num_distractors=REF_DISTRACTORS[(res, level)])
    return p


def _one(args) -> dict:
    """Per-image numbers of one seeded image."""
    p, seed, i = args
    s = gen.sample(p, np.random.default_rng([seed, i]))
    img = s.image.astype(np.int64)  # (res, res)
    lit = img >= 64
    _, n_blobs = ndimage.label(lit, structure=np.ones((3, 3)))
    rows, cols = np.nonzero(lit)
    return dict(label=s.label, distractors=len(s.distractors), requested=p.num_distractors, attempts=s.attempts,
                unscaled=bool(abs(s.peak - 1.0) < 1e-9), hist=np.bincount(img.ravel() // 32, minlength=8),
                mean=img.mean(), zero=(img == 0).sum(), ge1=(img >= 1).sum(), ge64=lit.sum(), ge128=(img >= 128).sum(),
                ge192=(img >= 192).sum(), eq255=(img == 255).sum(), blobs=n_blobs, csum=(rows.sum(), cols.sum()),
                dist=float(np.hypot(*np.subtract(*s.markers))), pixels=img.size)


def measure(res: int, level: str, n: int, seed: int, workers: int) -> list[dict]:
    p = params(res, level)
    jobs = [(p, seed, i) for i in range(n)]
    bar = dict(total=n, desc=f"{res}px {level}", unit="img", leave=False)
    if workers <= 1:
        return [_one(j) for j in tqdm(jobs, **bar)]
    with get_context("fork").Pool(workers) as pool:
        return list(tqdm(pool.imap(_one, jobs, chunksize=4), **bar))


def summarise(rows: list[dict]) -> dict:
    pix = sum(r["pixels"] for r in rows)
    frac = {k: sum(r[k] for r in rows) / pix for k in ("zero", "ge1", "ge64", "ge128", "ge192", "eq255")}
    means = np.array([r["mean"] for r in rows])
    lits = np.array([r["ge64"] for r in rows])
    blobs = np.array([r["blobs"] for r in rows])
    att = np.array([r["attempts"] for r in rows])
    lab = np.array([r["label"] for r in rows])
    dist = np.array([r["dist"] for r in rows])
    csum = np.array([r["csum"] for r in rows]).sum(0)
    return dict(
        distractors=np.mean([r["distractors"] for r in rows]), requested=rows[0]["requested"],
        distractors_se=np.std([r["distractors"] for r in rows]) / np.sqrt(len(rows)),
        mean=means.mean(), mean_sd=means.std(), **frac, lit=lits.mean(), lit_sd=lits.std(),
        blobs=blobs.mean(), blobs_sd=blobs.std(), unscaled=np.mean([r["unscaled"] for r in rows]),
        pos_dist=dist[lab == 1].mean(), neg_dist=dist[lab == 0].mean(), centroid=tuple(csum / lits.sum()),
        attempts=(np.median(att), np.percentile(att, 10), np.percentile(att, 90)),
        hist=tuple(sum(r["hist"] for r in rows) / pix), pos_mean=means[lab == 1].mean(),
        neg_mean=means[lab == 0].mean(), positive=lab.mean(), n=len(rows))


def fmt(v) -> str:
    if isinstance(v, tuple):
        return "(" + ", ".join(fmt(x) for x in v) + ")"
    v = float(v)
    digits = 4 if 0 < abs(v) < 0.1 else 3 if abs(v) < 1 else 2 if abs(v) < 100 else 0
    return f"{v:.{digits}f}"


def table(res: int, level: str, ours: dict) -> str:
    ref = REF[(res, level)]
    lines = [f"\n### {res} px {level} ({SHORT[level]}), n = {ours['n']}\n", "| statistic | ours | reference |",
             "|---|---|---|"]
    lines.append(f"| distractor snakes placed (of {ours['requested']}) | {ours['distractors']:.2f} "
                 f"(± {ours['distractors_se']:.2f} s.e.) | {ref['distractors']} |")
    names = dict(mean="mean pixel", mean_sd="sd of per-image mean", zero="fraction = 0", ge1="fraction ≥ 1",
                 ge64="fraction ≥ 64", ge128="fraction ≥ 128", ge192="fraction ≥ 192", eq255="fraction = 255",
                 lit="lit pixels per image", lit_sd="  sd", blobs="blobs ≥ 64", blobs_sd="  sd",
                 unscaled="pre-save max = 1.0 (no rescale)", pos_dist="marker distance, positives",
                 neg_dist="marker distance, negatives", centroid="lit centroid (row, col)",
                 attempts="two-snake attempts median (10th, 90th pct)")
    for k, name in names.items():
        lines.append(f"| {name} | {fmt(ours[k])} | {fmt(ref[k])} |")
    lines.append(f"| class-conditional mean pixel (pos / neg) | {ours['pos_mean']:.2f} / {ours['neg_mean']:.2f} "
                 f"| ≈ equal |")
    lines.append(f"| positive fraction | {ours['positive']:.3f} | ≈ 0.5 |")
    lines.append("| histogram, 32-wide bins | " + " ".join(f"{x:.3f}" for x in ours["hist"]) + " | "
                 + " ".join(f"{x:.3f}" for x in ref["hist"]) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, nargs="+", default=[32, 128], choices=[32, 128])
    ap.add_argument("--levels", nargs="+", default=["hard"], help="easy inter hard, or all")
    ap.add_argument("--n", type=int, default=400, help="images per 32-px level")
    ap.add_argument("--n128", type=int, default=60, help="images per 128-px level")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args(argv)
    levels = list(SHORT) if a.levels == ["all"] else a.levels
    for res in a.res:
        for level in levels:
            t = time.time()
            rows = measure(res, level, a.n if res == 32 else a.n128, a.seed, a.workers)
            print(table(res, level, summarise(rows)))
            print(f"({time.time() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
