"""Training on several processes (gloo on the CPU), through tests/integration/dist_worker.py:
the same weights as one process, only the first process writes, a killed process ends the run
with one line, and a resume gives the weights of a run never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).resolve().parent / "dist_worker.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def run(out: Path, variant: str, processes: int, epochs: int, *extra: str,
        check: bool = True) -> subprocess.CompletedProcess:
    out.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([sys.executable, str(WORKER), str(out), variant, str(processes),
                        str(epochs), *extra], capture_output=True, text=True, env=ENV,
                       timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"worker failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def weights(out: Path) -> dict:
    return torch.load(out / "weights.pt", weights_only=True)


def assert_close(a: dict, b: dict, atol: float) -> None:
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst <= atol, f"weights differ by {worst:.2e}"


@pytest.mark.parametrize("variant", ["basic", "attention"])
def test_two_processes_train_the_weights_of_one(tmp_path: Path, variant: str) -> None:
    """Dropout off, teacher forcing mixed (pr 0.5), clipping on, label smoothing; 33 pairs in
    global batches of 8, so the last batch's one row leaves one process an empty share."""
    run(tmp_path / "one", variant, 1, 2)
    out = run(tmp_path / "two", variant, 2, 2)
    assert "starting 2 processes" in out.stdout
    assert_close(weights(tmp_path / "one"), weights(tmp_path / "two"), atol=1e-5)
    # only the first process wrote: one checkpoint, one log with one entry per epoch
    files = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert files == ["checkpoint.0.pt", "log.0", "pid.0", "pid.1", "weights.pt"]
    logged = [json.loads(line) for line in (tmp_path / "two/log.0").read_text().splitlines()]
    assert [e["epoch"] for e in logged] == [1, 2]
    assert all(isinstance(e["val_bleu"], float) for e in logged)  # scored once, handed on
    assert out.stdout.count("epoch 2/2") == 1  # progress printed once


def test_a_killed_process_ends_the_run_and_a_resume_gives_the_uninterrupted_weights(
        tmp_path: Path) -> None:
    """Dropout on: the resume must also give every process its own random generator back."""
    args = ("attention", "2", "3", "--pairs", "1000", "--dropout")
    run(tmp_path / "whole", *args[:1], 2, 3, *args[3:])
    out = tmp_path / "killed"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, str(WORKER), str(out), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.0.pt").exists() and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(int((out / "pid.1").read_text()), signal.SIGKILL)  # during epoch 2
    killed_at = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert time.monotonic() - killed_at < 20  # the launcher stops the survivor; no hang
    assert err.strip().splitlines()[-1] == \
        "error: dist_worker: process 1 of 2 failed: killed by SIGKILL"
    assert not (out / "weights.pt").exists()
    resumed = run(out, *args[:1], 2, 3, *args[3:])
    assert "resuming after epoch 1" in resumed.stdout
    assert_close(weights(tmp_path / "whole"), weights(out), atol=0.0)


def test_a_process_that_raises_is_named_in_one_line(tmp_path: Path) -> None:
    r = run(tmp_path, "basic", 2, 2, "--raise-on-rank", "1", check=False)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == \
        "error: dist_worker: process 1 of 2 failed: made-up failure in one process"
    assert "Traceback" not in r.stderr  # the survivor says it lost the others, in one line


def test_a_run_goes_on_with_another_number_of_processes(tmp_path: Path) -> None:
    """Two processes for the first epoch, one for the second: the weights of one process for
    both (dropout off), since the global batch is the same."""
    run(tmp_path / "one", "basic", 1, 2)
    run(tmp_path / "mixed", "basic", 2, 2, "--stop-after", "1")
    out = run(tmp_path / "mixed", "basic", 1, 2)
    assert "resuming after epoch 1" in out.stdout
    assert_close(weights(tmp_path / "one"), weights(tmp_path / "mixed"), atol=1e-5)


def test_the_first_failure_is_the_error_a_process_wrote_even_if_it_then_aborted(
        tmp_path: Path) -> None:
    """The launcher's failures as it builds them: a process that recorded its error and then
    died in the C++ teardown (SIGABRT, seen under load) is named by its error, before a
    process killed by a signal with no error and one that lost its peers."""
    import signal as signals

    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    from pipeline.training.distributed import first_failure

    def failure(rank: int, exitcode: int, message: str | None) -> ProcessFailure:
        path = tmp_path / f"error-{rank}.json"
        if message is not None:
            path.write_text(json.dumps({"message": message, "timestamp": 100 + rank}))
        return ProcessFailure(local_rank=rank, pid=1000 + rank, exitcode=exitcode,
                              error_file=str(path))

    wrote_then_aborted = failure(1, -signals.SIGABRT, "made-up failure in one process")
    lost_peers = failure(0, 1, "RuntimeError: Connection closed by peer")
    assert first_failure({0: lost_peers, 1: wrote_then_aborted}, 2) == \
        "process 1 of 2 failed: made-up failure in one process"
    killed = failure(2, -signals.SIGKILL, None)
    assert first_failure({0: lost_peers, 2: killed}, 3) == \
        "process 2 of 3 failed: killed by SIGKILL"
