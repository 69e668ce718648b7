"""Stage download: bring the corpus (URL or local path) to data/raw/corpus: the Giga-fren
tarball, or a zip of tab-separated Tatoeba pairs (pipeline/data/corpus.py tells them apart)."""

import os

from pipeline.data.corpus import check_corpus
from pipeline.data.download import fetch
from pipeline.errors import run_main
from pipeline.params import DataParams, load_params, section

OUT = "data/raw/corpus"
INCOMING = "data/raw/incoming"  # HTTP downloads resume from incoming.part


def main() -> None:
    p: DataParams = section(load_params(), "data", DataParams)
    # Fetched under another name and checked before it takes the output's name.
    path = fetch(p.url, INCOMING, sha256=p.sha256, retries=p.retries, timeout=p.timeout)
    try:
        pairs_in = check_corpus(path, name=p.url)
    except Exception:
        path.unlink()
        raise
    os.replace(path, OUT)
    print(f"download: {p.url} -> {OUT} ({os.path.getsize(OUT):,} bytes; pairs in {pairs_in})")


if __name__ == "__main__":
    run_main(main)
