"""Stage download: bring the Giga-fren tarball (URL or local path) to data/raw/."""

import os

from pipeline.corpus import check_tarball
from pipeline.download import fetch
from pipeline.files import run_main
from pipeline.params import DataParams, load_params, section

OUT = "data/raw/training-giga-fren.tar"
INCOMING = "data/raw/incoming.tar"  # HTTP downloads resume from incoming.tar.part


def main() -> None:
    p: DataParams = section(load_params(), "data", DataParams)
    # Fetched under another name and checked before it takes the output's name.
    path = fetch(p.url, INCOMING, sha256=p.sha256, retries=p.retries, timeout=p.timeout)
    try:
        check_tarball(path, name=p.url)
    except Exception:
        path.unlink()
        raise
    os.replace(path, OUT)
    print(f"download: {p.url} -> {OUT} ({os.path.getsize(OUT):,} bytes)")


if __name__ == "__main__":
    run_main(main)
