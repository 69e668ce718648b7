"""What the gate prints and writes: the table of rows, the one-line summary, the pull
request's Markdown report, the validation curves' plot, and which files were compared."""

from __future__ import annotations

import datetime
from pathlib import Path

from pipeline.evaluation.gate.baseline import Baseline
from pipeline.evaluation.gate.check import Row
from pipeline.evaluation.gate.runs import CURVES, DATA, describe
from pipeline.evaluation.table import text_table
from pipeline.files import atomic_path


def _num(x: float | None, sign: bool = False, count: bool = False) -> str:
    if x is None:
        return "-"
    if count and float(x).is_integer():
        return f"{int(x):+,}" if sign else f"{int(x):,}"
    return f"{x:+.3f}" if sign else f"{x:.3f}"


def _cells(r: Row) -> list[str]:
    """baseline, sd, now, change and band as the tables print them (counts as counts)."""
    n = r.variant == DATA or r.metric.startswith("search_check.")
    return [_num(r.mean, count=n), _num(r.sd), _num(r.now, count=n),
            _num(r.change, True, count=n), f"{r.band:.3f}"]


def format_table(rows: list[Row]) -> str:
    header = ("variant", "metric", "baseline", "sd", "now", "change", "band", "verdict")
    return text_table(header, [(r.variant, r.metric, *_cells(r), r.verdict) for r in rows])


def summary(rows: list[Row]) -> str:
    """One line: all passed, or per variant that failed, its most telling metric (the largest
    change in bands) and how many failed."""
    bad = [r for r in rows if r.failed]
    if not bad:
        return f"all {len(rows)} metrics within their bands"
    parts = []
    for variant in dict.fromkeys(r.variant for r in bad):
        mine = [r for r in bad if r.variant == variant]
        worst = max(mine, key=lambda r: (r.change is not None,
                                         abs(r.change or 0) / max(r.band, 1e-9)))
        what = f"{worst.metric} {worst.verdict}"
        if worst.change is not None:
            what += f" {worst.change:+.3f}" + (f" ({abs(worst.change) / worst.band:.1f} bands)"
                                              if worst.band else "")
        parts.append(f"{variant}: {what}" + (f", {len(mine) - 1} more" if len(mine) > 1 else ""))
    return "; ".join(parts)


def markdown_report(rows: list[Row], base: Baseline, run: dict[str, str], plot: str | None
                    ) -> str:
    """A pull request's comment, in the shape CML reports take: the verdict, the rows that
    failed, the plot, then every row (as `dvc metrics diff --md` lists them) folded away."""
    bad = [r for r in rows if r.failed]
    head = "failed" if bad else "passed"

    def table(rs: list[Row]) -> list[str]:
        out = ["| variant | metric | baseline (mean) | sd | now | change | band | verdict |",
               "|---|---|---:|---:|---:|---:|---:|---|"]
        for r in rs:
            verdict = f"**{r.verdict}**" if r.failed else r.verdict
            out.append(f"| {r.variant} | {r.metric} | " + " | ".join(_cells(r))
                       + f" | {verdict} |")
        return out

    lines = [f"## Metrics gate: {head}", "",
             f"{len(rows) - len(bad)} of {len(rows)} metrics within their bands of the "
             f"baseline's mean over {len(base.seeds)} seeds ({', '.join(map(str, base.seeds))})."]
    if bad:
        lines += ["", "A metric outside its band fails in either direction. If the change is "
                  "meant to move it, update the baseline in the same change "
                  "(`bash ci/pipeline.sh --update-baseline`) and say why in the commit.", "",
                  *table(bad)]
    lines += ["", f"This run: {run.get('what', '?')}; {describe(run.get('machine'))}",
              f"Baseline: {describe(base.made_on)}"]
    if plot:
        lines += ["", f"![Validation curves: this run against the baseline's seeds]({plot})"]
    lines += ["", "<details><summary>Every metric</summary>", "", *table(rows), "",
              "</details>", ""]
    return "\n".join(lines)


def curves_plot(base: Baseline, current: dict[str, dict[str, list[float]]],
                path: str | Path) -> None:
    """One panel per curve (validation loss, BLEU by epoch): each variant's baseline seeds as
    a shaded range, this run as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVES), figsize=(11, 4))
    for ax, curve in zip(axes, CURVES):
        for i, variant in enumerate(base.variants):
            color = f"C{i}"
            seeds = base.curves.get(variant, {}).get(curve, [])
            if seeds:
                n = min(len(s) for s in seeds)
                epochs = range(1, n + 1)
                lo = [min(s[e] for s in seeds) for e in range(n)]
                hi = [max(s[e] for s in seeds) for e in range(n)]
                ax.fill_between(epochs, lo, hi, color=color, alpha=0.2)
            now = current.get(variant, {}).get(curve)
            if now:
                ax.plot(range(1, len(now) + 1), now, color=color, label=variant)
        ax.set_xlabel("epoch")
        ax.set_title(curve + " (band: baseline seeds, line: this run)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def compared_files(folder: str, variants: list[str], baseline: str) -> str:
    """Which files the table compared, and when each was written: committed metrics of a
    variant never trained here look the same as fresh ones otherwise."""
    lines = [f"compared with {baseline}:"]
    for variant in variants:
        path = Path(folder) / f"{variant}.json"
        if path.exists():
            when = datetime.datetime.fromtimestamp(path.stat().st_mtime)
            lines.append(f"  {path} (written {when:%Y-%m-%d %H:%M})")
        else:
            lines.append(f"  {path} (missing)")
    return "\n".join(lines)
