"""Atomic file writes and JSON reading, shared by every stage.

Every output is written to a temporary name beside its final path and renamed into place only
when it is complete, so a crash or a bad input never leaves a file that looks finished.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_lines(path: str | Path, lines: list[str]) -> None:
    """One line each, UTF-8, LF: what `sacrebleu REF < HYP` reads. A line holding a newline
    would shift every line after it, so it is refused."""
    if any("\n" in line or "\r" in line for line in lines):
        raise PipelineError(f"{path}: a line to write holds a line break")
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def read_parquet_lists(path: str | Path) -> Any:
    """A Parquet file of list columns (token lists) as a DataFrame, converted in the system
    allocator: pyarrow's default one keeps what the conversion to Python objects frees, 40 of
    the vocab stage's 250 MiB at Giga-fren's size (BENCHMARKS.md, "The data stages at
    Giga-fren's size"). It is the process's allocator for pyarrow from then on."""
    import pandas as pd
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())
    return pd.read_parquet(path)


def write_parquet(path: str | Path, df: Any) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def write_tsv(path: str | Path, df: Any) -> None:
    """A table as tab-separated text with a header row (what DVC's plots and a reader's
    spreadsheet open)."""
    with atomic_path(path, suffix=".tsv") as tmp:
        df.to_csv(tmp, sep="\t", index=False)


def write_npy(path: str | Path, array: Any) -> None:
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)  # a file object: np.save(name) would append ".npy" to the temp name


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PipelineError(f"{path}: not valid JSON ({e})") from None
