"""Learning curves: loss and the headline metric per epoch, for every split, as one PNG."""

from __future__ import annotations

from pathlib import Path


def learning_curves(histories: dict[str, list[tuple[int, float]]], epochs: dict[int, int], metric: str,
                    title: str, out: Path) -> Path:
    """Plot `<split>/loss` and `<split>/<metric>` against the epoch. `epochs` maps a step to its epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, quantity in zip(axes, ("loss", metric)):
        for split, style in (("train", "-"), ("val", "--"), ("test", ":")):
            points = histories.get(f"{split}/{quantity}", [])
            if points:
                xs = [epochs.get(step, step) + 1 for step, _ in points]
                ax.plot(xs, [v for _, v in points], style, marker="o", ms=3, label=split)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(quantity)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
