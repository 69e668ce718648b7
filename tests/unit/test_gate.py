"""The metrics gate: bands from seed runs, both directions, data counts, the report, the
battery's patches."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main
from pipeline.errors import PipelineError

ROOT = Path(__file__).resolve().parents[2]
# three seeds of two variants: val_bleu spread sd 1.0, val_loss sd 0.01
SEEDS = {
    0: {"basic": {"val_bleu": 20.0, "val_loss": 2.00}, "attention": {"val_bleu": 30.0,
                                                                     "val_loss": 1.50}},
    1: {"basic": {"val_bleu": 21.0, "val_loss": 2.01}, "attention": {"val_bleu": 31.0,
                                                                     "val_loss": 1.51}},
    2: {"basic": {"val_bleu": 22.0, "val_loss": 2.02}, "attention": {"val_bleu": 32.0,
                                                                     "val_loss": 1.52}},
}
DATA = {"pairs": {"train": 100, "valid": 10}, "split": "grouped"}
CLEAN_SEARCH = {"sentences": 10, "greedy_not_argmax": 0, "beam1_not_greedy": 0,
                "beam_scores_off": 0, "padding_moves_scores": 0,
                "largest_gap": 2e-6}  # evaluate's search_check


def write_run(folder: Path, metrics: dict, data: dict = DATA, curves: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for variant, values in metrics.items():
        (folder / f"{variant}.json").write_text(
            values if isinstance(values, str) else json.dumps(
                {"search_check": CLEAN_SEARCH, **values, "bleu_signature": "nrefs:1|tok:13a",
                 "epochs": 3}))
        if curves:
            plots = folder / "dvclive" / variant / "plots" / "metrics"
            plots.mkdir(parents=True, exist_ok=True)
            for curve in ("val_loss", "val_bleu"):
                (plots / f"{curve}.tsv").write_text(f"step\t{curve}\n0\t3.0\n1\t2.5\n")
    (folder / "data.json").write_text(json.dumps(data))
    return folder


def run(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def make_baseline(tmp_path: Path, capsys, k: float = 3.0) -> tuple[Path, Path]:
    runs = []
    for seed, metrics in SEEDS.items():
        folder = write_run(tmp_path / f"seed-{seed}", metrics)
        runs += ["--run", f"{seed}={folder}:{folder / 'dvclive'}"]
    base, tol = tmp_path / "baseline.json", tmp_path / "tolerances.yaml"
    code, out, err = run(["update-baseline", *runs, "--baseline", str(base), "--tolerances",
                          str(tol), "--variants", "basic", "attention", "--k", str(k),
                          "--floor-bleu", "0.5", "--floor-loss", "0.05"], capsys)
    assert code == 0, err
    return base, tol


def check(tmp_path: Path, capsys, metrics: dict, data: dict = DATA, extra: list[str] = ()
          ) -> tuple[int, str, str]:
    base, tol = make_baseline(tmp_path, capsys)
    now = write_run(tmp_path / "now", metrics, data)
    return run(["check-metrics", "--metrics", str(now), "--baseline", str(base),
                "--tolerances", str(tol), *extra], capsys)


def verdicts(out: str) -> dict[tuple[str, str], str]:
    rows = {}
    for line in out.splitlines():
        cells = line.split()
        if len(cells) == 8 and cells[-1] in ("ok", "WORSE", "BETTER", "CHANGED", "MISMATCH",
                                             "MISSING"):
            rows[cells[0], cells[1]] = cells[-1]
    return rows


def test_the_baseline_keeps_every_seed_and_the_bands_say_where_they_come_from(
        tmp_path: Path, capsys) -> None:
    base, tol = make_baseline(tmp_path, capsys)
    written = json.loads(base.read_text())
    assert written["seeds"] == [0, 1, 2]
    assert written["variants"]["basic"]["val_bleu"] == [20.0, 21.0, 22.0]
    assert written["data"] == {"data.pairs.train": 100, "data.pairs.valid": 10}
    assert written["curves"]["basic"]["val_loss"] == [[3.0, 2.5]] * 3
    assert set(written["made_on"]) == {"cpu", "pin", "torch_kernels"}
    bands = yaml.safe_load(tol.read_text())["bands"]
    assert bands["basic"]["val_bleu"] == pytest.approx(3.0)  # 3 x sd 1.0
    assert bands["basic"]["val_loss"] == pytest.approx(0.05)  # the floor: 3 x 0.01 is less
    text = tol.read_text()
    assert "val_bleu: 3.0000  # 3 x max(sd 1.0000, pooled 1.0000)" in text
    assert "val_loss: 0.0500  # floor (3 x max(sd 0.0100, pooled 0.0100) is less)" in text
    assert "train.seed 0, 1, 2;" in text


def test_within_the_band_passes_in_both_directions(tmp_path: Path, capsys) -> None:
    now = json.loads(json.dumps(SEEDS[1]))
    now["basic"]["val_bleu"] += 2.9   # mean 21 + 2.9: inside a band of 3
    now["attention"]["val_loss"] -= 0.04
    code, out, _ = check(tmp_path, capsys, now)
    assert code == 0, out
    assert set(verdicts(out).values()) == {"ok"}
    assert "all 14 metrics within their bands" in out  # 4 banded, 2 counts, 8 search


def test_worse_beyond_the_band_fails(tmp_path: Path, capsys) -> None:
    now = json.loads(json.dumps(SEEDS[1]))
    now["attention"]["val_bleu"] = 27.0  # mean 31, band 3
    now["basic"]["val_loss"] = 2.1       # mean 2.01, band 0.05
    code, out, err = check(tmp_path, capsys, now)
    assert code == 1
    v = verdicts(out)
    assert v["attention", "val_bleu"] == "WORSE" and v["basic", "val_loss"] == "WORSE"
    assert "attention: val_bleu WORSE -4.000 (1.3 bands)" in out
    assert "moved beyond their noise bands" in err and len(err.strip().splitlines()) == 1


def test_better_beyond_the_band_fails_too(tmp_path: Path, capsys) -> None:
    now = json.loads(json.dumps(SEEDS[1]))
    now["basic"]["val_bleu"] = 30.0
    now["attention"]["val_loss"] = 1.0
    code, out, _ = check(tmp_path, capsys, now)
    assert code == 1
    v = verdicts(out)
    assert v["basic", "val_bleu"] == "BETTER" and v["attention", "val_loss"] == "BETTER"


def test_a_changed_data_count_fails(tmp_path: Path, capsys) -> None:
    code, out, _ = check(tmp_path, capsys, SEEDS[1],
                         {"pairs": {"train": 101, "valid": 10}, "split": "grouped"})
    assert code == 1
    assert verdicts(out)["data", "data.pairs.train"] == "CHANGED"
    assert verdicts(out)["data", "data.pairs.valid"] == "ok"


def test_a_missing_variant_or_metric_fails(tmp_path: Path, capsys) -> None:
    now = {"basic": {"val_bleu": 21.0}}  # attention never ran; basic lacks val_loss
    code, out, _ = check(tmp_path, capsys, now)
    assert code == 1
    v = verdicts(out)
    assert v["basic", "val_loss"] == "MISSING"
    assert v["attention", "val_bleu"] == v["attention", "val_loss"] == "MISSING"
    files = out[out.index("compared with"):]
    assert f"{tmp_path / 'now' / 'attention.json'} (missing)" in files


def test_a_malformed_metrics_file_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    code, _, err = check(tmp_path, capsys, {"basic": SEEDS[1]["basic"],
                                            "attention": "{not json"})
    assert code == 1
    assert "attention.json: not valid JSON" in err and len(err.strip().splitlines()) == 1


def test_the_report_is_markdown_with_the_failures_first_and_the_plot(tmp_path: Path,
                                                                     capsys) -> None:
    now = json.loads(json.dumps(SEEDS[1]))
    now["attention"]["val_bleu"] = 27.0
    report = tmp_path / "out" / "report.md"
    code, out, _ = check(tmp_path, capsys, now, extra=[
        "--report", str(report), "--curves", str(tmp_path / "now" / "dvclive"),
        "--what", "train.seed 0, abc123"])
    assert code == 1
    text = report.read_text()
    assert text.startswith("## Metrics gate: failed\n")
    failed = text[:text.index("<details>")]
    assert "| attention | val_bleu | 31.000 | 1.000 | 27.000 | -4.000 | 3.000 | **WORSE** |" \
        in failed and "| basic |" not in failed
    assert "![Validation curves" in text and "(curves.png)" in text
    assert (tmp_path / "out" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "This run: train.seed 0, abc123" in text
    assert text.count("| basic |") == 6  # every metric (2 banded, 4 search), folded away


def test_update_baseline_needs_three_seeds_that_share_their_data(tmp_path: Path,
                                                                 capsys) -> None:
    a = write_run(tmp_path / "a", SEEDS[0])
    b = write_run(tmp_path / "b", SEEDS[1])
    args = ["update-baseline", "--baseline", str(tmp_path / "b.json"), "--tolerances",
            str(tmp_path / "t.yaml"), "--variants", "basic", "attention"]
    code, _, err = run([*args, "--run", f"0={a}", "--run", f"1={b}"], capsys)
    assert code == 1 and "2 seed runs" in err
    c = write_run(tmp_path / "c", SEEDS[2], {"pairs": {"train": 99, "valid": 10}})
    code, _, err = run([*args, "--run", f"0={a}", "--run", f"1={b}", "--run", f"2={c}"], capsys)
    assert code == 1 and "data counts differ" in err
    code, _, err = run([*args, "--run", "x=" + str(a)], capsys)
    assert code == 1 and "expected SEED=METRICS" in err
    # one variant's run copied from another seed's (a stale output): refused, naming both
    stale = write_run(tmp_path / "stale", {"basic": SEEDS[2]["basic"],
                                           "attention": SEEDS[0]["attention"]})
    code, _, err = run([*args, "--run", f"0={a}", "--run", f"1={b}", "--run", f"2={stale}"],
                       capsys)
    assert code == 1 and f"{stale}: attention's metrics equal seed 0's" in err
    code, _, err = run([*args, "--run", f"0={a}", "--run", f"1={b}", "--run",
                        f"2={write_run(tmp_path / 'd', SEEDS[2])}"], capsys)
    assert code == 0, err


def test_bad_bands(tmp_path: Path) -> None:
    from pipeline.evaluation.gate.baseline import load_bands

    (tmp_path / "t.yaml").write_text("bands: {basic: {val_bleu: -1}}\n")
    with pytest.raises(PipelineError, match="must not be negative"):
        load_bands(tmp_path / "t.yaml")
    (tmp_path / "t.yaml").write_text("val_bleu: 0.3\n")  # the old format
    with pytest.raises(PipelineError, match="expected 'bands:"):
        load_bands(tmp_path / "t.yaml")


def test_the_committed_baseline_and_bands_agree() -> None:
    """Every baseline metric has its band, and each band is what its comment says."""
    from pipeline.evaluation.gate.baseline import bands_of, load_bands, load_baseline

    base = load_baseline(ROOT / "ci" / "baseline.json")
    bands = load_bands(ROOT / "ci" / "tolerances.yaml")
    spec = yaml.safe_load((ROOT / "ci" / "tolerances.yaml").read_text())
    expected = bands_of(base, spec["k"], spec["floors"])
    assert {v: set(m) for v, m in bands.items()} == {v: set(m) for v, m in expected.items()}
    for v, metrics in expected.items():
        for m, (band, _) in metrics.items():
            assert bands[v][m] == pytest.approx(band, abs=1e-4), (v, m)
    assert len(base.seeds) >= 3 and base.data


def test_the_battery_s_patches_apply_to_this_tree(tmp_path: Path) -> None:
    """A mutation that no longer applies tests nothing: each must apply to the tracked tree."""
    patches = sorted((ROOT / "ci" / "mutations").glob("*.patch"))
    harmless = sorted((ROOT / "ci" / "harmless").glob("*.patch"))
    assert len(patches) >= 10 and harmless
    for patch in patches + harmless:
        out = subprocess.run(["git", "apply", "--check", str(patch)], cwd=ROOT,
                             capture_output=True, text=True)
        assert out.returncode == 0, f"{patch.name}: {out.stderr}"


def test_the_scripts_refuse_bad_arguments_at_once() -> None:
    for cmd, want in ((["ci/pipeline.sh", "--seed", "x"], "--seed needs a whole number"),
                      (["ci/pipeline.sh", "--fast"], "unknown argument '--fast'"),
                      (["ci/mutants.sh", "no-such-bug"], "no-such-bug: no ci/mutations/")):
        out = subprocess.run(["bash", *cmd], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 2 and want in out.stderr, (cmd, out.stderr)


def test_the_gate_pins_every_library_it_names() -> None:
    """ci/pipeline.sh sources ci/isa.env; under it torch reports the pinned kernels."""
    from pipeline.evaluation.gate.runs import PIN_VARS, cpu_name

    assert '. "$repo/ci/isa.env"' in (ROOT / "ci" / "pipeline.sh").read_text()
    if "no AVX2" in cpu_name():
        pytest.skip("the pin chooses AVX2, which this CPU lacks")
    code = ("from pipeline.evaluation.gate.runs import machine; import json; "
            "print(json.dumps(machine()))")
    out = subprocess.run(["bash", "-c", f'set -a; . ci/isa.env; set +a; {sys.executable} '
                          f'-c "{code}"'], cwd=ROOT, capture_output=True, text=True, check=True)
    m = json.loads(out.stdout)
    assert m["torch_kernels"] == "AVX2"
    assert [p.split("=")[0] for p in m["pin"].split()] == list(PIN_VARS)


def test_a_score_that_is_not_sacrebleu_s_on_the_scored_files_is_a_mismatch(
        tmp_path: Path, capsys) -> None:
    """The gate scores the run's files again with sacreBLEU's defaults: a change to the metric
    shows exactly, whatever training noise there is."""
    import sacrebleu

    refs = ["Where is the station?", "Who are you?", "What is Tom doing?"]
    hyps = ["Where is the station?", "who are you?", "What is Tom eating?"]
    now = json.loads(json.dumps(SEEDS[1]))
    folder = tmp_path / "now" / "translations" / "basic"
    folder.mkdir(parents=True)
    for name, prefix in (("valid", "val"), ("test", "test")):
        (folder / f"{name}.ref.txt").write_text("".join(r + "\n" for r in refs))
        for search, suffix in (("greedy", ""), ("beam", "_beam")):
            (folder / f"{name}.{search}.txt").write_text("".join(h + "\n" for h in hyps))
            now["basic"][f"{prefix}_bleu{suffix}"] = sacrebleu.corpus_bleu(hyps, [refs]).score
            now["basic"][f"{prefix}_chrf{suffix}"] = sacrebleu.corpus_chrf(hyps, [refs]).score
    now["basic"]["val_bleu"] = 21.0  # inside its band, so only the rescoring can object...
    code, out, _ = check(tmp_path, capsys, now)
    assert code == 1
    rows = verdicts(out)
    assert rows["basic", "val_bleu=sacreBLEU"] == "MISMATCH"  # ...and it does
    assert rows["basic", "test_bleu=sacreBLEU"] == rows["basic", "val_chrf_beam=sacreBLEU"] == "ok"
    assert sum(k[1].endswith("=sacreBLEU") for k in rows) == 8


def test_a_search_that_disagrees_with_its_model_is_a_mismatch(tmp_path: Path, capsys) -> None:
    """evaluate's search_check counts must be 0 whatever the model learned; a run without
    them is MISSING, not passed."""
    now = json.loads(json.dumps(SEEDS[1]))
    now["basic"]["search_check"] = {**CLEAN_SEARCH, "beam_scores_off": 3}
    now["attention"]["search_check"] = {}
    code, out, _ = check(tmp_path, capsys, now)
    assert code == 1
    rows = verdicts(out)
    assert rows["basic", "search_check.beam_scores_off"] == "MISMATCH"
    assert rows["basic", "search_check.greedy_not_argmax"] == "ok"
    assert rows["attention", "search_check.beam1_not_greedy"] == "MISSING"
    assert "basic: search_check.beam_scores_off MISMATCH +3" in out


def test_a_variant_whose_seeds_happen_to_agree_gets_the_pooled_spread(tmp_path: Path) -> None:
    """Five runs can agree by chance: the band never falls under the spread pooled over the
    variants, and bands can be written again from the baseline alone (a new k)."""
    from pipeline.evaluation.gate.baseline import bands_of, load_baseline

    runs = {s: json.loads(json.dumps(m)) for s, m in SEEDS.items()}
    for m in runs.values():
        m["attention"]["val_bleu"] = 31.0  # attention's seeds agree exactly
    args = []
    for seed, metrics in runs.items():
        folder = write_run(tmp_path / f"seed-{seed}", metrics)
        args += ["--run", f"{seed}={folder}"]
    base, tol = tmp_path / "b.json", tmp_path / "t.yaml"
    main(["update-baseline", *args, "--baseline", str(base), "--tolerances", str(tol),
          "--variants", "basic", "attention", "--k", "3"])
    bands = bands_of(load_baseline(base), 3, {"bleu": 0.5, "chrf": 0.5, "loss": 0.005})
    assert bands["attention"]["val_bleu"][0] == pytest.approx(3 * (0.5 ** 0.5))  # pooled sd
    main(["update-baseline", "--from-baseline", "--baseline", str(base), "--tolerances",
          str(tol), "--k", "6"])
    assert yaml.safe_load(tol.read_text())["bands"]["basic"]["val_bleu"] == pytest.approx(6.0)


# ---- the exact rule ------------------------------------------------------------------------

def write_exact_run(folder: Path, weights: str = "w0", bleu: float = 20.0,
                    lines: tuple[str, ...] = ("Where is Tom?", "Who are you?", "Why?"),
                    alpha: float = 0.6, seconds: float = 12.0) -> Path:
    """A run of one variant as the gate's pipeline leaves it: metrics with the kept weights'
    hash and the settings that ran, and the scored files."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "basic.json").write_text(json.dumps({
        "val_bleu": bleu, "val_loss": 2.0, "weights_sha256": weights, "train_seconds": seconds,
        "decode_sentences_per_second": {"greedy": seconds}, "bleu_signature": "nrefs:1|tok:13a",
        "search": {"valid_beam": {"beam_size": 5, "alpha": alpha}}}))
    out = folder / "translations" / "basic"
    out.mkdir(parents=True, exist_ok=True)
    (out / "test.greedy.txt").write_text("".join(line + "\n" for line in lines))
    return folder


def exact_verdicts(then: Path, now: Path) -> list:
    from pipeline.evaluation.gate.check import exact_rows
    from pipeline.evaluation.gate.runs import exact_of

    return exact_rows({"seed": 0, "variants": exact_of(then, ["basic"])},
                      exact_of(now, ["basic"]))


def test_identical_training_and_evaluation_pass_exactly(tmp_path: Path) -> None:
    then = write_exact_run(tmp_path / "then")
    rows = exact_verdicts(then, write_exact_run(tmp_path / "now", seconds=99.0))  # timing
    assert [(r.verdict, r.metric) for r in rows] == [
        ("ok", "training, figures and scored lines = seed 0's (exact)")]


def test_evaluation_alone_changed_is_named_with_what_moved(tmp_path: Path) -> None:
    then = write_exact_run(tmp_path / "then")
    now = write_exact_run(tmp_path / "now", bleu=20.004, alpha=0.0,
                          lines=("Where is Tom?", "Who are you ?", "Why!"))
    rows = {r.metric: r for r in exact_verdicts(then, now)}
    assert {r.verdict for r in rows.values()} == {"CHANGED"}
    assert rows["val_bleu (exact)"].change == pytest.approx(0.004)
    assert rows["search.valid_beam.alpha (exact)"].change == pytest.approx(-0.6)
    assert rows["translations/test.greedy.txt: lines that differ (exact)"].now == 2


def test_training_that_took_another_path_is_left_to_the_bands(tmp_path: Path) -> None:
    then = write_exact_run(tmp_path / "then")
    rows = exact_verdicts(then, write_exact_run(tmp_path / "now", weights="w1", bleu=25.0))
    assert [(r.verdict, r.metric) for r in rows] == [
        ("ok", "training differs from seed 0's: bands judge")]


def test_check_metrics_fails_on_an_exact_change_and_says_how_to_rebaseline(
        tmp_path: Path, capsys) -> None:
    from pipeline.evaluation.gate.runs import exact_of

    base, tol = make_baseline(tmp_path, capsys)
    now = write_run(tmp_path / "now", SEEDS[0])
    (tmp_path / "exact.json").write_text(json.dumps(
        {"seed": 0, "variants": exact_of(now, ["basic", "attention"])}))
    code, out, err = run(["check-metrics", "--metrics", str(now), "--baseline", str(base),
                          "--tolerances", str(tol), "--exact", str(tmp_path / "exact.json")],
                         capsys)
    assert code == 0, err
    data = json.loads((now / "basic.json").read_text())
    data["val_bleu"] += 0.001  # far inside its band of 3, far outside rounding
    (now / "basic.json").write_text(json.dumps(data))
    code, out, err = run(["check-metrics", "--metrics", str(now), "--baseline", str(base),
                          "--tolerances", str(tol), "--exact", str(tmp_path / "exact.json")],
                         capsys)
    assert code == 1
    assert verdicts(out)["basic", "val_bleu"] == "ok"  # the band alone would pass it
    assert "basic: val_bleu (exact) CHANGED +0.001" in out
    assert "evaluation changed while training did not" in err
    assert "bash ci/pipeline.sh --update-baseline" in err


def test_the_exact_record_is_the_baseline_s_own_run(tmp_path: Path, capsys) -> None:
    base, tol = make_baseline(tmp_path, capsys)
    other = write_run(tmp_path / "other", SEEDS[1])  # seed 1's figures, called seed 0's
    for variant in ("basic", "attention"):
        data = json.loads((other / f"{variant}.json").read_text())
        (other / f"{variant}.json").write_text(json.dumps({**data, "weights_sha256": "w"}))
    code, _, err = run(["update-baseline", "--baseline", str(base), "--exact",
                        str(tmp_path / "exact.json"), "--exact-from", str(other)], capsys)
    assert code == 1 and "this run is not the baseline's" in err
    assert not (tmp_path / "exact.json").exists()
    code, _, err = run(["update-baseline", "--baseline", str(base), "--exact",
                        str(tmp_path / "exact.json"), "--exact-from", str(other),
                        "--exact-seed", "1"], capsys)
    assert code == 0, err
    assert set(json.loads((tmp_path / "exact.json").read_text())["variants"]) == {
        "basic", "attention"}


def test_a_figure_moved_in_its_last_bits_only_is_the_same(tmp_path: Path) -> None:
    """A loss summed in another order (the battery's harmless patch) moves its last float32
    bits: bidir's val_loss, measured."""
    then = write_exact_run(tmp_path / "then", bleu=2.2446343898773193)
    rows = exact_verdicts(then, write_exact_run(tmp_path / "now", bleu=2.2446346282958984))
    assert [r.verdict for r in rows] == ["ok"]
