"""What one run of the gate's pipeline measured: the tracked metrics, the data counts, the
scores recomputed from the files it scored, the search checks and the validation curves; and
the machine it ran on."""

from __future__ import annotations

import hashlib
import math
import os
import platform
from pathlib import Path

from pipeline.cpu import cpu_fields
from pipeline.errors import PipelineError
from pipeline.evaluation.metrics import HIGHER_IS_BETTER, LOWER_IS_BETTER
from pipeline.evaluation.significance import read_system
from pipeline.files import read_json

TRACKED = HIGHER_IS_BETTER | LOWER_IS_BETTER
DATA = "data"  # the baseline's counts of the data stages: exact, whatever the seed
NOT_DATA = {"tokenize.workers"}  # how the work was shared out, not what it made
CURVES = ("val_loss", "val_bleu")  # per-epoch validation curves kept for the report's plot
PIN_VARS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")  # what ci/isa.env sets


def cpu_name() -> str:
    """The CPU's model name and the widest vector instruction set it has."""
    fields = cpu_fields()
    name = fields.get("model name") or platform.processor() or platform.machine()
    if not fields:
        return name
    flags = set(fields.get("flags", "").split())
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


def number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PipelineError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _leaves(obj: object, prefix: str, out: dict[str, object], numbers: bool = True) -> None:
    """The leaves of nested mappings under their dotted names: the numbers, or every value."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _leaves(v, f"{prefix}{k}.", out, numbers)
    elif not numbers or isinstance(obj, int | float) and not isinstance(obj, bool):
        out[prefix[:-1]] = obj


def data_counts(folder: str | Path) -> dict[str, float]:
    """The data stages' numbers (metrics/filter, tokenize, data, vocab, pool and
    subwords.json), flattened: what a change to filtering, tokenizing, splitting, the
    vocabularies, the pool and its guard or the pieces moves."""
    out: dict[str, float] = {}
    for name in ("filter", "tokenize", "data", "vocab", "pool", "subwords"):
        path = Path(folder) / f"{name}.json"
        if path.exists():
            found: dict[str, object] = {}
            _leaves(read_json(path), f"{name}.", found)
            out.update({k: number(v, f"{path}: {k}") for k, v in found.items()
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
        out[variant] = {m: number(v, f"{path}: {m}") for m, v in data.items() if m in TRACKED}
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
        out[variant] = {f"search_check.{k}": number(found[k], f"{path}: search_check.{k}")
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


# ---- what the exact rule compares -------------------------------------------------------

NOT_EXACT = ("train_seconds", "decode_sentences_per_second", "weights_sha256")  # time, or the key


def line_hashes(path: Path) -> str:
    """Each line's SHA-256, its first 8 hex digits, one after another: which lines of a file
    changed, without keeping the text (it quotes the corpus)."""
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]
    return "".join(hashlib.sha256(line.encode("utf-8")).hexdigest()[:8] for line in lines)


def exact_of(folder: str | Path, variants: list[str]) -> dict[str, dict]:
    """For each variant of the run in `folder`: its kept weights' hash, every figure of
    metrics/VARIANT.json but the timings (numbers, signatures, the settings that ran), and the
    line hashes of each file it scored (translations/VARIANT/*.txt)."""
    out: dict[str, dict] = {}
    for variant in variants:
        path = Path(folder) / f"{variant}.json"
        if not path.exists():
            continue
        data = read_json(path)
        figures: dict[str, object] = {}
        _leaves(data, "", figures, numbers=False)
        files = sorted((Path(folder) / "translations" / variant).glob("*.txt"))
        out[variant] = {
            "weights_sha256": data.get("weights_sha256"),
            "figures": {k: v for k, v in figures.items() if not k.startswith(NOT_EXACT)},
            "lines": {f.name: line_hashes(f) for f in files}}
    return out
