"""Word vectors for the vocabularies: fastText pretrained (.bin/.vec/.vec.gz), trained, or none.

The result is one float32 matrix per language with a row per vocabulary entry. A row of zeros
means "no vector": the model initializes those rows randomly (no real vector is all zeros).
Text vectors are streamed line by line and only vocabulary words are kept, so a 2.5M-word file
never sits in memory (the lesson loaded it whole into a dict).
"""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.files import PipelineError
from pipeline.params import FastTextTrainParams
from pipeline.vocab import SPECIALS


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
    """Vectors of every word of `sentences`, from fastText skip-gram trained on them."""
    import fasttext

    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as f:
        for s in sentences:
            f.write(" ".join(s) + "\n")
        corpus = f.name
    try:
        model = fasttext.train_unsupervised(
            corpus, model="skipgram", dim=dim, epoch=p.epochs, minCount=p.min_count, ws=p.window,
            minn=p.minn, maxn=p.maxn, bucket=p.bucket, thread=p.threads, verbose=0,
        )
    except RuntimeError as e:  # fastText's only signal of a diverged run: "Encountered NaN."
        raise PipelineError(f"embeddings.train: fastText training failed ({e}); a corpus this "
                            "small or this repetitive may need fewer epochs") from None
    finally:
        Path(corpus).unlink()
    return {w: model.get_word_vector(w) for w in model.get_words()}


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
