"""The baseline: every tracked metric of several seed runs (ci/baseline.json), the noise
bands made from their spread (ci/tolerances.yaml), and one seed's run to the last digit and
line (ci/exact.json), which judges a run whose training came out identical."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.evaluation.gate.runs import (
    DATA,
    describe,
    exact_of,
    load_current,
    load_curves,
    machine,
    number,
)
from pipeline.files import read_json, write_json
from pipeline.params import load_params


@dataclass
class Baseline:
    runs: dict[str, dict[str, list[float]]]  # variant -> metric -> one value per seed
    data: dict[str, float]                    # exact counts
    seeds: list[int]
    made_on: dict[str, str] | None
    curves: dict[str, dict[str, list[list[float]]]]  # variant -> curve -> one list per seed

    @property
    def variants(self) -> list[str]:
        return list(self.runs)


def load_baseline(path: str | Path) -> Baseline:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("variants"), dict):
        raise PipelineError(f"{path}: expected a baseline written by `bash ci/pipeline.sh "
                            "--update-baseline` (no 'variants' in it)")
    seeds = data.get("seeds")
    if not isinstance(seeds, list) or not seeds:
        raise PipelineError(f"{path}: expected 'seeds', the train.seed of each run")
    runs: dict[str, dict[str, list[float]]] = {}
    for variant, metrics in data["variants"].items():
        if not isinstance(metrics, dict):
            raise PipelineError(f"{path}: {variant}: expected {{metric: [one value per seed]}}")
        runs[variant] = {}
        for metric, values in metrics.items():
            where = f"{path}: {variant}.{metric}"
            if not isinstance(values, list) or len(values) != len(seeds):
                raise PipelineError(f"{where}: expected {len(seeds)} values, one per seed")
            runs[variant][metric] = [number(v, where) for v in values]
    counts = {k: number(v, f"{path}: data.{k}") for k, v in data.get(DATA, {}).items()}
    return Baseline(runs, counts, [int(s) for s in seeds], data.get("made_on"),
                    data.get("curves", {}))


def write_baseline(path: str | Path, seed_runs: dict[int, str | Path], curve_dirs:
                   dict[int, str | Path], variants: list[str]) -> Baseline:
    """The baseline from one metrics folder per seed (and its dvclive folder for the curves).
    Every run must have every variant, all must agree on the data counts, and no two may
    agree on a variant's metrics."""
    seeds = sorted(seed_runs)
    if len(seeds) < 3:
        raise PipelineError(f"update-baseline: {len(seeds)} seed runs; the bands need at "
                            "least 3 to estimate the spread")
    runs: dict[str, dict[str, list[float]]] = {v: {} for v in variants}
    curves: dict[str, dict[str, list[list[float]]]] = {}
    data: dict[str, float] | None = None
    seen: dict[str, dict[tuple, int]] = {v: {} for v in variants}  # metrics -> seed
    for seed in seeds:
        current = load_current(seed_runs[seed], variants)
        missing = [v for v in variants if current[v] is None]
        if missing:
            raise PipelineError(f"{seed_runs[seed]}: no metrics for {', '.join(missing)}")
        if data is not None and current[DATA] != data:
            raise PipelineError(f"{seed_runs[seed]}: its data counts differ from seed "
                                f"{seeds[0]}'s: the seed runs must share their data stages")
        data = current[DATA] or {}
        for v in variants:
            key = tuple(sorted(current[v].items()))
            if key in seen[v]:  # another seed moves every model: this is a copy, not a run
                raise PipelineError(f"{seed_runs[seed]}: {v}'s metrics equal seed "
                                    f"{seen[v][key]}'s to the last digit: did train.seed "
                                    "reach its training?")
            seen[v][key] = seed
            for m, value in key:
                runs[v].setdefault(m, []).append(value)
        for v, cs in load_curves(curve_dirs[seed], variants).items():
            for c, values in cs.items():
                curves.setdefault(v, {}).setdefault(c, []).append(values)
    write_json(path, {"made_on": machine(), "seeds": seeds, "variants": runs,
                      DATA: data or {}, "curves": curves})
    return load_baseline(path)


def floor_for(metric: str, floors: dict[str, float]) -> float:
    kind = "loss" if "loss" in metric else "chrf" if "chrf" in metric else "bleu"
    return floors[kind]


def bands_of(base: Baseline, k: float, floors: dict[str, float]
             ) -> dict[str, dict[str, tuple[float, str]]]:
    """{variant: {metric: (band, where it comes from)}}: k x the larger of the metric's sample
    standard deviation over the seeds and its pooled one over every variant (the root mean
    square: an estimate from 5 runs can fall well under the truth, one from 30 seldom), or
    the floor where that is smaller."""
    pooled = {}
    for m in {m for metrics in base.runs.values() for m in metrics}:
        variances = [statistics.variance(ms[m]) for ms in base.runs.values() if m in ms]
        pooled[m] = math.sqrt(statistics.fmean(variances))
    out: dict[str, dict[str, tuple[float, str]]] = {}
    for v, metrics in base.runs.items():
        for m, values in metrics.items():
            sd, floor = statistics.stdev(values), floor_for(m, floors)
            spread = max(sd, pooled[m])
            why = f"{k:g} x max(sd {sd:.4f}, pooled {pooled[m]:.4f})"
            out.setdefault(v, {})[m] = ((k * spread, why) if k * spread >= floor
                                        else (floor, f"floor ({why} is less)"))
    return out


def tolerances_yaml(base: Baseline, baseline_path: str, k: float, floors: dict[str, float],
                    when: str) -> str:
    """ci/tolerances.yaml: k, the floors, and every band with where it comes from."""
    seeds = ", ".join(map(str, base.seeds))
    lines = [
        "# The metrics gate's noise bands, written by `bash ci/pipeline.sh --update-baseline`",
        f"# ({when}; {describe(base.made_on)}).",
        f"# The baseline is the mean of the {len(base.seeds)} runs in {baseline_path} (beside this "
        "file;",
        f"# train.seed {seeds}; nothing else differs). Each band is k x the larger of two",
        "# standard deviations of the metric: over those runs, and pooled over the six variants",
        "# (from 5 runs alone an sd can come out far too small), or the floor where that is",
        "# smaller. A fresh run fails when a metric is further than its band from the mean, in",
        f"# either direction. Why k is {k:g}, how far another seed (7) came, and what the",
        "# battery in ci/mutations/ shows at it: BENCHMARKS.md ('The metrics gate').",
        f"k: {k:g}",
        "floors: {" + ", ".join(f"{n}: {v:g}" for n, v in floors.items()) + "}",
        "bands:",
    ]
    for v, metrics in bands_of(base, k, floors).items():
        lines.append(f"  {v}:")
        for m, (band, why) in metrics.items():
            lines.append(f"    {m}: {band:.4f}  # {why}")
    return "\n".join(lines) + "\n"


def load_bands(path: str | Path) -> dict[str, dict[str, float]]:
    data = load_params(path)  # any YAML mapping, read with the same one-line errors
    bands = data.get("bands") if isinstance(data, dict) else None
    if not isinstance(bands, dict):
        raise PipelineError(f"{path}: expected 'bands: {{variant: {{metric: band}}}}'")
    out: dict[str, dict[str, float]] = {}
    for v, metrics in bands.items():
        if not isinstance(metrics, dict):
            raise PipelineError(f"{path}: bands.{v}: expected {{metric: band}}")
        for m, value in metrics.items():
            band = number(value, f"{path}: bands.{v}.{m}")
            if band < 0:
                raise PipelineError(f"{path}: bands.{v}.{m}: a band must not be negative")
            out.setdefault(v, {})[m] = band
    return out


# ---- the exact record: one seed's run, to the last digit and line ---------------------------

def write_exact(path: str | Path, folder: str | Path, seed: int, base: Baseline) -> dict:
    """ci/exact.json from the run in `folder` (made with train.seed `seed`): per variant its
    weights' hash, every figure and its scored files' line hashes (runs.exact_of). The run
    must be the baseline's own run of that seed: its tracked metrics equal to the last digit,
    so that the exact rule and the bands speak of one baseline."""
    if seed not in base.seeds:
        raise PipelineError(f"update-baseline: seed {seed} is not among the baseline's seeds "
                            f"({', '.join(map(str, base.seeds))})")
    i = base.seeds.index(seed)
    current = load_current(folder, base.variants)
    exact = exact_of(folder, base.variants)
    for variant, metrics in base.runs.items():
        if current.get(variant) is None or not exact.get(variant, {}).get("weights_sha256"):
            raise PipelineError(f"{folder}: no metrics with a weights_sha256 for {variant}; "
                                "run the gate's pipeline (bash ci/pipeline.sh) first")
        moved = [m for m, values in metrics.items() if current[variant].get(m) != values[i]]
        if moved:
            m = moved[0]
            raise PipelineError(f"{folder}: {variant}.{m} is {current[variant].get(m)}, the "
                                f"baseline's seed {seed} has {metrics[m][i]}: this "
                                "run is not the baseline's; make both again: bash ci/pipeline.sh "
                                "--update-baseline")
    record = {"seed": seed, "made_on": machine(), "variants": exact}
    write_json(path, record)
    return record


def load_exact(path: str | Path) -> dict | None:
    """ci/exact.json, or None where there is none (the exact rule is then off)."""
    if not Path(path).exists():
        return None
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("variants"), dict):
        raise PipelineError(f"{path}: expected an exact record written by `fren-nmt "
                            "update-baseline` (no 'variants' in it)")
    return data
