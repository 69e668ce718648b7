"""The code's shape, held: no function in pipeline/ of 70 lines or more, stages that stay
thin (their work is in the package)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_function_in_the_package_is_70_lines_or_longer() -> None:
    long = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines >= 70:
                    long.append(f"{path.relative_to(ROOT)}:{node.name} ({lines} lines)")
    assert not long


def test_each_stage_script_is_a_thin_wrapper() -> None:
    """A stage names its files and calls the package: about 30 lines, no more than 40."""
    long = {p.name: n for p in sorted((ROOT / "stages").glob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 40}
    assert not long


def test_training_keeps_one_module_a_job() -> None:
    """The loop, the step, the CUDA graphs, the optimizer and schedules, the checkpoints and
    the processes each have a module; none of them grows back into the 600-line file."""
    folder = ROOT / "pipeline" / "training"
    for name in ("train", "step", "cuda_graphs", "optimizer", "checkpoints", "distributed"):
        assert len((folder / f"{name}.py").read_text(encoding="utf-8").splitlines()) < 300, name
