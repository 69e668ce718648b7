"""The metrics gate: does a change move the small CI pipeline's metrics beyond their noise?

The baseline (ci/baseline.json) holds every metric of several runs of the gate's pipeline that
differ only in train.seed, and the data report's counts. A metric passes while it stays
within its band of the seeds' mean, in either direction; outside it, it is WORSE or BETTER,
and both fail: a short run that looks better can be a full run broken (a schedule, a
regularizer), and a baseline is moved on purpose, in the change that moves it. The bands
(ci/tolerances.yaml) are k times each metric's standard deviation over the seeds, never under
a floor; `tolerances_yaml` writes them with where each comes from. The data counts do not
depend on the seed: any change to one is CHANGED. And the scores are recomputed from the
files the run scored, with sacreBLEU's defaults: a change to the metric is a MISMATCH. So is
a search whose own figures disagree with the model's teacher-forced forward (evaluate's
search_check, pipeline/evaluation/search_check.py): its counts must be 0, whatever the
model learned.

The numbers depend on the CPU's instruction set unless it is pinned (ci/isa.env, set by
ci/pipeline.sh): the report names the CPU and the pin of this run and of the baseline's.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
from dataclasses import dataclass
from pathlib import Path

from pipeline.evaluation.significance import read_system
from pipeline.files import PipelineError, atomic_path, read_json, write_json
from pipeline.params import load_params

HIGHER_IS_BETTER = {f"{s}_{m}{b}" for s in ("val", "test") for m in ("bleu", "chrf")
                    for b in ("", "_beam")} | {"val_bleu_tok", "val_bleu_tok_beam"}
LOWER_IS_BETTER = {"val_loss", "val_loss_lesson", "test_loss"}
TRACKED = HIGHER_IS_BETTER | LOWER_IS_BETTER
DATA = "data"  # the baseline's counts of the data stages: exact, whatever the seed
NOT_DATA = {"tokenize.workers"}  # how the work was shared out, not what it made
CURVES = ("val_loss", "val_bleu")  # per-epoch validation curves kept for the report's plot
PIN_VARS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")  # what ci/isa.env sets


def cpu_name() -> str:
    """The CPU's model name and the widest vector instruction set it has."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        return name
    widest = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name} ({widest})"


def machine() -> dict[str, str]:
    """Where these numbers are computed: the CPU, and the instruction-set pin in force."""
    import torch

    pins = " ".join(f"{k}={os.environ[k]}" for k in PIN_VARS if os.environ.get(k))
    return {"cpu": cpu_name(), "pin": pins or "none",
            "torch_kernels": torch.backends.cpu.get_cpu_capability()}


def describe(m: dict[str, str] | None) -> str:
    if not m:
        return "not recorded"
    return (f"{m.get('cpu', '?')}; pin: {m.get('pin', '?')}; "
            f"PyTorch kernels: {m.get('torch_kernels', '?')}")


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PipelineError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


# ---- one run's metrics -------------------------------------------------------------------

def _leaves(obj: object, prefix: str, out: dict[str, object]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _leaves(v, f"{prefix}{k}.", out)
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        out[prefix[:-1]] = obj


def data_counts(folder: str | Path) -> dict[str, float]:
    """The data stages' numbers (metrics/filter, tokenize, data and vocab.json), flattened:
    what a change to filtering, tokenizing, splitting or the vocabularies moves."""
    out: dict[str, float] = {}
    for name in ("filter", "tokenize", "data", "vocab"):
        path = Path(folder) / f"{name}.json"
        if path.exists():
            found: dict[str, object] = {}
            _leaves(read_json(path), f"{name}.", found)
            out.update({k: _number(v, f"{path}: {k}") for k, v in found.items()
                        if k not in NOT_DATA})
    return out


def load_current(folder: str | Path, variants: list[str]) -> dict[str, dict[str, float] | None]:
    """metrics/VARIANT.json's tracked metrics for each variant (None where the file is
    missing), and the data counts under DATA."""
    out: dict[str, dict[str, float] | None] = {}
    for variant in variants:
        path = Path(folder) / f"{variant}.json"
        if not path.exists():
            out[variant] = None
            continue
        data = read_json(path)
        if not isinstance(data, dict):
            raise PipelineError(f"{path}: expected a JSON object of metrics")
        out[variant] = {m: _number(v, f"{path}: {m}") for m, v in data.items() if m in TRACKED}
    out[DATA] = data_counts(folder) or None
    return out


SCORED = [(name, prefix, search, suffix) for name, prefix in (("valid", "val"), ("test", "test"))
          for search, suffix in (("greedy", ""), ("beam", "_beam"))]


def rescore(folder: str | Path, variants: list[str]) -> dict[str, dict[str, float]]:
    """BLEU and chrF of each variant's scored files (translations/VARIANT/SET.SEARCH.txt
    against SET.ref.txt), as sacreBLEU computes them with its defaults: what evaluate must
    have reported, whatever the models learned. A change to the metric itself shows here
    exactly, with no training noise in the way."""
    import sacrebleu  # its own defaults, not pipeline.evaluation.metrics: that is what is checked

    out: dict[str, dict[str, float]] = {}
    for variant in variants:
        folder_v = Path(folder) / "translations" / variant
        if not folder_v.is_dir():
            continue
        for name, prefix, search, suffix in SCORED:
            refs = read_system(folder_v / f"{name}.ref.txt")
            hyps = read_system(folder_v / f"{name}.{search}.txt", len(refs))
            out.setdefault(variant, {}).update({
                f"{prefix}_bleu{suffix}": sacrebleu.corpus_bleu(hyps, [refs]).score,
                f"{prefix}_chrf{suffix}": sacrebleu.corpus_chrf(hyps, [refs]).score})
    return out


SEARCH_COUNTS = ("greedy_not_argmax", "beam1_not_greedy", "beam_scores_off",
                 "padding_moves_scores")


def search_checks(folder: str | Path, variants: list[str]) -> dict[str, dict[str, float]]:
    """Each variant's search_check counts from metrics/VARIANT.json (an empty dict where the
    run wrote none, which the check reports MISSING)."""
    out: dict[str, dict[str, float]] = {}
    for variant in variants:
        path = Path(folder) / f"{variant}.json"
        if not path.exists():
            continue
        found = read_json(path).get("search_check") or {}
        out[variant] = {f"search_check.{k}": _number(found[k], f"{path}: search_check.{k}")
                        for k in SEARCH_COUNTS if k in found}
    return out


def load_curves(folder: str | Path, variants: list[str]) -> dict[str, dict[str, list[float]]]:
    """Each variant's per-epoch validation curves from dvclive's TSV files, where present."""
    out: dict[str, dict[str, list[float]]] = {}
    for variant in variants:
        for curve in CURVES:
            path = Path(folder) / variant / "plots" / "metrics" / f"{curve}.tsv"
            if path.exists():
                rows = path.read_text(encoding="utf-8").splitlines()[1:]
                out.setdefault(variant, {})[curve] = [float(r.split("\t")[1]) for r in rows]
    return out


# ---- the baseline: several seeds ---------------------------------------------------------

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
            runs[variant][metric] = [_number(v, where) for v in values]
    counts = {k: _number(v, f"{path}: data.{k}") for k, v in data.get(DATA, {}).items()}
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


# ---- bands -------------------------------------------------------------------------------

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
            band = _number(value, f"{path}: bands.{v}.{m}")
            if band < 0:
                raise PipelineError(f"{path}: bands.{v}.{m}: a band must not be negative")
            out.setdefault(v, {})[m] = band
    return out


# ---- the check ---------------------------------------------------------------------------

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
    body = [(r.variant, r.metric, *_cells(r), r.verdict) for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)) for line in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


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
