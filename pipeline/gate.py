"""The metrics gate: compare fresh metrics with a committed baseline, variant by variant.

DVC's `metrics diff` only reports; this fails. A metric fails when it is worse than the
baseline by more than its tolerance (BLEU lower, a loss higher); a variant or metric that the
baseline has and the fresh run lacks fails too.

The numbers depend on the CPU's instruction set unless it is pinned (ci/isa.env, set by
ci/pipeline.sh): the report names the CPU and the pin of this run and of the baseline's.
"""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from pipeline.files import PipelineError, read_json, write_json
from pipeline.params import load_params

HIGHER_IS_BETTER = {f"{s}_{m}{b}" for s in ("val", "test") for m in ("bleu", "chrf")
                    for b in ("", "_beam")} | {"val_bleu_tok", "val_bleu_tok_beam"}
LOWER_IS_BETTER = {"val_loss", "val_loss_lesson", "test_loss"}
TRACKED = HIGHER_IS_BETTER | LOWER_IS_BETTER
MADE_ON = "_made_on"  # the baseline's one key that is not a variant: the machine it came from
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


def describe(m: dict[str, str]) -> str:
    return (f"{m.get('cpu', '?')}; pin: {m.get('pin', '?')}; "
            f"PyTorch kernels: {m.get('torch_kernels', '?')}")


@dataclass
class Row:
    variant: str
    metric: str
    baseline: float | None
    now: float | None
    verdict: str  # ok | WORSE | MISSING

    @property
    def change(self) -> float | None:
        if self.baseline is None or self.now is None:
            return None
        return self.now - self.baseline


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PipelineError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def load_baseline(path: str | Path) -> dict[str, dict[str, float]]:
    data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise PipelineError(f"{path}: expected {{variant: {{metric: value}}}}")
    out = {}
    for variant, metrics in data.items():
        if variant == MADE_ON:
            continue
        if not isinstance(metrics, dict):
            raise PipelineError(f"{path}: {variant}: expected {{metric: value}}")
        out[variant] = {m: _number(v, f"{path}: {variant}.{m}") for m, v in metrics.items()}
    return out


def baseline_machine(path: str | Path) -> dict[str, str] | None:
    """The machine a baseline was made on (None for a baseline written before it was kept)."""
    made_on = read_json(path).get(MADE_ON)
    return made_on if isinstance(made_on, dict) else None


def load_current(folder: str | Path, variants: list[str]) -> dict[str, dict[str, float] | None]:
    """metrics/VARIANT.json for each variant; None where the file is missing."""
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
    return out


def load_tolerances(path: str | Path) -> dict[str, float]:
    """{metric: how much worse it may get}; the key `default` covers the others."""
    data = load_params(path)  # any YAML mapping, read with the same one-line errors
    tol = {k: _number(v, f"{path}: {k}") for k, v in data.items()}
    if any(v < 0 for v in tol.values()):
        raise PipelineError(f"{path}: tolerances must not be negative")
    tol.setdefault("default", 0.0)
    return tol


def check(baseline: dict[str, dict[str, float]], current: dict[str, dict[str, float] | None],
          tolerances: dict[str, float]) -> tuple[list[Row], bool]:
    rows: list[Row] = []
    for variant, metrics in baseline.items():
        now_metrics = current.get(variant)
        for metric, base in metrics.items():
            now = None if now_metrics is None else now_metrics.get(metric)
            if now is None:
                rows.append(Row(variant, metric, base, None, "MISSING"))
                continue
            tol = tolerances.get(metric, tolerances["default"])
            worse = base - now if metric in HIGHER_IS_BETTER else now - base
            rows.append(Row(variant, metric, base, now, "WORSE" if worse > tol + 1e-9 else "ok"))
    return rows, all(r.verdict == "ok" for r in rows)


def format_table(rows: list[Row]) -> str:
    def num(x: float | None, sign: bool = False) -> str:
        return "-" if x is None else (f"{x:+.4f}" if sign else f"{x:.4f}")

    header = ("variant", "metric", "baseline", "now", "change", "verdict")
    body = [(r.variant, r.metric, num(r.baseline), num(r.now), num(r.change, True), r.verdict)
            for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)) for line in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def update_baseline(folder: str | Path, path: str | Path, variants: list[str]) -> Path:
    """Write the tracked metrics of `variants` from `folder` as the new baseline."""
    current = load_current(folder, variants)
    missing = [v for v, m in current.items() if m is None]
    if missing:
        raise PipelineError(f"{folder}: no metrics for {', '.join(missing)}; run the pipeline")
    write_json(path, {MADE_ON: machine(), **{v: dict(sorted(m.items()))
                                             for v, m in current.items()}})
    return Path(path)
