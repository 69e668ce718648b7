"""A scratch copy of the project for the tests that run DVC: its files in a fresh git repo,
and the small sizes those tests train at."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# the stages' threads: what scripts/test.sh gives each test process (2 run alone)
ENV = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
       "OMP_WAIT_POLICY": "PASSIVE"}


def sh(cmd: list[str] | str, cwd: Path, check: bool = True, stdin: str | None = None
       ) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, shell=isinstance(cmd, str), capture_output=True,
                       text=True, env=ENV, input=stdin)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def set_params(ws: Path, *assignments: str) -> None:
    sh([sys.executable, str(ws / "scripts" / "merge_params.py"), "params.yaml", "-",
        *assignments], ws)


def copy_project(ws: Path, *params: str) -> Path:
    """The project's files (what git would commit, no outputs) in a fresh git repo at `ws`."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        if (ROOT / f).is_file():
            (ws / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, ws / f)
    for d in ("metrics", "models", "data"):
        shutil.rmtree(ws / d, ignore_errors=True)
    if params:
        set_params(ws, *params)
    sh("git init -q && git add -A && git -c user.name=t -c user.email=t@localhost "
       "commit -qm t", ws)
    return ws


# Small sizes for the tests that run stages: vectors, hidden layers, batches; torch's threads
# are OMP_NUM_THREADS's (scripts/test.sh shares the cores among its test processes).
SMALL = ("runtime.threads=0", "embeddings.dim=32", "model.enc_hidden=32", "model.att_hidden=32",
         "variants.transformer.model.ff_size=64", "train.batch_size=64", "pool.size=3000",
         "subwords.vocab_size=1000")
