"""Stage embeddings: a float32 matrix per language (rows of zeros = no vector)."""

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data.download import fetch, is_url
from pipeline.data.embeddings import build_matrix, read_vectors, train_vectors
from pipeline.files import read_json, run_main, write_json, write_npy
from pipeline.params import EmbeddingsParams, VocabParams, load_params, section

TOKENS = "data/interim/tokens.parquet"
IDS = "data/processed/ids.parquet"
VOCAB = "data/processed/vocab_{lang}.json"
OUT = "data/processed/emb_{lang}.npy"
METRICS = "metrics/embeddings.json"
EXTERNAL = Path("data/external")  # downloaded vectors, kept between runs (not a DVC output)


def training_tokens(split: str) -> pd.DataFrame:
    """The tokenized pairs trained vectors learn from: under vocab.split grouped the training
    pairs alone (no validation or test sentence shapes them), under lesson every pair."""
    tokens = pd.read_parquet(TOKENS)
    if split == "lesson":
        return tokens
    ids = pd.read_parquet(IDS, columns=["line", "split"])
    return tokens[tokens["line"].isin(ids.loc[ids["split"] == "train", "line"])]


def vectors_for(p: EmbeddingsParams, lang: str, words: set[str], split: str
                ) -> dict[str, np.ndarray]:
    if p.source == "random":
        return {}
    if p.source == "train":
        return train_vectors(training_tokens(split)[f"{lang}_tokens"], p.dim, p.train)
    location = p.pretrained[lang]
    path = Path(location)
    if is_url(location):
        path = EXTERNAL / location.rstrip("/").rsplit("/", 1)[-1]
        if not path.exists():
            fetch(location, path)
    return read_vectors(path, words, p.dim)


def main() -> None:
    params = load_params()
    p: EmbeddingsParams = section(params, "embeddings", EmbeddingsParams)
    split = section(params, "vocab", VocabParams).split
    coverage = {"source": p.source, "dim": p.dim}
    for lang in ("fr", "en"):
        itos = read_json(VOCAB.format(lang=lang))
        matrix, cov = build_matrix(itos, vectors_for(p, lang, set(itos), split), p.dim)
        write_npy(OUT.format(lang=lang), matrix)
        coverage[lang] = cov
        print(f"embeddings: {lang} {cov['with_vector']:,} of {cov['words']:,} words have a "
              f"vector; missing e.g. {cov['missing_examples'][:8]}")
    write_json(METRICS, coverage)


if __name__ == "__main__":
    run_main(main)
