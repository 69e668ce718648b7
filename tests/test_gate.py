"""The metrics gate: pass, worse in each direction, missing variant or metric, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.files import PipelineError

BASE = {"basic": {"val_bleu": 20.0, "val_loss": 2.0, "val_loss_lesson": 5.0},
        "attention": {"val_bleu": 30.0, "val_loss": 1.5, "val_loss_lesson": 4.0}}


def setup(tmp_path: Path, current: dict, tolerances: str = "default: 0.0\nval_bleu: 0.5\n"
          "val_loss: 0.01\n") -> list[str]:
    (tmp_path / "baseline.json").write_text(json.dumps(BASE))
    (tmp_path / "tol.yaml").write_text(tolerances)
    metrics = tmp_path / "metrics"
    metrics.mkdir(exist_ok=True)
    for variant, values in current.items():
        (metrics / f"{variant}.json").write_text(
            values if isinstance(values, str) else json.dumps(
                {**values, "bleu_signature": "nrefs:1|tok:none", "epochs": 3}))
    return ["check-metrics", "--metrics", str(metrics), "--baseline",
            str(tmp_path / "baseline.json"), "--tolerances", str(tmp_path / "tol.yaml")]


def run(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_equal_and_slightly_worse_within_tolerance_pass(tmp_path: Path, capsys) -> None:
    cur = json.loads(json.dumps(BASE))
    cur["basic"]["val_bleu"] -= 0.4
    cur["attention"]["val_loss"] += 0.005
    cur["attention"]["val_loss_lesson"] -= 1.0  # better is always fine
    code, out, _ = run(setup(tmp_path, cur), capsys)
    assert code == 0
    assert "variant" in out and "baseline" in out and "verdict" in out
    assert "WORSE" not in out and "all metrics within tolerance" in out


def test_bleu_down_fails(tmp_path: Path, capsys) -> None:
    cur = json.loads(json.dumps(BASE))
    cur["attention"]["val_bleu"] = 29.0
    code, out, err = run(setup(tmp_path, cur), capsys)
    assert code == 1
    row = next(line for line in out.splitlines() if "WORSE" in line)
    assert row.split()[:2] == ["attention", "val_bleu"] and "-1.0000" in row
    assert "got worse" in err


def test_loss_up_fails(tmp_path: Path, capsys) -> None:
    cur = json.loads(json.dumps(BASE))
    cur["basic"]["val_loss"] = 2.02
    code, out, _ = run(setup(tmp_path, cur), capsys)
    assert code == 1
    assert next(line for line in out.splitlines() if "WORSE" in line).split()[:2] == \
        ["basic", "val_loss"]


def test_missing_variant_fails(tmp_path: Path, capsys) -> None:
    code, out, _ = run(setup(tmp_path, {"basic": BASE["basic"]}), capsys)
    assert code == 1
    assert sum("MISSING" in line and line.startswith("attention") for line in
               out.splitlines()) == 3


def test_missing_metric_fails(tmp_path: Path, capsys) -> None:
    cur = json.loads(json.dumps(BASE))
    del cur["basic"]["val_loss_lesson"]
    code, out, _ = run(setup(tmp_path, cur), capsys)
    assert code == 1
    row = next(line for line in out.splitlines() if "MISSING" in line)
    assert row.split()[:2] == ["basic", "val_loss_lesson"]


def test_malformed_metrics_file_is_one_line_error(tmp_path: Path, capsys) -> None:
    code, _, err = run(setup(tmp_path, {"basic": BASE["basic"], "attention": "{not json"}),
                       capsys)
    assert code == 1
    assert "attention.json: not valid JSON" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(setup(tmp_path, {"basic": BASE["basic"],
                                        "attention": '{"val_bleu": "high"}'}), capsys)
    assert code == 1 and "attention.json: val_bleu: expected a finite number" in err


def test_update_baseline_writes_tracked_metrics(tmp_path: Path, capsys) -> None:
    args = setup(tmp_path, BASE)
    code, out, _ = run(["update-baseline", "--metrics", str(tmp_path / "metrics"),
                        "--baseline", str(tmp_path / "new.json"), "--variants", "basic",
                        "attention"], capsys)
    assert code == 0
    written = json.loads((tmp_path / "new.json").read_text())
    made_on = written.pop("_made_on")
    assert written == BASE  # no signature, no epochs
    assert set(made_on) == {"cpu", "pin", "torch_kernels"}
    code, out, _ = run(args + ["--baseline", str(tmp_path / "new.json")], capsys)
    assert code == 0
    assert f"baseline's:     {made_on['cpu']}; pin: {made_on['pin']}" in out


def test_the_report_names_the_cpu_and_the_pin(tmp_path: Path, capsys, monkeypatch) -> None:
    from pipeline.gate import cpu_name

    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    code, out, _ = run(setup(tmp_path, BASE), capsys)
    assert code == 0
    assert f"this machine:   {cpu_name()}; pin: MKL_CBWR=COMPATIBLE; PyTorch kernels: " in out
    assert "baseline's:     not recorded" in out  # a baseline from before machines were kept


def test_the_gate_pins_every_library_it_names() -> None:
    """ci/pipeline.sh sources ci/isa.env; under it torch reports the pinned kernels."""
    import subprocess
    import sys

    from pipeline.gate import PIN_VARS, cpu_name

    root = Path(__file__).resolve().parents[1]
    assert '. "$repo/ci/isa.env"' in (root / "ci" / "pipeline.sh").read_text()
    if "no AVX2" in cpu_name():
        pytest.skip("the pin chooses AVX2, which this CPU lacks")
    code = ("from pipeline.gate import machine; import json; print(json.dumps(machine()))")
    out = subprocess.run(["bash", "-c", f'set -a; . ci/isa.env; set +a; {sys.executable} '
                          f'-c "{code}"'], cwd=root, capture_output=True, text=True, check=True)
    m = json.loads(out.stdout)
    assert m["torch_kernels"] == "AVX2"
    assert [p.split("=")[0] for p in m["pin"].split()] == list(PIN_VARS)


def test_bad_tolerances(tmp_path: Path) -> None:
    from pipeline.gate import load_tolerances

    (tmp_path / "t.yaml").write_text("val_bleu: -1\n")
    with pytest.raises(PipelineError, match="must not be negative"):
        load_tolerances(tmp_path / "t.yaml")


def test_the_table_names_the_files_it_compared(tmp_path: Path, capsys) -> None:
    cur = {"basic": BASE["basic"]}  # attention never ran here
    code, out, _ = run(setup(tmp_path, cur), capsys)
    assert code == 1
    files = out[out.index("compared with"):]
    assert f"{tmp_path / 'metrics' / 'basic.json'} (written 20" in files
    assert f"{tmp_path / 'metrics' / 'attention.json'} (missing)" in files
