"""`fren-nmt significance`: whether one system's BLEU and chrF differ from another's beyond
chance, on the same sentences.

A BLEU difference of a point on 900 short sentences can be the sample, not the system. This
asks sacreBLEU's own paired tests (its `--paired-bs` and `--paired-ar`; nothing is
re-implemented here): paired bootstrap resampling (1,000 resamples, seeded: each system's
mean and 95% interval, and a p-value against the first system) and approximate randomization
(10,000 trials: a p-value against the first system). A system is a file of translations, one
line per reference: what `evaluate@VARIANT` writes to reports/VARIANT/translations/, or
benchmarks/ensembles.py, or any other system's output of the same sentences.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.evaluation.table import text_table

SEED = 12345  # sacreBLEU's own default seed for its tests
ALPHA = 0.05  # a difference is called significant when both tests give p below this


@dataclass
class Row:
    """One system's figures: score, bootstrap mean and 95% half-interval, and the p-values of
    both tests against the first system (None for the first)."""

    name: str
    metric: str
    score: float
    mean: float
    ci: float
    p_bootstrap: float | None
    p_randomization: float | None
    identical: bool = False  # the same translations as the first system

    @property
    def significant(self) -> bool | None:
        if self.p_bootstrap is None or self.p_randomization is None:
            return None
        # sacreBLEU, after MultEval, never credits a zero difference to chance: identical
        # systems get the smallest p it can give. They do not differ.
        return not self.identical and self.p_bootstrap < ALPHA and self.p_randomization < ALPHA


def read_system(path: str | Path, expected: int | None = None) -> list[str]:
    """A file's lines (UTF-8, one translation each); `expected`: the references' count."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except FileNotFoundError:
        raise PipelineError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise PipelineError(f"{path}: not UTF-8 text ({e.reason})") from None
    if lines and lines[-1] == "":
        lines.pop()  # the newline after the last line
    if expected is not None and len(lines) != expected:
        raise PipelineError(f"{path}: {len(lines)} lines, but the references have {expected}: "
                            "the systems must translate the same sentences")
    return lines


def paired_tests(references: list[str], systems: list[tuple[str, list[str]]],
                 resamples: int = 1000, trials: int = 10000, seed: int = SEED) -> list[Row]:
    """Both of sacreBLEU's paired tests of every system against the first, for BLEU and chrF
    (sacreBLEU's defaults: 13a, cased; character 6-grams)."""
    from sacrebleu.metrics import BLEU, CHRF
    from sacrebleu.significance import PairedTest

    if len(systems) < 2:
        raise PipelineError("significance: give at least two systems (the first is the "
                            "baseline the others are tested against)")
    before = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)  # how sacreBLEU seeds its resampling
    try:
        found = {}
        for test, n, extra in (("bs", resamples, {}),
                               ("ar", trials, {"n_ar_confidence": -1})):
            metrics = {"BLEU": BLEU(references=[references]),
                       "chrF": CHRF(references=[references])}
            _, scores = PairedTest(systems, metrics, references=None, test_type=test,
                                   n_samples=n, **extra)()
            found[test] = scores
    finally:
        if before is None:
            os.environ.pop("SACREBLEU_SEED", None)
        else:
            os.environ["SACREBLEU_SEED"] = before
    rows = []
    for metric in (k for k in found["bs"] if k != "System"):  # sacreBLEU's names: BLEU, chrF2
        for i, (name, _) in enumerate(systems):
            bs, ar = found["bs"][metric][i], found["ar"][metric][i]
            rows.append(Row(name, metric, float(bs.score), float(bs.mean), float(bs.ci),
                            None if i == 0 else float(bs.p_value),
                            None if i == 0 else float(ar.p_value),
                            identical=i > 0 and list(systems[i][1]) == list(systems[0][1])))
    return rows


def format_table(rows: list[Row], sentences: int) -> str:
    header = ("metric", "system", "score", "mean ± 95% CI", "p (bootstrap)", "p (AR)",
              "significant")
    body = []
    for r in rows:
        verdict = "identical" if r.identical else {None: "baseline", True: "yes",
                                                   False: "no"}[r.significant]
        body.append((r.metric, r.name, f"{r.score:.2f}", f"{r.mean:.2f} ± {r.ci:.2f}",
                     "-" if r.p_bootstrap is None else f"{r.p_bootstrap:.4f}",
                     "-" if r.p_randomization is None else f"{r.p_randomization:.4f}",
                     verdict))
    lines = [text_table(header, body)]
    notes = [f"{sentences:,} sentences. Each system against the first: paired bootstrap "
             "(1,000 resamples, seeded) and approximate",
             f"randomization (10,000 trials), sacreBLEU's. significant: p < {ALPHA} in both."]
    return "\n".join(lines + [""] + notes)


def resolve(system: str, subset: str, search: str) -> tuple[str, Path]:
    """NAME=FILE, a file, or an evaluate report folder (reports/VARIANT: its
    translations/SUBSET.SEARCH.txt), as (name, path)."""
    name, _, path = system.rpartition("=") if "=" in system else ("", "", system)
    p = Path(path)
    if p.is_dir():
        name = name or p.name
        p = p / "translations" / f"{subset}.{search}.txt"
    return name or p.stem, p


def reference_for(systems: list[str], subset: str) -> Path:
    """The references beside the first report folder named (translations/SUBSET.ref.txt)."""
    for system in systems:
        p = Path(system.rpartition("=")[2] if "=" in system else system)
        if p.is_dir():
            return p / "translations" / f"{subset}.ref.txt"
    raise PipelineError("significance: no report folder among the systems to take the "
                        "references from; give --ref FILE")


def workspace_significance(rows: list, reports: Path) -> str:
    """The paired tests of the variants whose test translations are in `reports` (this
    workspace's evaluate outputs), against the one with the best validation BLEU (chosen on
    valid: the test set is only reported)."""
    here = {v: m for name, v, m in rows if name == "workspace"}
    have = [v for v in here if (reports / v / "translations" / "test.greedy.txt").exists()]
    if len(have) < 2:
        raise PipelineError(f"compare --significance: the test translations of two variants "
                            f"or more are needed in {reports}/VARIANT/translations (found: "
                            f"{', '.join(have) or 'none'}); run their evaluate stages")
    have.sort(key=lambda v: -float(here[v].get("val_bleu") or 0))
    refs = read_system(reports / have[0] / "translations" / "test.ref.txt")
    systems = [(v, read_system(reports / v / "translations" / "test.greedy.txt", len(refs)))
               for v in have]
    return ("Paired tests on the test set (greedy), against the best on valid:\n"
            + format_table(paired_tests(refs, systems), len(refs)))
