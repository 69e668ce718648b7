"""The variants' curves as one table (the curves stage's output, drawn by one DVC plot)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.evaluation.plots import curves_by_variant


def write_curve(folder: Path, variant: str, values: list[float]) -> None:
    path = folder / variant / "plots" / "metrics" / "val_loss.tsv"
    path.parent.mkdir(parents=True)
    rows = [f"{i}\t{v}" for i, v in enumerate(values)]
    path.write_text("step\tval_loss\n" + "\n".join(rows) + "\n")  # as dvclive writes it


def test_the_table_has_each_trained_variant_in_the_listed_order(tmp_path: Path) -> None:
    write_curve(tmp_path, "bidir", [3.0, 2.5])
    write_curve(tmp_path, "basic", [3.2, 2.9, 2.7])
    write_curve(tmp_path, "removed", [1.0])  # a folder left by a variant no longer listed
    table = curves_by_variant(tmp_path, ["basic", "transformer", "bidir"], "val_loss")
    assert list(table.columns) == ["variant", "step", "val_loss"]
    assert table["variant"].tolist() == ["basic"] * 3 + ["bidir"] * 2  # transformer: untrained
    assert table["step"].tolist() == [0, 1, 2, 0, 1]
    assert table["val_loss"].tolist() == [3.2, 2.9, 2.7, 3.0, 2.5]


def test_no_curve_at_all_or_a_foreign_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="no variant has a val_loss curve; train one first"):
        curves_by_variant(tmp_path, ["basic"], "val_loss")
    path = tmp_path / "basic" / "plots" / "metrics" / "val_loss.tsv"
    path.parent.mkdir(parents=True)
    path.write_text("epoch\tloss\n1\t2.0\n")
    with pytest.raises(PipelineError, match=r"val_loss\.tsv: no step and val_loss columns"):
        curves_by_variant(tmp_path, ["basic"], "val_loss")
