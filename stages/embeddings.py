"""Stage embeddings: a float32 matrix per language (rows of zeros = no vector)."""

from pathlib import Path

from pipeline.data.embeddings import build_matrix, training_tokens, vectors_for
from pipeline.errors import run_main
from pipeline.files import read_json, write_json, write_npy
from pipeline.params import EmbeddingsParams, VocabParams, load_params, section

TOKENS = "data/interim/tokens.parquet"
IDS = "data/processed/ids.parquet"
VOCAB = "data/processed/vocab_{lang}.json"
OUT = "data/processed/emb_{lang}.npy"
METRICS = "metrics/embeddings.json"
EXTERNAL = Path("data/external")  # downloaded vectors, kept between runs (not a DVC output)


def main() -> None:
    params = load_params()
    p: EmbeddingsParams = section(params, "embeddings", EmbeddingsParams)
    split = section(params, "vocab", VocabParams).split
    coverage = {"source": p.source, "dim": p.dim}
    for lang in ("fr", "en"):
        itos = read_json(VOCAB.format(lang=lang))
        vectors = vectors_for(p, lang, set(itos), lambda: training_tokens(TOKENS, IDS, split),
                              EXTERNAL)
        matrix, coverage[lang] = build_matrix(itos, vectors, p.dim)
        write_npy(OUT.format(lang=lang), matrix)
        print(f"embeddings: {lang} {coverage[lang]['with_vector']:,} of "
              f"{coverage[lang]['words']:,} words have a vector; missing e.g. "
              f"{coverage[lang]['missing_examples'][:8]}")
    write_json(METRICS, coverage)


if __name__ == "__main__":
    run_main(main)
