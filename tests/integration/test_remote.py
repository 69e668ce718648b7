"""Sharing what was trained through a DVC remote that is a folder (issue 55): a workspace runs
the quick pipeline and pushes it; fresh clones pull the model and an experiment without
running a stage; bad remotes get one line (`fren-nmt pull`, pipeline/remote.py)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.corpus import SHARED_TARBALL
from support.workspace import ENV, copy_project, set_params, sh

# The quick run, smaller: what is shared is tested here, not what the model learns.
QUICK = ("embeddings.train.epochs=1", "embeddings.dim=32", "evaluate.beam_size=2",
         "variants.transformer.model.ff_size=64", "variants.transformer.train.epochs=1",
         "variants.transformer.train.batch_size=128",
         "variants.transformer.train.lr=5.0e-3", "pool.size=5000",
         "subwords.vocab_size=2000")
GIT = "git -c user.name=t -c user.email=t@localhost"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def clone(shared: SimpleNamespace, name: str, branch: str = "main") -> Path:
    sh(["git", "clone", "-q", "-b", branch, str(shared.origin), name], shared.root)
    return shared.root / name


def translate(ws: Path, line: str) -> str:
    out = sh(["fren-nmt", "translate", "--model", "models/transformer"], ws, stdin=line + "\n")
    return out.stdout.rstrip("\n")


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: pull: "), r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """origin.git (the colleagues' git remote), store/ (the DVC remote) and a workspace that
    ran the quick pipeline, committed and pushed it to both, then ran an experiment on it
    (beam 3) and pushed that with `dvc exp push`."""
    if not SHARED_TARBALL.exists():
        pytest.skip(f"shared tarball not found at {SHARED_TARBALL} (set FREN_NMT_TARBALL)")
    root = tmp_path_factory.mktemp("remote")
    ws = copy_project(root / "trainer")
    origin, store = root / "origin.git", root / "store"
    sh(["git", "init", "-q", "--bare", "-b", "main", str(origin)], root)
    sh(f"git branch -M main && git remote add origin {origin}", ws)
    env = {**ENV, "FREN_NMT_TARBALL": str(SHARED_TARBALL), "FREN_NMT_NO_INSTALL": "1"}
    quick = subprocess.run(["bash", "run.sh", "--quick", *(a for p in QUICK for a in ("-S", p))],
                           cwd=ws, env=env, capture_output=True, text=True, timeout=900)
    assert quick.returncode == 0, quick.stdout[-2000:] + quick.stderr[-2000:]
    sh(f"git add -A && {GIT} commit -qm 'the quick run' && dvc remote add -d store {store} && "
       f"{GIT} commit -qam 'the team remote' && dvc push -q && git push -q origin main", ws)
    # an experiment on top: only evaluate reruns; exp push sends its git ref and its outputs
    sh("dvc exp run -q -n beam3 -S evaluate.beam_size=3 evaluate@transformer && "
       "dvc exp push origin beam3", ws)
    return SimpleNamespace(root=root, origin=origin, store=store, trainer=ws,
                           model=digest(ws / "models/transformer/model.pt"),
                           station=translate(ws, "Où est la gare ?"),
                           beam3=json.loads((ws / "metrics/transformer.json").read_text()))


@pytest.mark.slow
def test_a_fresh_clone_translates_after_dvc_pull_alone(shared: SimpleNamespace) -> None:
    ws = clone(shared, "colleague")
    assert not (ws / "models").exists()
    sh(["dvc", "pull", "-q", "--with-deps", "evaluate@transformer"], ws)
    assert sh(["dvc", "status", "--with-deps", "evaluate@transformer"], ws).stdout.strip() == \
        "Data and pipelines are up to date."
    model = ws / "models/transformer"
    assert digest(model / "model.pt") == shared.model
    assert translate(ws, "Où est la gare ?") == shared.station != ""

    # fren-nmt pull says the same in one line; with a param changed here it names the stage
    again = sh(["fren-nmt", "pull", "evaluate@transformer"], ws).stdout.strip()
    assert again == f"pull: 0 files from remote 'store' ({shared.store}); " \
        "evaluate@transformer and the stages before up to date, nothing to run"
    set_params(ws, "evaluate.beam_size=4")
    line = one_line_error(sh(["fren-nmt", "pull", "evaluate@transformer"], ws, check=False))
    assert "1 stage out of date: evaluate@transformer (params changed: evaluate)" \
        in line


@pytest.mark.slow
def test_fren_nmt_pull_fetches_the_quick_run_and_names_the_variants_it_did_not_train(
        shared: SimpleNamespace) -> None:
    """The committed dvc.lock also names the GRU variants of the full run, which the quick run
    did not train and so did not push: everything there is comes, and each of them is named."""
    ws = clone(shared, "laptop")
    line = one_line_error(sh(["fren-nmt", "pull"], ws, check=False))
    fetched = int(line.split()[2].replace(",", ""))
    assert fetched > 10  # the data stages' outputs, the model, the reports
    assert digest(ws / "models/transformer/model.pt") == shared.model
    assert (ws / "data/processed/pool.parquet").is_file()
    variants = ("basic", "bidir", "teacher_forcing", "attention", "all")
    # each named (stages with one reason share a clause; evaluate@'s first changed input is
    # its own model, so each evaluate@ may get a clause of its own)
    assert all(f"train@{v}" in line and f"evaluate@{v}" in line for v in variants), line
    assert "its outputs are not on the remote" in line and "@transformer" not in line


@pytest.mark.slow
def test_an_experiment_pushed_from_one_clone_is_pulled_and_compared_in_another(
        shared: SimpleNamespace) -> None:
    ws = clone(shared, "reviewer")
    sh(["dvc", "exp", "pull", "origin", "beam3"], ws)
    pushed = shared.beam3
    rows = {line.split()[0]: line.split() for line in
            sh(["fren-nmt", "compare"], ws).stdout.splitlines() if line.strip()}
    assert "beam3" in rows and rows["beam3"][1] == "transformer"
    # test BLEU greedy, then beam: the experiment's own figures, pulled
    assert rows["beam3"][2:4] == [f"{pushed['test_bleu']:.1f}", f"{pushed['test_bleu_beam']:.1f}"]


@pytest.mark.slow
def test_bad_remotes_get_one_line(shared: SimpleNamespace) -> None:
    ws = clone(shared, "newcomer")
    empty = shared.root / "empty"
    empty.mkdir()
    sh(f"dvc remote add --local gone {shared.root / 'gone'} && "
       f"dvc remote add --local empty {empty}", ws)
    line = one_line_error(sh(["fren-nmt", "pull", "--remote", "gone"], ws, check=False))
    assert line.endswith(f"remote 'gone' ({shared.root / 'gone'}) is unreachable: no such "
                         "folder or bucket")
    line = one_line_error(sh(["fren-nmt", "pull", "--remote", "empty"], ws, check=False))
    assert "is empty: nothing was ever pushed there" in line
    line = one_line_error(sh(["fren-nmt", "pull", "--remote", "nope"], ws, check=False))
    assert line == "error: pull: no DVC remote named 'nope' (set: empty, gone, store)"
    assert not (ws / "models").exists()  # nothing pulled from a bad remote


@pytest.mark.slow
def test_a_remote_holding_other_params_outputs_names_the_stages_left(
        shared: SimpleNamespace) -> None:
    """A commit whose evaluate ran with other params and was never pushed: the pull brings
    what the remote has (the model) and names the one stage left out of date."""
    trainer = shared.trainer
    sh("git stash -q && git checkout -q -b unpushed main", trainer)
    set_params(trainer, "evaluate.beam_size=1")
    sh("dvc repro -q evaluate@transformer", trainer)
    sh(f"{GIT} commit -qam 'greedy only' && git push -q origin unpushed", trainer)
    ws = clone(shared, "late", branch="unpushed")
    line = one_line_error(sh(["fren-nmt", "pull", "evaluate@transformer"], ws, check=False))
    assert "but 1 stage out of date: evaluate@transformer (its outputs are not on the " \
           "remote: made with other params or code, or never pushed)" in line
    assert (ws / "models/transformer/model.pt").is_file()  # what the remote had came


@pytest.mark.slow
def test_ci_pulls_the_corpus_from_a_remote_when_one_is_set(shared: SimpleNamespace,
                                                           tmp_path: Path) -> None:
    """ci/pull_corpus.sh, which the workflow runs when FREN_NMT_DVC_REMOTE is set: the
    download stage's output, byte for byte the tarball, and the checkout left as it was."""
    ws = clone(shared, "ci")
    dest = tmp_path / "corpus/training-giga-fren-tatoeba.tar"
    sh(["bash", "ci/pull_corpus.sh", str(shared.store), str(dest)], ws)
    assert digest(dest) == digest(SHARED_TARBALL)
    assert not (ws / "data").exists() and not (ws / ".dvc/config.local").exists()
    bad = sh(["bash", "ci/pull_corpus.sh", str(tmp_path / "nowhere"), str(tmp_path / "x.tar")],
             ws, check=False)
    assert bad.returncode == 1 and not (tmp_path / "x.tar").exists()
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: pull_corpus: no data/raw/corpus"), \
        bad.stderr
