"""The outside set: French questions with English references written for this project, none
of whose French or English occurs in the corpus (tests/integration/test_outside.py checks it
against the shared tarball). Valid chooses and test reports on questions like the corpus's
own; this set reports on questions a user would write: names, numbers, dates, rare words and
subjects the corpus does not cover. It is scored, never chosen on.

The file is a TSV with a header `fr<TAB>en`, one pair a line, UTF-8.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.errors import PipelineError

OUTSIDE = Path(__file__).resolve().parents[2] / "outside" / "questions.tsv"


def read_outside(path: str | Path = OUTSIDE) -> pd.DataFrame:
    """The pairs (columns fr, en), checked: the header, two non-empty fields a line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise PipelineError(f"{path}: no such file (the outside set)") from None
    except UnicodeDecodeError as e:
        raise PipelineError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    if not lines or lines[0].split("\t") != ["fr", "en"]:
        raise PipelineError(f"{path}: line 1 must be the header 'fr<TAB>en'")
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 2 or not all(f.strip() for f in fields):
            raise PipelineError(f"{path}: line {n}: expected a French and an English sentence "
                                f"separated by one tab, got {line[:60]!r}")
        rows.append((fields[0].strip(), fields[1].strip()))
    if not rows:
        raise PipelineError(f"{path}: no pairs")
    return pd.DataFrame(rows, columns=["fr", "en"])
