"""Word vectors for the vocabularies: fastText pretrained (.bin/.vec/.vec.gz), trained, or none.

The result is one float32 matrix per language with a row per vocabulary entry. A row of zeros
means "no vector": the model initializes those rows randomly (no real vector is all zeros).
Text vectors are streamed line by line and only vocabulary words are kept, so a 2.5M-word file
never sits in memory (the lesson loaded it whole into a dict).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.data.download import fetch, is_url
from pipeline.data.vocab import SPECIALS
from pipeline.errors import PipelineError
from pipeline.params import EmbeddingsParams, FastTextTrainParams

MAX_TRAINED_VALUE = 1e3  # trained skip-gram vectors stay far below this


def _open_text(path: Path):  # noqa: ANN202 - a text file object
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="\n")
    return open(path, encoding="utf-8", newline="\n")


def read_vec(path: str | Path, words: set[str], dim: int) -> dict[str, np.ndarray]:
    """Vectors of `words` from a fastText text file (optional "count dim" header line)."""
    path = Path(path)
    found: dict[str, np.ndarray] = {}
    try:
        with _open_text(path) as f:
            for n, line in enumerate(tqdm(f, desc=path.name, unit=" lines", mininterval=1.0,
                                          disable=None), start=1):
                parts = line.rstrip("\n").rstrip(" ").split(" ")
                if n == 1 and len(parts) == 2:
                    if int(parts[1]) != dim:
                        raise PipelineError(f"{path}: vectors have dimension {parts[1]}, "
                                            f"embeddings.dim is {dim}")
                    continue
                if len(parts) != dim + 1:
                    raise PipelineError(f"{path}: line {n} has {len(parts) - 1} values, "
                                        f"expected embeddings.dim={dim}")
                if parts[0] in words and parts[0] not in found:
                    found[parts[0]] = np.asarray(parts[1:], dtype=np.float32)
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile, ValueError) as e:
        raise PipelineError(f"{path}: unreadable vectors file ({e})") from None
    return found


def read_bin(path: str | Path, words: set[str], dim: int) -> dict[str, np.ndarray]:
    """Vectors of the `words` in a fastText .bin model's dictionary (as the lesson used)."""
    import fasttext

    path = Path(path)
    try:
        model = fasttext.load_model(str(path))
    except ValueError as e:
        raise PipelineError(f"{path}: not a fastText model ({e})") from None
    if model.get_dimension() != dim:
        raise PipelineError(f"{path}: vectors have dimension {model.get_dimension()}, "
                            f"embeddings.dim is {dim}")
    return {w: model.get_word_vector(w) for w in words if model.get_word_id(w) >= 0}


def read_vectors(path: str | Path, words: set[str], dim: int) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: no such vectors file")
    if path.suffix == ".bin":
        return read_bin(path, words, dim)
    return read_vec(path, words, dim)


def train_vectors(sentences: Iterable[Sequence[str]], dim: int, p: FastTextTrainParams
                  ) -> dict[str, np.ndarray]:
    """Vectors of every word of `sentences`, from fastText skip-gram trained on them.

    fastText 0.9 (the `fasttext` and the `fasttext-numpy2` wheels alike) reads memory it never
    initialized: on one corpus, a process that had allocated and freed much before (a pytest
    run) got vectors of 1e10 or "Encountered NaN.", a fresh one sane vectors. So it trains in a
    fresh child process, with glibc's MALLOC_PERTURB_=255, which hands out zeroed memory.
    """
    with tempfile.TemporaryDirectory() as d:
        corpus, out = Path(d) / "corpus.txt", Path(d) / "vectors"
        with open(corpus, "w", encoding="utf-8") as f:
            for s in sentences:
                f.write(" ".join(s) + "\n")
        args = dict(input=str(corpus), model="skipgram", dim=dim, epoch=p.epochs,
                    minCount=p.min_count, ws=p.window, minn=p.minn, maxn=p.maxn, bucket=p.bucket,
                    thread=p.threads, verbose=0)
        child = subprocess.run(
            [sys.executable, "-m", "pipeline.data.embeddings", json.dumps(args), str(out)],
            env={**os.environ, "MALLOC_PERTURB_": "255"}, capture_output=True, text=True)
        if child.returncode != 0:
            last = (child.stderr.strip().splitlines() or ["no message"])[-1]
            raise PipelineError(f"embeddings.train: fastText training failed ({last})")
        words = json.loads((out / "words.json").read_text(encoding="utf-8"))
        vectors = dict(zip(words, np.load(out / "vectors.npy")))
    # never pass diverged vectors on silently
    top = max((float(np.abs(v).max()) for v in vectors.values()), default=0.0)
    if not np.isfinite(top) or top > MAX_TRAINED_VALUE:
        raise PipelineError(f"embeddings.train: fastText returned vectors with values up to "
                            f"{top:.3g} (its training diverged)")
    return vectors


def _train_child(args: dict, out: Path) -> None:
    import fasttext

    model = fasttext.train_unsupervised(**args)
    words = model.get_words()
    out.mkdir()
    (out / "words.json").write_text(json.dumps(words, ensure_ascii=False), encoding="utf-8")
    np.save(out / "vectors.npy", np.stack([model.get_word_vector(w) for w in words]))


def build_matrix(itos: Sequence[str], vectors: dict[str, np.ndarray], dim: int
                 ) -> tuple[np.ndarray, dict]:
    """One row per vocabulary entry (zeros where no vector), and the coverage record."""
    matrix = np.zeros((len(itos), dim), dtype=np.float32)
    missing = []
    for i, w in enumerate(itos):
        if w in vectors:
            matrix[i] = vectors[w]
        elif w not in SPECIALS:
            missing.append(w)
    words = len(itos) - len(SPECIALS)
    coverage = {
        "words": words,
        "with_vector": words - len(missing),
        "missing": len(missing),
        "missing_examples": missing[:20],  # most frequent first, as the vocabulary is ordered
    }
    return matrix, coverage


def training_tokens(tokens_path: str | Path, ids_path: str | Path, split: str) -> pd.DataFrame:
    """The tokenized pairs trained vectors learn from: under vocab.split grouped the training
    pairs alone (no validation or test sentence shapes them), under lesson every pair."""
    tokens = pd.read_parquet(tokens_path)
    if split == "lesson":
        return tokens
    ids = pd.read_parquet(ids_path, columns=["line", "split"])
    return tokens[tokens["line"].isin(ids.loc[ids["split"] == "train", "line"])]


def vectors_for(p: EmbeddingsParams, lang: str, words: set[str],
                tokens: Callable[[], pd.DataFrame], external: Path) -> dict[str, np.ndarray]:
    """`lang`'s vectors for `words` as embeddings.source says: none, trained on `tokens()`'s
    pairs, or read from a fastText file (a URL is downloaded once into `external`)."""
    if p.source == "random":
        return {}
    if p.source == "train":
        return train_vectors(tokens()[f"{lang}_tokens"], p.dim, p.train)
    location = p.pretrained[lang]
    path = Path(location)
    if is_url(location):
        path = external / location.rstrip("/").rsplit("/", 1)[-1]
        if not path.exists():
            fetch(location, path)
    return read_vectors(path, words, p.dim)


if __name__ == "__main__":  # train_vectors' child: python -m pipeline.data.embeddings ARGS_JSON OUT
    _train_child(json.loads(sys.argv[1]), Path(sys.argv[2]))
