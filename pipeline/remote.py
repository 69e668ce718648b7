"""`fren-nmt pull`: DVC's pull from a remote, with one line for what went wrong.

DVC tells a missing folder, an empty remote and a remote that holds another run's outputs
apart only as a multi-line warning about missing cache files. This says which it is before
pulling, and after pulling names every stage that is still out of date and why, so that a
colleague knows whether `fren-nmt translate` already has its model or `dvc repro` must run
(docs/pipeline.md, "Sharing what was trained: a DVC remote").
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


@contextmanager
def _quiet_dvc():
    """DVC's warnings are what this module turns into one line; its errors still show."""
    loggers = [logging.getLogger(name) for name in ("dvc", "dvc_data")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _remote(repo: Any, name: str | None) -> tuple[str, str]:
    """The remote's name (the default one unless named) and its URL."""
    remotes = repo.config["remote"]
    name = name or repo.config["core"].get("remote")
    if not name:
        raise PipelineError("pull: no DVC remote is set; add one with `dvc remote add -d "
                            "NAME URL` (docs/pipeline.md, Sharing what was trained)")
    if name not in remotes:
        known = ", ".join(sorted(remotes)) or "none"
        raise PipelineError(f"pull: no DVC remote named {name!r} (set: {known})")
    return name, remotes[name]["url"]


def check_remote(repo: Any, name: str | None = None) -> tuple[str, str]:
    """The remote's name and URL once it is known to be reachable and to hold something."""
    name, url = _remote(repo, name)
    where = f"remote {name!r} ({url})"
    try:
        odb = repo.cloud.get_remote_odb(name)
        # objects live under ROOT/files/md5 (DVC 3); ROOT is what `dvc remote add` named
        root = odb.fs.parent(odb.fs.parent(odb.path))
        exists = odb.fs.exists(root)
        empty = exists and not odb.fs.ls(root, detail=False)
    except Exception as e:  # a plugin not installed, a refused connection, bad credentials
        raise PipelineError(f"pull: {where} is unreachable: {_first_line(e)}") from None
    if not exists:
        raise PipelineError(f"pull: {where} is unreachable: no such folder or bucket")
    if empty:
        raise PipelineError(f"pull: {where} is empty: nothing was ever pushed there (`dvc "
                            "push` where the pipeline ran)")
    return name, url


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _why(changes: list) -> str:
    """DVC's status of one stage, in a few words."""
    params, inputs, missing = [], [], False
    for change in changes:
        for kind, paths in (change.items() if isinstance(change, dict) else [(change, {})]):
            if kind == "changed outs":
                missing = True
            elif kind == "changed deps":
                for path, what in paths.items():  # a params file: {key: status}
                    (params.extend(what) if isinstance(what, dict) else inputs.append(path))
    reasons = []
    if params:
        reasons.append("params changed: " + ", ".join(sorted(set(params))))
    if inputs:
        reasons.append(f"{_count(len(inputs), 'input')} changed ({inputs[0]} first)"
                       if len(inputs) > 1 else f"{inputs[0]} changed")
    if missing:
        reasons.append("its outputs are not on the remote: made with other params or code, "
                       "or never pushed")
    return "; ".join(reasons) or "out of date"


def _stale(status: dict) -> str:
    """Stages with the same reasons, together: `a, b (why)`."""
    groups: dict[str, list[str]] = {}
    for stage, changes in status.items():
        groups.setdefault(_why(changes), []).append(stage)
    return ", ".join(f"{', '.join(stages)} ({why})" for why, stages in groups.items())


def pull(root: str | Path = ".", remote: str | None = None,
         targets: list[str] | None = None) -> str:
    """Pull the outputs dvc.lock names: of `targets` and the stages they depend on, or of
    every stage. A summary line when those stages are then up to date, a PipelineError
    naming each that is not."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        repo = Repo(str(root))
    except DvcException as e:
        raise PipelineError(f"pull: {root}: {_first_line(e)}") from None
    with repo, _quiet_dvc():
        name, url = check_remote(repo, remote)
        try:
            result = repo.pull(targets or None, remote=name, allow_missing=True,
                               with_deps=bool(targets))
            stale = repo.status(targets or None, with_deps=bool(targets))
        except DvcException as e:
            raise PipelineError(f"pull: from remote {name!r} ({url}): {_first_line(e)}"
                                ) from None
    fetched = result["stats"]["fetched"]
    if stale:
        raise PipelineError(
            f"pull: {_count(fetched, 'file')} from remote {name!r} ({url}), but "
            f"{_count(len(stale), 'stage')} out of date: {_stale(stale)}. `dvc repro` "
            "rebuilds them (and `dvc push` shares them)")
    scope = f"{', '.join(targets)} and the stages before" if targets else "every stage"
    return (f"pull: {_count(fetched, 'file')} from remote {name!r} ({url}); {scope} up to "
            "date, nothing to run")
