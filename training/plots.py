"""Loss / metric curves from a run's ``metrics.jsonl`` (PNG via matplotlib, Agg)."""

from __future__ import annotations

import os
from pathlib import Path

from colorize.fsutil import atomic_path


def plot_curves(metrics_path: str | os.PathLike, png_path: str | os.PathLike) -> Path:
    """Draw training loss per step (left) and per-epoch evaluation metrics (right); write atomically.

    Raises:
        ImportError: matplotlib is missing (``pip install matplotlib``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from colorize.training.records import read_jsonl

    records = read_jsonl(metrics_path)
    steps = [r for r in records if r.get("kind") == "step"]
    epochs = [r for r in records if r.get("kind") == "epoch"]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    if steps:
        ax_loss.plot([r["step"] for r in steps], [r["loss"] for r in steps], lw=1, label="train loss (batch)")
    if epochs:
        ax_loss.plot([r["step"] for r in epochs], [r["train_loss"] for r in epochs], "o-", label="train loss (epoch)")
        if "test_loss" in epochs[0]:
            ax_loss.plot([r["step"] for r in epochs], [r["test_loss"] for r in epochs], "s-", label="test loss")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    keys = [k for k in ("train_acc", "test_acc", "val_psnr", "val_psnr_gray") if epochs and k in epochs[-1]]
    for k in keys:
        ax_metric.plot([r["epoch"] + 1 for r in epochs], [r[k] for r in epochs], "o-", label=k)
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylabel("accuracy (%)" if "test_acc" in keys else "PSNR (dB)")
    if keys:
        ax_metric.legend()
    ax_metric.grid(alpha=0.3)
    fig.tight_layout()
    png = Path(png_path)
    with atomic_path(png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return png
