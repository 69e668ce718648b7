"""`fren-nmt compare`: the variants' BLEU, losses, epochs and training time, per experiment,
in a table that fits 100 columns, with the lesson's figures beside them.

`dvc exp show` lists every param and metric (over 160 columns here); this keeps what a
comparison of variants needs. Rows come from `dvc exp show --json` (the workspace, the last
commit and each experiment of it), or from a metrics folder alone.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.evaluation.table import text_table
from pipeline.files import read_json
from pipeline.params import workspace_variants

# The lesson's validation losses on Giga-fren (notebook, and the course notes); DESIGN.md.
LESSON = {"basic": (3.5812, 3.5963), "bidir": (3.5140, 3.3738),
          "teacher_forcing": (3.4906, 3.4329), "attention": (3.3686, 3.2406),
          "all": (3.3242, None), "transformer": (None, None)}
PARAMS = "_params"  # where a row's flattened params travel beside its metrics
COLUMNS = ("experiment", "variant", "test", "beam", "chrF", "outside", "beam", "valid", "beam",
           "tok", "val_loss", "epochs", "train")


def _flat(tree: object, prefix: str = "") -> dict[str, object]:
    """{"train.seed": 0, ...} from nested params."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, object] = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def exp_params(node: dict) -> dict[str, object]:
    """A revision's params.yaml in `dvc exp show --json`, flattened."""
    params = ((node.get("data") or {}).get("params") or {}).get("params.yaml") or {}
    return _flat(params.get("data") or {})


def _exp_rows(node: object, parent: dict | None = None) -> Iterator[tuple[str, dict]]:
    """(name, {metrics file: values}) for every revision in `dvc exp show --json`. An
    experiment keeps only the files that differ from its commit's: the others are the
    commit's own (committed metrics of variants the experiment did not run). An experiment's
    flattened params are under the key PARAMS (None for the workspace and commits: their
    metrics may come from another run than their params, as a commit's committed metrics do)."""
    if isinstance(node, list):
        for item in node:
            yield from _exp_rows(item, parent)
    elif isinstance(node, dict):
        data = node.get("data")
        own = parent
        if isinstance(data, dict) and "rev" in node:
            metrics = {path: (m or {}).get("data") or {}
                       for path, m in (data.get("metrics") or {}).items()}
            rev = str(node["rev"])
            name = node.get("name") or (rev[:7] if len(rev) == 40 else rev)  # a commit: short
            if parent is not None:
                metrics = {k: v for k, v in metrics.items() if parent.get(k) != v}
            own = metrics
            yield name, {**metrics, PARAMS: None if parent is None else exp_params(node)}
        for key in ("experiments", "revs"):
            if key in node:
                yield from _exp_rows(node[key], own if key == "experiments" else parent)


def from_dvc(repo: str | Path = ".") -> list[tuple[str, str, dict]]:
    try:
        out = subprocess.run(["dvc", "exp", "show", "--json"], cwd=repo, capture_output=True,
                             text=True, check=True).stdout
    except FileNotFoundError:
        raise PipelineError("compare: dvc is not installed (or use --metrics DIR)") from None
    except subprocess.CalledProcessError as e:
        last = (e.stderr.strip().splitlines() or ["no message"])[-1]
        raise PipelineError(f"compare: `dvc exp show --json` failed: {last}") from None
    rows = []
    variants = workspace_variants(repo)
    for name, metrics in _exp_rows(json.loads(out)):
        for variant in variants:
            values = metrics.get(f"metrics/{variant}.json")
            if values:
                rows.append((name, variant, {**values, PARAMS: metrics[PARAMS]}))
    return rows


SEED = "train.seed"
SEED_COLUMNS = (("test_bleu", "test BLEU"), ("test_chrf", "test chrF"), ("val_bleu", "valid BLEU"),
                ("val_loss", "val_loss"))


def seed_groups(rows: list[tuple[str, str, dict]]) -> list[tuple[str, list, dict]]:
    """The experiments of each variant whose params differ only in train.seed, as (variant,
    seeds, {metric: (mean, sd, n)}) for groups of two seeds or more (the workspace and
    commits have no params here: their metrics need not be their params' run)."""
    import statistics

    found: dict[tuple, dict] = {}
    for _, variant, values in rows:
        params = values.get(PARAMS)
        if not params or SEED not in params:
            continue
        rest = json.dumps({k: v for k, v in params.items() if k != SEED}, sort_keys=True,
                          default=str)
        found.setdefault((variant, rest), {}).setdefault(params[SEED], values)
    out = []
    for (variant, _), by_seed in found.items():
        if len(by_seed) < 2:
            continue
        stats = {}
        for key, _ in SEED_COLUMNS:
            xs = [v[key] for v in by_seed.values() if isinstance(v.get(key), int | float)]
            if len(xs) >= 2:
                stats[key] = (statistics.mean(xs), statistics.stdev(xs), len(xs))
        out.append((variant, sorted(by_seed, key=str), stats))
    return out


def format_seed_table(groups: list[tuple[str, list, dict]]) -> str:
    """Mean ± standard deviation (n) of each variant's runs that differ only in the seed."""
    header = ("variant", "seeds", *(title for _, title in SEED_COLUMNS))
    body = []
    for variant, seeds, stats in groups:
        cells = []
        for key, _ in SEED_COLUMNS:
            if key not in stats:
                cells.append("-")
                continue
            mean, sd, n = stats[key]
            digits = 3 if key == "val_loss" else 1
            cells.append(f"{mean:.{digits}f} ± {sd:.{digits}f} ({n})")
        body.append((variant, ",".join(map(str, seeds)), *cells))
    return "\n".join(["Runs that differ only in train.seed: mean ± standard deviation (n)",
                      text_table(header, body)])


def from_folder(folder: str | Path) -> list[tuple[str, str, dict]]:
    rows = []
    for variant in workspace_variants():
        path = Path(folder) / f"{variant}.json"
        if path.exists():
            rows.append((str(folder), variant, read_json(path)))
    return rows


def format_table(rows: list[tuple[str, str, dict]], models: str | Path | None = None,
                 here: str = "workspace") -> str:
    """The table; with `models`, a row of this workspace (named `here`: "workspace", or the
    --metrics folder) whose model directory is absent is marked with * (committed metrics,
    not trained in this workspace)."""
    def num(values: dict, key: str, fmt: str) -> str:
        v = values.get(key)
        return format(v, fmt) if isinstance(v, int | float) else "-"

    def epochs(values: dict) -> str:  # "kept/trained" when the kept epoch is not the last
        best, ran = values.get("best_epoch"), num(values, "epochs", "d")
        return f"{best}/{ran}" if isinstance(best, int) and str(best) != ran else ran

    body, marked = [], False
    for name, variant, m in rows:
        secs = m.get("train_seconds")
        star = ""
        if models is not None and name == here and \
                not (Path(models) / variant / "model.pt").exists():
            star, marked = "*", True
        body.append((name[:18] + star, variant, num(m, "test_bleu", ".1f"),
                     num(m, "test_bleu_beam", ".1f"), num(m, "test_chrf", ".1f"),
                     num(m, "outside_bleu", ".1f"), num(m, "outside_bleu_beam", ".1f"),
                     num(m, "val_bleu", ".1f"), num(m, "val_bleu_beam", ".1f"),
                     num(m, "val_bleu_tok", ".1f"), num(m, "val_loss", ".3f"),
                     epochs(m),
                     f"{secs / 60:.1f} min" if isinstance(secs, int | float) else "-"))
    lines = [text_table(COLUMNS, body, right=range(2, len(COLUMNS)))]
    notes = ["test, outside, valid: BLEU of greedy search, then beam search, and test chrF:",
             "sacreBLEU's defaults on the printed text against the original English. test:",
             "questions like the corpus's own; outside: questions written apart from the corpus",
             "(outside/); valid: the set every choice is made on. tok: the lesson's BLEU on",
             "lowercased tokens (valid, greedy). A test of - : no test set (the lesson's",
             "split). The lesson notebook's val_loss on Giga-fren, for the val_loss column:",
             "  " + ", ".join(f"{v} {lesson[0]:.3f}" for v, lesson in LESSON.items()
                              if lesson[0]) + ".",
             "epochs: trained, or kept/trained when train.keep kept an earlier epoch."]
    if marked:
        notes.append("* committed metrics: that variant was not trained in this workspace.")
    return "\n".join(lines + [""] + notes)
