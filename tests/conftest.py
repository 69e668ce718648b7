"""Shared fixtures: tarballs the tests write themselves, and the shared Tatoeba tarball."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_TARBALL = Path(os.environ.get(
    "FREN_NMT_TARBALL", ROOT.parent / "shared" / "data" / "training-giga-fren-tatoeba.tar"))

EN = "giga-fren.release2.fixed.en.gz"
FR = "giga-fren.release2.fixed.fr.gz"

# Our own little corpus: questions that pass the lesson's filter and lines that don't.
EN_LINES = [
    "What is your name?",
    "Hello there.",
    "Where is the station?",
    "Why not?",
    "Who are you? I am me.",
    "When will the meeting take place?",
    "Which one do you want?",
    "This is not a question",
]
FR_LINES = [
    "Quel est ton nom\u202f?",
    "Bonjour.",
    "Où est la gare\u00a0?",
    "Pourquoi pas ?",
    "Qui êtes-vous ? Je suis moi.",
    "Quand la réunion aura-t-elle lieu ?",
    "Lequel veux-tu ?",
    "Ce n'est pas une question",
]


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gz_lines(lines: list[str]) -> bytes:
    return gzip.compress("".join(line + "\n" for line in lines).encode("utf-8"))


def make_tarball(path: Path, en: list[str] | None = None, fr: list[str] | None = None,
                 members: dict[str, bytes] | None = None) -> Path:
    if members is None:
        members = {EN: gz_lines(EN_LINES if en is None else en),
                   FR: gz_lines(FR_LINES if fr is None else fr)}
    path.write_bytes(tar_bytes(members))
    return path


@pytest.fixture
def tarball(tmp_path: Path) -> Path:
    return make_tarball(tmp_path / "small.tar")


@pytest.fixture
def shared_tarball() -> Path:
    if not SHARED_TARBALL.exists():
        message = f"shared tarball not found at {SHARED_TARBALL} (set FREN_NMT_TARBALL)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI always has it: a missing file is a broken setup
        pytest.skip(message)
    return SHARED_TARBALL


ATTRIBUTION = "CC-BY 2.0 (France) Attribution: tatoeba.org"


def make_zip(path: Path, en: list[str] | None = None, fr: list[str] | None = None,
             member: str = "fra.txt", attribution: bool = True) -> Path:
    """A zip in the Anki/Tatoeba layout: English<TAB>French<TAB>attribution lines."""
    en = EN_LINES if en is None else en
    fr = FR_LINES if fr is None else fr
    rows = [f"{e}\t{f}" + (f"\t{ATTRIBUTION}" if attribution else "") for e, f in zip(en, fr)]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("_about.txt", "Made up for the tests.\n")
        z.writestr(member, "".join(r + "\n" for r in rows))
    return path


def shared_pairs_zip(path: Path) -> Path:
    """The shared tarball's line pairs as a Tatoeba-layout zip (what fra-eng.zip holds)."""
    with tarfile.open(SHARED_TARBALL) as tar:
        en, fr = (gzip.decompress(tar.extractfile(m).read()).decode("utf-8").splitlines()
                  for m in (EN, FR))
    return make_zip(path, en, fr)
