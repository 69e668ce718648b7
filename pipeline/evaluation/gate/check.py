"""The check: a row per baseline metric, data count, rescored score and search count, each
with its verdict (ok, WORSE, BETTER, CHANGED, MISMATCH or MISSING)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from pipeline.errors import PipelineError
from pipeline.evaluation.gate.baseline import Baseline
from pipeline.evaluation.gate.runs import DATA, SEARCH_COUNTS
from pipeline.evaluation.metrics import HIGHER_IS_BETTER


@dataclass
class Row:
    variant: str
    metric: str
    mean: float | None  # the seeds' mean (data: the count)
    sd: float | None
    now: float | None
    band: float
    verdict: str  # ok | WORSE | BETTER | CHANGED | MISMATCH | MISSING

    @property
    def change(self) -> float | None:
        return None if self.mean is None or self.now is None else self.now - self.mean

    @property
    def failed(self) -> bool:
        return self.verdict != "ok"


def check(base: Baseline, current: dict[str, dict[str, float] | None],
          bands: dict[str, dict[str, float]], bands_path: str = "ci/tolerances.yaml",
          rescored: dict[str, dict[str, float]] | None = None,
          searched: dict[str, dict[str, float]] | None = None) -> list[Row]:
    """A row per baseline metric (ok, WORSE or BETTER against its band around the seeds'
    mean), per data count (ok or CHANGED); given `rescored`, per score that sacreBLEU
    recomputed from the scored files (ok or MISMATCH with what the run reported); given
    `searched`, per search_check count (ok at 0, else MISMATCH)."""
    rows: list[Row] = []
    for variant, metrics in base.runs.items():
        now_metrics = current.get(variant)
        for metric, values in metrics.items():
            band = bands.get(variant, {}).get(metric)
            if band is None:
                raise PipelineError(f"{bands_path}: no band for {variant}.{metric}; write the "
                                    "bands again (bash ci/pipeline.sh --update-baseline)")
            mean, sd = statistics.fmean(values), statistics.stdev(values)
            now = None if now_metrics is None else now_metrics.get(metric)
            if now is None:
                verdict = "MISSING"
            elif abs(now - mean) <= band + 1e-9:
                verdict = "ok"
            else:
                better = (now > mean) == (metric in HIGHER_IS_BETTER)
                verdict = "BETTER" if better else "WORSE"
            rows.append(Row(variant, metric, mean, sd, now, band, verdict))
    for variant, metrics in (rescored or {}).items():  # the metric itself: exact
        reported = current.get(variant) or {}
        for metric, value in metrics.items():
            now = reported.get(metric)
            verdict = ("MISSING" if now is None else "ok" if abs(now - value) <= 1e-9
                       else "MISMATCH")
            rows.append(Row(variant, f"{metric}=sacreBLEU", value, None, now, 0.0, verdict))
    if searched is not None:  # the searches against the model: exact
        for variant in base.runs:
            found = searched.get(variant, {})
            for name in SEARCH_COUNTS:
                now = found.get(f"search_check.{name}")
                verdict = "MISSING" if now is None else "ok" if now == 0 else "MISMATCH"
                rows.append(Row(variant, f"search_check.{name}", 0.0, None, now, 0.0, verdict))
    counts = current.get(DATA) or {}
    for name, value in base.data.items():
        now = counts.get(name)
        verdict = "MISSING" if now is None else "ok" if now == value else "CHANGED"
        rows.append(Row(DATA, name, value, None, now, 0.0, verdict))
    return rows


EXACT = " (exact)"  # the mark of the exact rule's rows
# Figures agree "to the last digit" within this (relative): a loss summed in another order
# (the battery's harmless patch) moves its last float32 bits, 1e-7 of it, and nothing else; a
# change to what evaluation computes moves a BLEU by a thousandth or more, or a printed line.
SAME = 1e-6


def exact_rows(exact: dict, now: dict[str, dict]) -> list[Row]:
    """The exact rule. Where a variant's kept weights are the exact record's (its training
    came out identical to that seed's), every figure and every scored line must be the
    record's too: a difference is CHANGED, a row per figure (by how much) and per file (how
    many lines). Where the weights differ, training took another path and the bands judge:
    one row says so."""
    rows: list[Row] = []
    seed = exact.get("seed")
    for variant, then in exact["variants"].items():
        mine = now.get(variant)
        if mine is None:
            continue  # the band rows report it MISSING
        if mine.get("weights_sha256") != then.get("weights_sha256"):
            rows.append(Row(variant, f"training differs from seed {seed}'s: bands judge",
                            None, None, None, 0.0, "ok"))
            continue
        changed = 0
        for key in sorted(set(then["figures"]) | set(mine["figures"])):
            a, b = then["figures"].get(key), mine["figures"].get(key)
            numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))
            if a == b or numbers and math.isclose(a, b, rel_tol=SAME, abs_tol=SAME):
                continue
            changed += 1
            name = key if numbers else f"{key}: {str(a)[:40]!r} -> {str(b)[:40]!r}"
            rows.append(Row(variant, name + EXACT, a if numbers else None, None,
                            b if numbers else None, 0.0, "CHANGED"))
        for name in sorted(set(then["lines"]) | set(mine["lines"])):
            a, b = (x.get(name, "") for x in (then["lines"], mine["lines"]))
            if a == b:
                continue
            changed += 1
            ha, hb = [a[i:i + 8] for i in range(0, len(a), 8)], [b[i:i + 8] for i in
                                                                 range(0, len(b), 8)]
            differ = sum(x != y for x, y in zip(ha, hb)) + abs(len(ha) - len(hb))
            rows.append(Row(variant, f"translations/{name}: lines that differ{EXACT}", 0.0, None,
                            float(differ), 0.0, "CHANGED"))
        if not changed:
            rows.append(Row(variant, f"training, figures and scored lines = seed {seed}'s"
                            f"{EXACT}", None, None, None, 0.0, "ok"))
    return rows
