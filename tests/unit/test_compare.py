"""fren-nmt compare: rows per experiment and variant from `dvc exp show --json`, in 100
columns, with the lesson's figures."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.evaluation.compare import (
    LESSON,
    PARAMS,
    _exp_rows,
    format_seed_table,
    format_table,
    from_folder,
    seed_groups,
)

METRICS = {"val_bleu": 54.21, "val_bleu_beam": 55.02, "val_chrf": 71.04, "val_chrf_beam": 71.96,
           "val_bleu_tok": 50.44, "test_bleu": 30.15, "test_bleu_beam": 31.26,
           "test_chrf": 52.5, "outside_bleu": 20.4, "outside_bleu_beam": 21.0, "val_loss": 1.3331,
           "val_loss_lesson": 3.848, "epochs": 12, "train_seconds": 252.0}


def revision(rev: str, name: str | None, variants: list[str]) -> dict:
    metrics = {f"metrics/{v}.json": {"data": METRICS} for v in variants}
    metrics["metrics/vocab.json"] = {"data": {"fr_vocab_size": 9}}
    return {"rev": rev, "name": name, "data": {"rev": rev, "metrics": metrics, "params": {}}}


def test_rows_from_dvc_exp_show_json(tmp_path: Path) -> None:
    sha = "a" * 40
    shown = [revision("workspace", None, ["basic", "all"]),
             {**revision(sha, "main", ["basic"]),
              "experiments": [{"revs": [revision("b" * 40, "quick-try", ["attention"])]}]}]
    names = [name for name, _ in _exp_rows(json.loads(json.dumps(shown)))]
    assert names == ["workspace", "main", "quick-try"]
    rows = [(n, v, m[f"metrics/{v}.json"]) for n, m in _exp_rows(shown)
            for v in ("basic", "attention", "all") if f"metrics/{v}.json" in m]
    (tmp_path / "basic").mkdir()
    (tmp_path / "basic" / "model.pt").write_bytes(b"x")
    table = format_table(rows, models=tmp_path)
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert lines[0].split() == ["experiment", "variant", "test", "beam", "chrF", "outside",
                                "beam", "valid", "beam", "tok", "val_loss", "epochs", "train"]
    assert lines[2].split() == ["workspace", "basic", "30.1", "31.3", "52.5", "20.4", "21.0",
                                "54.2", "55.0", "50.4", "1.333", "12", "4.2", "min"]
    assert f"basic {LESSON['basic'][0]:.3f}" in table  # the lesson's figure, under the table
    assert lines[3].startswith("workspace*")  # all: no model here, committed metrics
    assert lines[4].split()[:2] == ["main", "basic"] and lines[5].startswith("quick-try")
    assert len([line for line in lines if line.startswith("quick-try")]) == 1
    assert "* committed metrics" in table


def test_an_experiment_shows_only_what_it_changed() -> None:
    sha = "c" * 40
    exp = revision("d" * 40, "par-bidir", ["basic", "bidir"])
    exp["data"]["metrics"]["metrics/bidir.json"] = {"data": {**METRICS, "val_bleu": 40.0}}
    shown = [{**revision(sha, "main", ["basic", "bidir"]), "experiments": [{"revs": [exp]}]}]
    rows = dict(_exp_rows(shown))
    assert set(rows["main"]) - {PARAMS} == {"metrics/basic.json", "metrics/bidir.json",
                                            "metrics/vocab.json"}
    assert set(rows["par-bidir"]) - {PARAMS} == {"metrics/bidir.json"}  # basic's: main's own


def test_the_kept_epoch_shows_when_it_is_not_the_last(tmp_path: Path) -> None:
    (tmp_path / "basic.json").write_text(json.dumps({**METRICS, "best_epoch": 9}))
    (tmp_path / "bidir.json").write_text(json.dumps({**METRICS, "best_epoch": 12}))
    lines = format_table(from_folder(tmp_path)).splitlines()
    assert lines[2].split()[11] == "9/12" and lines[3].split()[11] == "12"


def test_a_metrics_folder_marks_the_variants_without_a_model(tmp_path: Path) -> None:
    """`compare --metrics metrics` after a quick run: the committed full run's rows beside the
    one variant trained here are marked, as the workspace's are."""
    (tmp_path / "metrics").mkdir()
    for v in ("basic", "transformer"):
        (tmp_path / "metrics" / f"{v}.json").write_text(json.dumps(METRICS))
    (tmp_path / "models" / "transformer").mkdir(parents=True)
    (tmp_path / "models" / "transformer" / "model.pt").write_bytes(b"x")
    folder = str(tmp_path / "metrics")
    lines = format_table(from_folder(folder), models=tmp_path / "models",
                         here=folder).splitlines()
    assert [line.split()[0][-1] == "*" for line in lines[2:4]] == [True, False]
    assert lines[-1].startswith("* committed metrics")


def test_rows_from_a_folder(tmp_path: Path) -> None:
    (tmp_path / "bidir.json").write_text(json.dumps({"val_bleu": 12.5}))
    rows = from_folder(tmp_path)
    assert [(v, m["val_bleu"]) for _, v, m in rows] == [("bidir", 12.5)]
    # the lesson's split: no test set, so no test figures; no outside figures either
    assert format_table(rows).splitlines()[2].split()[2:9] == ["-"] * 5 + ["12.5", "-"]


def test_runs_that_differ_only_in_the_seed_are_grouped() -> None:
    """Made-up experiments: three seeds of `all` and of `transformer`, one of them also the
    workspace (counted once), one with another lr (not grouped), one seed of basic alone."""
    def row(name: str, variant: str, seed: int, bleu: float, lr: float = 1e-3) -> tuple:
        params = {"train.seed": seed, "train.lr": lr, "vocab.split": "grouped"}
        return (name, variant, {"test_bleu": bleu, "test_chrf": bleu + 20, "val_bleu": bleu + 1,
                                "val_loss": 1.0 + bleu / 100, PARAMS: params})

    rows = [row("workspace", "all", 1, 30.0), row("s1", "all", 1, 30.0),
            row("s2", "all", 2, 32.0), row("s3", "all", 3, 34.0),
            row("s1", "transformer", 1, 28.0), row("s2", "transformer", 2, 28.5),
            row("s3", "transformer", 3, 29.0), row("lr", "all", 2, 50.0, lr=5e-3),
            row("b", "basic", 1, 20.0)]
    groups = {variant: (seeds, stats) for variant, seeds, stats in seed_groups(rows)}
    assert set(groups) == {"all", "transformer"}  # basic has one seed; the lr run is apart
    seeds, stats = groups["all"]
    assert seeds == [1, 2, 3]
    mean, sd, n = stats["test_bleu"]
    assert (mean, n) == (32.0, 3) and abs(sd - 2.0) < 1e-12  # sample standard deviation
    table = format_seed_table(seed_groups(rows))
    assert "32.0 ± 2.0 (3)" in table and "28.5 ± 0.5 (3)" in table
    assert table.splitlines()[0].startswith("Runs that differ only in train.seed")


def test_experiments_carry_their_params_and_commits_do_not() -> None:
    """A commit's committed metrics may come from another run than its params (found with
    queue_seeds.sh: the commit joined its experiments' group), so only experiments are
    grouped by seed."""
    def params(seed: int) -> dict:
        return {"params.yaml": {"data": {"train": {"seed": seed, "lr": 0.001}}}}

    exp = revision("e" * 40, "seed-2", ["all"])
    exp["data"]["params"] = params(2)
    commit = {**revision("f" * 40, "main", ["basic"]), "experiments": [{"revs": [exp]}]}
    commit["data"]["params"] = params(0)
    rows = dict(_exp_rows([commit]))
    assert rows["main"][PARAMS] is None
    assert rows["seed-2"][PARAMS] == {"train.seed": 2, "train.lr": 0.001}
