"""Corpora the tests and benchmarks build themselves, in the layouts of the real ones (the
Giga-fren tarball, the Tatoeba pairs' zip made on a Mac), and where the shared Tatoeba tarball
lies."""

from __future__ import annotations

import gzip
import io
import os
import struct
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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
    """A tar of these members in this order; a name ending in / is a directory entry."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name.rstrip("/") if name.endswith("/") else name)
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
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


def attribution(n: int) -> str:
    """The third column of a line of the Anki files (made-up sentence ids and names)."""
    return (f"CC-BY 2.0 (France) Attribution: tatoeba.org #{1000 + 7 * n} (someone) & "
            f"#{900000 + 3 * n} (somebody)")


def apple_double() -> bytes:
    """A macOS resource fork as a Mac's zip holds one beside each member (`__MACOSX/._name`),
    212 bytes: the AppleDouble header (magic, version, `Mac OS X` filler, two entries: Finder
    info, whose id 9 is a tab byte, and an empty resource fork), then the Finder info and an
    extended attribute. Binary, not UTF-8, and its first line holds a tab."""
    header = (b"\x00\x05\x16\x07" + b"\x00\x02\x00\x00" + b"Mac OS X".ljust(16)
              + struct.pack(">H", 2) + struct.pack(">III", 9, 50, 162)
              + struct.pack(">III", 2, 212, 0))
    name, value = b"com.apple.quarantine\x00", b"0081;5ca9d1e2;Safari;\n"
    attrs = (b"\x00" * 32 + b"\x00\x00ATTR" + struct.pack(">IIIIIIHH", 0, 212, 120, 22, 0, 0, 0, 1)
             + struct.pack(">IIHB", 120, len(value), 0, len(name)) + name + value)
    fork = header + attrs.ljust(162, b"\x00")
    assert len(fork) == 212 and b"\t" in fork.split(b"\n")[0]
    return fork


def make_zip(path: Path, en: list[str] | None = None, fr: list[str] | None = None,
             lang: str = "fra", attribution_column: bool = True) -> Path:
    """A zip built like the real `fra-eng.zip` (made on a Mac): these six members in this
    order, the resource forks as AppleDouble headers, English<TAB>French<TAB>attribution lines
    with LF ends. `lang="deu"` gives the layout of `deu-eng.zip` (the text stays ours)."""
    en = EN_LINES if en is None else en
    fr = FR_LINES if fr is None else fr
    rows = [f"{e}\t{f}" + (f"\t{attribution(n)}" if attribution_column else "")
            for n, (e, f) in enumerate(zip(en, fr))]
    folder = f"{lang}-eng"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{folder}/", b"")
        z.writestr(f"__MACOSX/._{folder}", apple_double())
        z.writestr(f"{folder}/_about.txt", "Made up for the tests: the about file of the "
                   "Anki layout, with no tab.\n\nIt has several lines.\n")
        z.writestr(f"__MACOSX/{folder}/.__about.txt", apple_double())
        z.writestr(f"{folder}/{lang}.txt", "".join(r + "\n" for r in rows))
        z.writestr(f"__MACOSX/{folder}/._{lang}.txt", apple_double())
    return path


def shared_pairs_zip(path: Path) -> Path:
    """The shared tarball's line pairs as a Tatoeba-layout zip (what fra-eng.zip holds)."""
    with tarfile.open(SHARED_TARBALL) as tar:
        en, fr = (gzip.decompress(tar.extractfile(m).read()).decode("utf-8").splitlines()
                  for m in (EN, FR))
    return make_zip(path, en, fr)
