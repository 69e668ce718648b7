"""fren-nmt pull's one-line errors that need no remote, and its reading of DVC's status."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.remote import _stale, pull


def test_outside_a_dvc_repository(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=f"^pull: {tmp_path}: "):
        pull(tmp_path)


def test_no_remote_set(tmp_path: Path) -> None:
    subprocess.run("git init -q && dvc init -q", shell=True, cwd=tmp_path, check=True)
    with pytest.raises(PipelineError, match=r"^pull: no DVC remote is set; add one with "):
        pull(tmp_path)
    with pytest.raises(PipelineError, match=r"^pull: no DVC remote named 'x' \(set: none\)$"):
        pull(tmp_path, remote="x")


def test_stages_with_the_same_reasons_are_named_together() -> None:
    """`dvc status`'s shapes, as Repo.status returns them (DVC 3)."""
    status = {
        "train@basic": [{"changed deps": {"pipeline/a.py": "modified", "pipeline/b.py":
                                          "modified", "params.yaml": {"train": "modified"}}},
                        {"changed outs": {"models/basic": "not in cache"}}],
        "train@all": [{"changed deps": {"pipeline/a.py": "modified", "pipeline/b.py":
                                        "modified", "params.yaml": {"train": "modified"}}},
                      {"changed outs": {"models/all": "not in cache"}}],
        "evaluate@transformer": [{"changed deps": {"params.yaml": {"evaluate": "modified"}}}],
        "curves": [{"changed deps": {"dvclive": "modified"}}],
    }
    assert _stale(status) == (
        "train@basic, train@all (params changed: train; 2 inputs changed (pipeline/a.py "
        "first); its outputs are not on the remote: made with other params or code, or never "
        "pushed), evaluate@transformer (params changed: evaluate), curves (dvclive changed)")
