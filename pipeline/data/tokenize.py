"""spaCy tokenization of the question pairs, in parallel worker processes.

Blank `fr`/`en` pipelines carry their tokenizer rules in the spaCy package, so nothing is
downloaded. Each worker tokenizes one contiguous slice of the pairs and writes its own Parquet
shard; the shards are joined in order, so the result does not depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.params import TokenizeParams

# No-break spaces (French puts them before ? and !) become plain spaces, so that "toi ?" and
# "toi\u202f?" give the same tokens.
SPACES = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2007": " "})
CAPS = "t_up"  # the lesson's marker for a word written in capitals
_SLASH_HASH = re.compile(r"([/#])")
_MULTI_SPACE = re.compile(r" {2,}")


@cache
def _spacy_tokenizer(lang: str):  # noqa: ANN202 - spaCy's Tokenizer
    import spacy  # slow to import; only where tokenizing happens

    return spacy.blank(lang).tokenizer


def normalize(text: str) -> str:
    text = text.translate(SPACES)
    text = _SLASH_HASH.sub(r" \1 ", text)  # as the lesson's tokenizer: split on / and #
    return _MULTI_SPACE.sub(" ", text).strip()


def tokenize(text: str, lang: str, lowercase: bool = True, mark_caps: bool = True) -> list[str]:
    """Tokens of one sentence, normalized as in training."""
    out: list[str] = []
    for tok in _spacy_tokenizer(lang)(normalize(text)):
        t = tok.text
        if tok.is_space:
            continue
        if mark_caps and len(t) > 2 and t.isupper():
            out.append(CAPS)
        out.append(t.lower() if lowercase else t)
    return out


@dataclass
class _Job:
    start: int
    end: int
    shard: str
    lowercase: bool
    mark_caps: bool
    progress: bool


_PAIRS: pd.DataFrame | None = None  # set before forking; workers read their slice from it


def _tokenize_shard(job: _Job) -> str:
    assert _PAIRS is not None
    part = _PAIRS.iloc[job.start:job.end]
    fr, en = [], []
    for f, e in tqdm(zip(part["fr"], part["en"]), total=len(part), desc="tokenize",
                     disable=not job.progress or None, mininterval=1.0):
        fr.append(tokenize(f, "fr", job.lowercase, job.mark_caps))
        en.append(tokenize(e, "en", job.lowercase, job.mark_caps))
    out = pd.DataFrame({"fr_tokens": fr, "en_tokens": en, "line": part["line"].to_numpy()})
    out.to_parquet(job.shard, index=False)
    return job.shard


def worker_count(n_pairs: int, p: TokenizeParams) -> int:
    """Workers for `n_pairs`: as asked (0 = cores), but never below min_pairs_per_worker each."""
    asked = p.workers or os.cpu_count() or 1
    return max(1, min(asked, n_pairs // max(1, p.min_pairs_per_worker)))


def tokenize_pairs(pairs: pd.DataFrame, p: TokenizeParams, workers: int | None = None,
                   progress: bool = True) -> pd.DataFrame:
    """Columns fr_tokens, en_tokens, line for every pair, in the input's order."""
    global _PAIRS
    n = len(pairs)
    workers = workers or worker_count(n, p)
    bounds = np.linspace(0, n, workers + 1).astype(int)
    with tempfile.TemporaryDirectory(prefix="tokenize-shards-") as tmp:
        jobs = [
            _Job(int(a), int(b), str(Path(tmp) / f"shard-{i:03d}.parquet"), p.lowercase,
                 p.mark_caps, progress and i == 0)
            for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
        ]
        _PAIRS = pairs
        try:
            if workers == 1:
                shards = [_tokenize_shard(jobs[0])]
            else:
                # fork: workers inherit the pairs and the loaded spaCy module without copying
                with mp.get_context("fork").Pool(workers) as pool:
                    shards = pool.map(_tokenize_shard, jobs, chunksize=1)
        finally:
            _PAIRS = None
        return pd.concat([pd.read_parquet(s) for s in shards], ignore_index=True)


def length_stats(tokens: pd.DataFrame) -> dict:
    stats = {}
    for col, lang in (("en_tokens", "en"), ("fr_tokens", "fr")):
        lengths = tokens[col].map(len).to_numpy()
        stats[f"{lang}_len_p90"] = float(np.percentile(lengths, 90))
        stats[f"{lang}_len_p99"] = float(np.percentile(lengths, 99))
        stats[f"{lang}_len_max"] = int(lengths.max())
    return stats
