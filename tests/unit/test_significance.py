"""fren-nmt significance: sacreBLEU's paired tests through our command, on systems of our own."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.errors import PipelineError
from pipeline.evaluation.significance import paired_tests

WORDS = "what is this who are you where why when how the a of to it did go".split()


def corpus(n: int = 200, seed: int = 0) -> list[str]:
    rnd = random.Random(seed)
    return [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(3, 8))).capitalize() + "?"
            for _ in range(n)]


def with_errors(refs: list[str], rows: set[int]) -> list[str]:
    """The references with one word changed in each of `rows`."""
    return [r.replace(" ", " not ", 1) if i in rows else r for i, r in enumerate(refs)]


def by(rows: list, name: str, metric: str = "BLEU"):  # noqa: ANN201
    return next(r for r in rows if r.name == name and r.metric == metric)


def test_a_clearly_worse_system_differs_and_an_equal_one_does_not() -> None:
    refs = corpus()
    good = with_errors(refs, set(range(0, 200, 4)))       # errs on a quarter of the sentences
    equal = with_errors(refs, set(range(2, 200, 4)))      # as often, on other sentences
    worse = with_errors(refs, set(range(0, 200, 2)) | set(range(1, 200, 4)))  # on 3 in 4
    rows = paired_tests(refs, [("good", good), ("equal", equal), ("worse", worse),
                               ("same", list(good))], resamples=300, trials=2000)
    for metric in ("BLEU", "chrF2"):
        assert by(rows, "good", metric).significant is None  # the baseline
        w = by(rows, "worse", metric)
        assert w.score < by(rows, "good", metric).score
        assert w.p_bootstrap < 0.01 and w.p_randomization < 0.01 and w.significant
        e = by(rows, "equal", metric)
        assert e.p_bootstrap > 0.3 and e.p_randomization > 0.3 and e.significant is False
        s = by(rows, "same", metric)
        assert s.identical and s.significant is False  # sacreBLEU's p is tiny: not a difference
        b = by(rows, "good", metric)  # the bootstrap's interval holds the score
        assert b.mean - b.ci <= b.score <= b.mean + b.ci


def test_the_tests_are_seeded() -> None:
    refs = corpus(100)
    systems = [("a", with_errors(refs, {1, 5, 9})), ("b", with_errors(refs, {2, 3}))]
    first = paired_tests(refs, systems, resamples=200, trials=500)
    assert first == paired_tests(refs, systems, resamples=200, trials=500)


def test_the_command_reads_report_folders_and_prints_the_table(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    refs = corpus(60)
    for variant, rows in (("all", {1, 2}), ("basic", set(range(0, 60, 2)))):
        folder = tmp_path / "reports" / variant / "translations"
        folder.mkdir(parents=True)
        (folder / "test.ref.txt").write_text("\n".join(refs) + "\n")
        (folder / "test.greedy.txt").write_text("\n".join(with_errors(refs, rows)) + "\n")
    main(["significance", str(tmp_path / "reports/all"), str(tmp_path / "reports/basic"),
          "--resamples", "100", "--trials", "200"])
    out = capsys.readouterr().out
    assert f"references: {tmp_path / 'reports/all/translations/test.ref.txt'}" in out
    lines = out.splitlines()
    assert lines[1].split()[:3] == ["metric", "system", "score"]
    assert lines[3].split()[:2] == ["BLEU", "all"] and lines[3].split()[-1] == "baseline"
    assert lines[4].split()[:2] == ["BLEU", "basic"] and lines[4].split()[-1] == "yes"


def test_systems_of_other_sentences_are_refused_with_one_line(tmp_path: Path) -> None:
    ref, short = tmp_path / "ref.txt", tmp_path / "short.txt"
    ref.write_text("Who?\nWhy?\nWhat?\n")
    short.write_text("Who?\nWhy?\n")
    with pytest.raises(SystemExit):
        main(["significance", "--ref", str(ref), str(ref)])  # one system: nothing to test
    from pipeline.evaluation.significance import read_system

    with pytest.raises(PipelineError, match=r"short\.txt: 2 lines, but the references have 3"):
        read_system(short, 3)
    with pytest.raises(PipelineError, match=r"nope\.txt: no such file"):
        read_system(tmp_path / "nope.txt")


def test_compare_tests_the_workspace_s_variants_against_the_best(tmp_path: Path) -> None:
    from pipeline.evaluation.significance import workspace_significance

    refs = corpus(80)
    for variant, rows in (("all", {1}), ("basic", set(range(0, 80, 2)))):
        folder = tmp_path / variant / "translations"
        folder.mkdir(parents=True)
        (folder / "test.ref.txt").write_text("\n".join(refs) + "\n")
        (folder / "test.greedy.txt").write_text("\n".join(with_errors(refs, rows)) + "\n")
    # the baseline is the best on valid, whatever the test set says
    rows = [("workspace", "basic", {"val_bleu": 40.0, "test_bleu": 99.0}),
            ("workspace", "all", {"val_bleu": 90.0, "test_bleu": 10.0}),
            ("main", "bidir", {"val_bleu": 95.0})]  # not in this workspace: not tested
    out = workspace_significance(rows, tmp_path).splitlines()
    assert out[3].split()[:2] == ["BLEU", "all"] and out[3].split()[-1] == "baseline"
    assert out[4].split()[:2] == ["BLEU", "basic"] and out[4].split()[-1] == "yes"
    with pytest.raises(PipelineError, match="two variants or more are needed"):
        workspace_significance(rows[:1], tmp_path)
