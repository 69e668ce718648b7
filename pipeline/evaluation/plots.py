"""Figures: attention heatmaps and the learning-rate finder's curve (PNG, headless), and the
variants' curves as one table for DVC's combined plot."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.errors import PipelineError
from pipeline.files import atomic_path  # noqa: E402


def _save(fig: plt.Figure, path: str | Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def attention_heatmap(weights: np.ndarray, src: list[str], hyp: list[str],
                      path: str | Path) -> None:
    """weights: (len(hyp), len(src)); rows are output words, columns source words."""
    fig, ax = plt.subplots(figsize=(1 + 0.45 * len(src), 1 + 0.4 * len(hyp)))
    image = ax.imshow(weights, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    fig.colorbar(image, ax=ax, label="attention weight", fraction=0.05, pad=0.02)
    ax.set_xticks(range(len(src)), src, rotation=60, ha="right")
    ax.set_yticks(range(len(hyp)), hyp)
    ax.set_xlabel("French (source)")
    ax.set_ylabel("English (output)")
    _save(fig, path)


def lr_find_plot(lrs: list[float], losses: list[float], path: str | Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(lrs, losses)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("smoothed training loss")
    ax.set_title("learning-rate finder")
    ax.grid(True, alpha=0.3)
    _save(fig, path)


def curves_by_variant(dvclive: str | Path, variants: list[str], metric: str) -> pd.DataFrame:
    """Every variant's `metric` curve from its dvclive folder, as rows of (variant, step,
    metric): one table that a template colouring by variant draws as one line each. A variant
    with no curve (not trained in this workspace) has no rows."""
    parts = []
    for variant in variants:
        path = Path(dvclive) / variant / "plots" / "metrics" / f"{metric}.tsv"
        if not path.exists():
            continue
        curve = pd.read_csv(path, sep="\t")
        if not {"step", metric} <= set(curve.columns):
            raise PipelineError(f"{path}: no step and {metric} columns (is it dvclive's?)")
        parts.append(curve[["step", metric]].assign(variant=variant))
    if not parts:
        raise PipelineError(f"{dvclive}: no variant has a {metric} curve; train one first")
    return pd.concat(parts, ignore_index=True)[["variant", "step", metric]]
