"""Stage download: bring the Giga-fren tarball (URL or local path) to data/raw/."""

from pipeline.corpus import check_tarball
from pipeline.download import fetch
from pipeline.files import run_main
from pipeline.params import DataParams, load_params, section

OUT = "data/raw/training-giga-fren.tar"


def main() -> None:
    p: DataParams = section(load_params(), "data", DataParams)
    path = fetch(p.url, OUT, sha256=p.sha256, retries=p.retries, timeout=p.timeout)
    try:
        check_tarball(path)
    except Exception:
        path.unlink()  # not a usable tarball: don't leave it looking like a finished download
        raise
    print(f"download: {p.url} -> {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    run_main(main)
