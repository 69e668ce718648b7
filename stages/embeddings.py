"""Stage embeddings: a float32 matrix per language (rows of zeros = no vector)."""

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.download import fetch, is_url
from pipeline.embeddings import build_matrix, read_vectors, train_vectors
from pipeline.files import read_json, run_main, write_json, write_npy
from pipeline.params import EmbeddingsParams, load_params, section

TOKENS = "data/interim/tokens.parquet"
VOCAB = "data/processed/vocab_{lang}.json"
OUT = "data/processed/emb_{lang}.npy"
METRICS = "metrics/embeddings.json"
EXTERNAL = Path("data/external")  # downloaded vectors, kept between runs (not a DVC output)


def vectors_for(p: EmbeddingsParams, lang: str, words: set[str]) -> dict[str, np.ndarray]:
    if p.source == "random":
        return {}
    if p.source == "train":
        return train_vectors(pd.read_parquet(TOKENS)[f"{lang}_tokens"], p.dim, p.train)
    location = p.pretrained[lang]
    path = Path(location)
    if is_url(location):
        path = EXTERNAL / location.rstrip("/").rsplit("/", 1)[-1]
        if not path.exists():
            fetch(location, path)
    return read_vectors(path, words, p.dim)


def main() -> None:
    p: EmbeddingsParams = section(load_params(), "embeddings", EmbeddingsParams)
    coverage = {"source": p.source, "dim": p.dim}
    for lang in ("fr", "en"):
        itos = read_json(VOCAB.format(lang=lang))
        matrix, cov = build_matrix(itos, vectors_for(p, lang, set(itos)), p.dim)
        write_npy(OUT.format(lang=lang), matrix)
        coverage[lang] = cov
        print(f"embeddings: {lang} {cov['with_vector']:,} of {cov['words']:,} words have a "
              f"vector; missing e.g. {cov['missing_examples'][:8]}")
    write_json(METRICS, coverage)


if __name__ == "__main__":
    run_main(main)
