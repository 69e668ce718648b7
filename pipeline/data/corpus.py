"""Read the corpus and keep the wh-question pairs: the Giga-fren tarball, or a zip of
tab-separated Tatoeba pairs (the Anki/Tatoeba `fra-eng.zip`), told apart by their content.

The tarball's two gzip members are read in step.

Nothing is extracted to disk: each member is inflated straight out of the tar, in a thread of
its own (zlib releases the GIL, so the two inflate on two cores while the main thread matches).
Lines are handled a block at a time: the English regex runs over a whole block in one C-level
`finditer`, and only the lines it hits are looked up on the French side. `filter_lines` is
the lesson's plain line-by-line loop, which the block-wise reading must agree with (the tests
hold them against each other). The zip (a few MB) has one text member of
`English<TAB>French[<TAB>attribution]` lines, read whole and filtered by `filter_lines`, with
each pair's line number in the member as its `line`.
Real archives hold more than the data: directory entries, members in a folder, macOS resource
forks (`__MACOSX/`, `._*`), a BOM, CRLF line ends, empty lines; each is read or refused below.
"""

from __future__ import annotations

import queue
import re
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from pipeline.errors import PipelineError

EN_MEMBER = "giga-fren.release2.fixed.en.gz"
FR_MEMBER = "giga-fren.release2.fixed.fr.gz"
FRENCH_MEMBER = "fra.txt"  # the Anki layout's English<TAB>French file
ANKI_MEMBER = re.compile(r"([a-z]{3})\.txt")  # its files are named for the other language
APPLEDOUBLE = b"\x00\x05\x16\x07"  # magic of a macOS resource fork
READ_SIZE = 1 << 20  # compressed bytes per read
BLOCK_BYTES = 1 << 22  # English bytes matched per block


def is_zip(path: str | Path) -> bool:
    """The corpus's kind, by its content (a zip starts with its local file header)."""
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def check_corpus(path: str | Path, name: str | None = None) -> str:
    """Fail with one line unless `path` is a Giga-fren tarball or a zip of tab-separated
    English-French pairs; `name` is what the message calls the file. Returns which member(s)
    hold the pairs, for the one line that says what was read."""
    if is_zip(path):
        return _zip_member(path, name or str(path))
    return " + ".join(_tar_members(path, name or str(path)))


def is_junk(member: str) -> bool:
    """A member an archiver adds beside the data: macOS's AppleDouble resource forks (`._x`,
    and the `__MACOSX/` tree they sit in when a Mac zips a folder). They are binary and their
    header holds a tab byte, so they must not be taken for pairs."""
    path = PurePosixPath(member)
    return "__MACOSX" in path.parts or path.name.startswith("._")


def _first_line(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> str | None:
    """The member's first non-empty line as text, or None where it is not UTF-8 text."""
    with z.open(info) as f:
        head = f.read(4096)
    if head.startswith(APPLEDOUBLE):
        return None
    first = next((line for line in head.removeprefix(b"\xef\xbb\xbf").split(b"\n")
                  if line.strip()), b"")
    try:
        return first.decode("utf-8").removesuffix("\r")
    except UnicodeDecodeError:  # binary; a line longer than the head is no pairs file either
        return None


def _zip_member(path: str | Path, name: str) -> str:
    """The zip's member of English<TAB>French lines: `fra.txt` wherever it sits (the Anki
    layout, which names the file for the language beside English), else a .txt of tab-separated
    lines under another name. Another language's Anki file (`deu.txt`) is refused."""
    try:
        with zipfile.ZipFile(path) as z:
            texts = [i for i in z.infolist() if not i.is_dir() and not is_junk(i.filename)
                     and i.filename.endswith(".txt")]
            ours = [i for i in texts if PurePosixPath(i.filename).name == FRENCH_MEMBER]
            if len(ours) > 1:
                raise PipelineError(f"{name}: zip has {len(ours)} {FRENCH_MEMBER} members "
                                    f"({', '.join(i.filename for i in ours)}); keep one")
            for info in ours or texts:
                first = _first_line(z, info)
                if first is None or "\t" not in first:
                    if ours:
                        raise PipelineError(f"{name}: {info.filename} is not UTF-8 text of "
                                            "English<TAB>French lines")
                    continue
                other = ANKI_MEMBER.fullmatch(PurePosixPath(info.filename).name)
                if other and not ours:
                    raise PipelineError(
                        f"{name}: holds {info.filename}, the Anki layout's English<TAB>"
                        f"{other.group(1)} pairs, not {FRENCH_MEMBER} (English<TAB>French)")
                return info.filename
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise PipelineError(f"{name}: truncated or corrupt zip archive ({e})") from None
    raise PipelineError(f"{name}: zip has no .txt member of English<TAB>French lines "
                        "(the Tatoeba/Anki layout)")


def read_zip_pairs(path: str | Path, name: str | None = None
                   ) -> tuple[list[str], list[str], list[int], str]:
    """The English and French sides of the zip's pairs, in order, with each pair's line number
    in its member, and the member's name. A third column (the attribution) is dropped; a BOM,
    CRLF line ends and empty lines are allowed."""
    name = name or str(path)
    member = _zip_member(path, name)
    try:
        with zipfile.ZipFile(path) as z:
            data = z.read(member)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise PipelineError(f"{name}: truncated or corrupt zip archive ({e})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise PipelineError(f"{name}: {member} line {line} is not valid UTF-8") from None
    en, fr, numbers = [], [], []
    # split("\n"), not splitlines(): that would also cut at U+2028, U+0085 and form feeds
    for n, row in enumerate(text.split("\n"), 1):
        row = row.removesuffix("\r")
        if not row.strip():
            continue
        cols = row.split("\t")
        if len(cols) < 2:
            raise PipelineError(f"{name}: {member} line {n} is not English<TAB>French")
        en.append(cols[0])
        fr.append(cols[1])
        numbers.append(n)
    return en, fr, numbers, member


def _tar_members(path: str | Path, name: str) -> tuple[str, str]:
    """The names of the English and French members: found by their base name, so a tarball
    made from a folder (`./giga-fren...`, `training/giga-fren...`) reads as the original does;
    directory entries and macOS resource forks (`._giga-fren...`) are passed over."""
    try:
        with tarfile.open(path, "r:") as tar:
            files = [m.name for m in tar.getmembers() if m.isfile() and not is_junk(m.name)]
    except (tarfile.TarError, OSError) as e:
        raise PipelineError(f"{name}: truncated or corrupt tar archive ({e})") from None
    found: dict[str, list[str]] = {EN_MEMBER: [], FR_MEMBER: []}
    for member in files:
        if (base := PurePosixPath(member).name) in found:
            found[base].append(member)
    missing = [m for m, names in found.items() if not names]
    if missing:
        raise PipelineError(f"{name}: tarball lacks member(s) {', '.join(missing)}")
    if twice := [", ".join(names) for names in found.values() if len(names) > 1]:
        raise PipelineError(f"{name}: tarball has the same member twice ({'; '.join(twice)})")
    return found[EN_MEMBER][0], found[FR_MEMBER][0]


def _inflate(tar_path: Path, member: str) -> Iterator[bytes]:
    """Decompressed bytes of one gzip member of the tar (several gzip streams allowed)."""
    try:
        with tarfile.open(tar_path, "r:") as tar:
            f = tar.extractfile(member)
            d, fed = zlib.decompressobj(wbits=31), False
            while raw := f.read(READ_SIZE):
                while raw:
                    fed = True
                    if out := d.decompress(raw):
                        yield out
                    if not d.eof:
                        break
                    raw = d.unused_data  # a concatenated gzip stream: start the next one
                    d, fed = zlib.decompressobj(wbits=31), False
            if fed and not d.eof:
                raise PipelineError(f"{tar_path}: {member} is truncated (gzip stream ends early)")
    except KeyError:
        raise PipelineError(f"{tar_path}: tarball lacks member {member}") from None
    except zlib.error as e:
        raise PipelineError(f"{tar_path}: {member} is corrupt ({e})") from None
    except (tarfile.TarError, OSError) as e:
        raise PipelineError(f"{tar_path}: truncated or corrupt tarball ({e})") from None


def _prefetch(chunks: Iterator[bytes], depth: int = 8) -> Iterator[bytes]:
    """Run `chunks` in a background thread, `depth` chunks ahead; re-raise its errors here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def work() -> None:
        try:
            for c in chunks:
                q.put(c)
            q.put(done)
        except BaseException as e:  # handed to the consumer, which raises it
            q.put(e)

    threading.Thread(target=work, daemon=True).start()
    while (item := q.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


class _Lines:
    """Complete lines of a byte stream, handed out in blocks of whole lines."""

    def __init__(self, chunks: Iterator[bytes], tar_path: Path, member: str) -> None:
        self.chunks, self.tar_path, self.member = chunks, tar_path, member
        self.buf = b""
        self.line = 0  # lines decoded so far
        self.ended = False
        self.pending: list[str] = []  # decoded lines not yet handed out by lines()

    def _more(self) -> bool:
        c = next(self.chunks, None)
        if c is None:
            if self.buf and not self.buf.endswith(b"\n"):
                self.buf += b"\n"  # a last line without newline is still a line
            self.ended = True
            return False
        self.buf += c
        return True

    def block(self, min_bytes: int) -> bytes:
        """At least `min_bytes` of whole lines (fewer at the end), newline-terminated."""
        while len(self.buf) < min_bytes and not self.ended:
            self._more()
        cut = self.buf.rfind(b"\n") + 1
        while cut == 0 and not self.ended:
            self._more()
            cut = self.buf.rfind(b"\n") + 1
        out, self.buf = self.buf[:cut], self.buf[cut:]
        return out

    def lines(self, n: int) -> list[str]:
        """The next `n` lines as strings (fewer if the stream ends first).

        Blocks are decoded and split whole; lines beyond `n` wait in `pending` for the next
        call, so no line is looked for byte by byte."""
        while len(self.pending) < n and not self.ended:
            text = self.decode(self.block(BLOCK_BYTES))
            self.pending.extend(text.split("\n")[:-1])
        out, self.pending = self.pending[:n], self.pending[n:]
        return out

    def decode(self, data: bytes) -> str:
        """Whole lines as text: a BOM at the start of the member and CRLF line ends are read
        as the plain UTF-8 and LF they stand for (blocks end at a LF, so no CRLF is cut)."""
        try:
            text = data.decode("utf-8-sig" if self.line == 0 else "utf-8")
        except UnicodeDecodeError as e:
            line = self.line + data.count(b"\n", 0, e.start) + 1
            raise PipelineError(
                f"{self.tar_path}: {self.member} line {line}: invalid UTF-8 ({e.reason})"
            ) from None
        self.line += text.count("\n")
        return text.replace("\r\n", "\n")


@dataclass
class FilterResult:
    pairs: pd.DataFrame  # columns fr, en, line (1-based line number in the members)
    lines: int
    source: str  # the member(s) read, as the stage's one line names them


def _first_group(m: re.Match) -> str:
    return m.group(1) if m.re.groups else m.group(0)


def _search_block(rx: re.Pattern, rx_line: re.Pattern, text: str) -> list[tuple[int, str]]:
    """(line index, kept text) of every line of `text` where `rx_line.search` hits.

    `rx` is the same pattern compiled with re.MULTILINE and runs over the whole block at once.
    A hit that runs across a newline is not a per-line hit: the lines it spans are then
    searched one by one, which keeps the result identical to searching each line alone.
    """
    hits: list[tuple[int, str]] = []
    line, pos, last = 0, 0, -1
    for m in rx.finditer(text):
        start = m.start()
        line += text.count("\n", pos, start)
        pos = start
        if line <= last:
            continue
        whole = m.group(0)
        if "\n" not in whole:
            hits.append((line, _first_group(m)))
            last = line
            continue
        begin = text.rfind("\n", 0, start) + 1
        span_end = line + whole.count("\n")
        for k in range(line, span_end + 1):
            end = text.find("\n", begin)
            if (one := rx_line.search(text[begin:end])) is not None:  # ^ needs a real start
                hits.append((k, _first_group(one)))
            begin = end + 1
        last = span_end
    return hits


def filter_pairs(tar_path: str | Path, en_regex: str, fr_regex: str) -> FilterResult:
    """The pairs of the corpus at `tar_path` (a tarball or a zip) that the regexes keep."""
    tar_path = Path(tar_path)
    try:
        rx_en_block = re.compile(en_regex, re.MULTILINE)
        rx_en, rx_fr = re.compile(en_regex), re.compile(fr_regex)
    except re.error as e:
        raise PipelineError(f"filter: invalid regex ({e})") from None
    if is_zip(tar_path):
        en_lines, fr_lines, numbers, member = read_zip_pairs(tar_path)
        kept = filter_lines(en_lines, fr_lines, en_regex, fr_regex)
        if not kept:
            raise PipelineError(
                f"{tar_path}: the filter kept no pairs of {len(en_lines)} lines "
                f"(filter.en_regex={en_regex!r}, filter.fr_regex={fr_regex!r})")
        pairs = pd.DataFrame({"fr": [k[1] for k in kept], "en": [k[2] for k in kept],
                              "line": [numbers[k[0] - 1] for k in kept]})
        return FilterResult(pairs=pairs, lines=len(en_lines), source=member)
    en_member, fr_member = _tar_members(tar_path, str(tar_path))
    en = _Lines(_prefetch(_inflate(tar_path, en_member)), tar_path, en_member)
    fr = _Lines(_prefetch(_inflate(tar_path, fr_member)), tar_path, fr_member)
    out_fr: list[str] = []
    out_en: list[str] = []
    out_line: list[int] = []
    while True:
        first = en.line
        en_text = en.decode(en.block(BLOCK_BYTES))
        n = en.line - first
        if n == 0:
            break
        fr_lines = fr.lines(n)
        if len(fr_lines) != n:
            break  # French ended first; counted below
        for i, en_kept in _search_block(rx_en_block, rx_en, en_text):
            if (m := rx_fr.search(fr_lines[i])) is not None:
                out_fr.append(_first_group(m))
                out_en.append(en_kept)
                out_line.append(first + i + 1)
    # Whatever is left on either side means the members are not aligned line for line.
    while fr.decode(fr.block(BLOCK_BYTES)):
        pass
    while en.decode(en.block(BLOCK_BYTES)):
        pass
    if en.line != fr.line:
        raise PipelineError(
            f"{tar_path}: members have different line counts "
            f"({en_member}: {en.line}, {fr_member}: {fr.line})"
        )
    if not out_en:
        raise PipelineError(
            f"{tar_path}: the filter kept no pairs of {en.line} lines "
            f"(filter.en_regex={en_regex!r}, filter.fr_regex={fr_regex!r})"
        )
    pairs = pd.DataFrame({"fr": out_fr, "en": out_en, "line": out_line})
    return FilterResult(pairs=pairs, lines=en.line, source=f"{en_member} + {fr_member}")


def line_pairs(path: str | Path) -> Iterator[tuple[int, str, str]]:
    """Every (line, English, French) pair of the corpus at `path` (a tarball or a zip), in
    order, numbered as filter_pairs numbers them: the pool stage's reading of what the filter
    rejected."""
    path = Path(path)
    if is_zip(path):
        en_lines, fr_lines, numbers, _ = read_zip_pairs(path)
        yield from zip(numbers, en_lines, fr_lines)
        return
    en_member, fr_member = _tar_members(path, str(path))
    en = _Lines(_prefetch(_inflate(path, en_member)), path, en_member)
    fr = _Lines(_prefetch(_inflate(path, fr_member)), path, fr_member)
    while True:
        first = en.line
        en_lines = en.decode(en.block(BLOCK_BYTES)).split("\n")[:-1]
        if not en_lines:
            return
        fr_lines = fr.lines(len(en_lines))
        if len(fr_lines) != len(en_lines):
            raise PipelineError(f"{path}: {fr_member} ends before {en_member} "
                                f"(line {first + len(fr_lines) + 1})")
        yield from zip(range(first + 1, first + len(en_lines) + 1), en_lines, fr_lines)


def filter_lines(en_lines: list[str], fr_lines: list[str], en_regex: str,
                       fr_regex: str) -> list[tuple[int, str, str]]:
    """The lesson's loop, one line at a time, over lines already in memory (the zip's): the
    numbered (line, fr, en) pairs both regexes match. The tarball's block-wise reading must
    keep exactly these."""
    rx_en, rx_fr = re.compile(en_regex), re.compile(fr_regex)
    out = []
    for i, (e, f) in enumerate(zip(en_lines, fr_lines)):
        me, mf = rx_en.search(e), rx_fr.search(f)
        if me and mf:
            out.append((i + 1, _first_group(mf), _first_group(me)))
    return out
