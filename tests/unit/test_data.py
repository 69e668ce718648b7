"""filter, tokenize, vocab and embeddings: behaviour, agreement with the plain way, bad input."""

from __future__ import annotations

import gzip
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.corpus import (
    EN,
    EN_LINES,
    FR,
    FR_LINES,
    apple_double,
    gz_lines,
    make_tarball,
    make_zip,
    shared_pairs_zip,
    tar_bytes,
)

from pipeline.data.corpus import check_corpus, filter_lines, filter_pairs
from pipeline.data.embeddings import build_matrix, read_vectors, train_vectors
from pipeline.data.tokenize import tokenize, tokenize_pairs
from pipeline.data.vocab import (
    EOS,
    UNK,
    build_ids,
    build_vocab,
    data_report,
    groups,
    side_key,
    split_mask,
    split_of,
)
from pipeline.errors import PipelineError
from pipeline.params import FastTextTrainParams, TokenizeParams, VocabParams

EN_RX, FR_RX = r"^(Wh[^?.!]+\?)", r"^([^?.!]+\?)"


# --- filter -------------------------------------------------------------------------------
def test_filter_keeps_lesson_questions(tarball: Path) -> None:
    r = filter_pairs(tarball, EN_RX, FR_RX)
    assert r.lines == len(EN_LINES)
    assert r.pairs["en"].tolist() == ["What is your name?", "Where is the station?",
                                      "Why not?", "Who are you?",
                                      "When will the meeting take place?",
                                      "Which one do you want?"]
    assert r.pairs["fr"].iloc[3] == "Qui êtes-vous ?"  # the matched group, as the lesson kept
    assert r.pairs["line"].tolist() == [1, 3, 4, 5, 6, 7]


def test_filter_on_shared_tarball_gives_8623_pairs(shared_tarball: Path) -> None:
    r = filter_pairs(shared_tarball, EN_RX, FR_RX)
    assert (r.lines, len(r.pairs)) == (167_130, 8_623)


@pytest.mark.parametrize("attribution_column", [True, False])
def test_a_tatoeba_zip_gives_what_the_tarball_gives(tmp_path: Path, tarball: Path,
                                                    attribution_column: bool) -> None:
    z = make_zip(tmp_path / "fra-eng.zip", attribution_column=attribution_column)
    assert check_corpus(z) == "fra-eng/fra.txt"
    from_zip, from_tar = filter_pairs(z, EN_RX, FR_RX), filter_pairs(tarball, EN_RX, FR_RX)
    assert from_zip.lines == from_tar.lines
    assert from_zip.pairs.equals(from_tar.pairs)
    assert from_zip.source == "fra-eng/fra.txt"
    assert from_tar.source == f"{EN} + {FR}"


def test_the_fixture_is_built_like_the_real_fra_eng_zip(tmp_path: Path) -> None:
    """What the real archive holds, member by member, so the reader is tested against it."""
    with zipfile.ZipFile(make_zip(tmp_path / "fra-eng.zip")) as z:
        infos = z.infolist()
        assert [i.filename for i in infos] == [
            "fra-eng/", "__MACOSX/._fra-eng", "fra-eng/_about.txt",
            "__MACOSX/fra-eng/.__about.txt", "fra-eng/fra.txt", "__MACOSX/fra-eng/._fra.txt"]
        assert infos[0].is_dir() and infos[0].file_size == 0
        for fork in (infos[1], infos[3], infos[5]):
            data = z.read(fork)
            assert len(data) == 212 and data[:8] == b"\x00\x05\x16\x07\x00\x02\x00\x00"
            assert data[8:24] == b"Mac OS X        " and b"\t" in data.split(b"\n")[0]
            with pytest.raises(UnicodeDecodeError):
                data.decode("utf-8")
        rows = z.read("fra-eng/fra.txt").decode().split("\n")
        assert rows[-1] == "" and all(r.count("\t") == 2 for r in rows[:-1])
        assert rows[0].split("\t")[2].startswith("CC-BY 2.0 (France) Attribution: tatoeba.org #")


def test_another_language_pair_is_refused_naming_its_member(tmp_path: Path) -> None:
    """deu-eng.zip has the same layout with deu.txt: one line that names it, no training on
    German."""
    z = make_zip(tmp_path / "deu-eng.zip", lang="deu")
    for call in (check_corpus, lambda path: filter_pairs(path, EN_RX, FR_RX)):
        with pytest.raises(PipelineError) as e:
            call(z)
        assert str(e.value) == (f"{z}: holds deu-eng/deu.txt, the Anki layout's "
                                "English<TAB>deu pairs, not fra.txt (English<TAB>French)")


def _zip_of(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _rows(ending: str = "\n") -> str:
    return "".join(f"{e}\t{f}{ending}" for e, f in zip(EN_LINES, FR_LINES))


@pytest.mark.parametrize("members", [
    {"fra.txt": _rows().encode()},                              # at the root, no folder entry
    {"a/": b"", "a/b/": b"", "a/b/fra.txt": _rows().encode()},  # deep in folders
    {"fra.txt": b"\xef\xbb\xbf" + _rows().encode()},            # a BOM
    {"fra.txt": _rows("\r\n").encode()},                        # CRLF line ends
    {"fra.txt": (_rows() + "\n").encode()},                     # an empty last line
    {"fra.txt": _rows().rstrip("\n").encode()},                 # no newline at the end
    {"._fra.txt": b"\x00\x05\x16\x07\t", "pairs.txt": _rows().encode()},  # another name
    {"README.txt": b"no tab\n", "x/fra.txt": _rows().encode(), "fra.csv": b"a\tb\n"},
])
def test_zips_as_real_archives_hold_them_read_the_same_pairs(tmp_path: Path, tarball: Path,
                                                             members: dict) -> None:
    expected = filter_pairs(tarball, EN_RX, FR_RX).pairs
    r = filter_pairs(_zip_of(tmp_path / "z.zip", members), EN_RX, FR_RX)
    assert r.pairs.equals(expected) and r.lines == len(EN_LINES)
    assert r.source.endswith(("fra.txt", "pairs.txt"))


def test_zip_lines_are_cut_at_newlines_only(tmp_path: Path) -> None:
    """U+2028 and U+0085 inside a sentence are text, not line ends (str.splitlines cuts there)."""
    rows = "What is\u2028this?\tQu'est-ce\u0085 ?\nWhy?\tPourquoi ?\n\nWho?\tQui ?\n"
    r = filter_pairs(_zip_of(tmp_path / "z.zip", {"fra.txt": rows.encode()}), EN_RX, FR_RX)
    assert r.pairs["en"].tolist() == ["What is\u2028this?", "Why?", "Who?"]
    assert r.pairs["line"].tolist() == [1, 2, 4]  # numbered as in the member, blank line too
    assert r.lines == 3


def test_a_damaged_or_foreign_zip_is_one_line(tmp_path: Path) -> None:
    good = make_zip(tmp_path / "good.zip").read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(good[: len(good) // 2])
    foreign = _zip_of(tmp_path / "foreign.zip", {"photo.jpg": b"\xff\xd8 not pairs",
                                                 "notes.txt": b"no tabs here\n"})
    forks = _zip_of(tmp_path / "forks.zip", {"__MACOSX/._fra.txt": apple_double(),
                                             "._pairs.txt": apple_double()})
    broken = _zip_of(tmp_path / "broken.zip", {"fra.txt": b"What?\tQuoi ?\nWhy? Pourquoi ?\n"})
    latin1 = _zip_of(tmp_path / "latin1.zip", {"fra.txt": "Où ?\tWhere?\n".encode("latin-1")})
    bad_line = _zip_of(tmp_path / "bad_line.zip",
                       {"fra.txt": b"What?\tQuoi ?\nWhy?\tPourquoi \xe9 ?\n"})
    twice = _zip_of(tmp_path / "twice.zip", {"a/fra.txt": _rows().encode(),
                                             "b/fra.txt": _rows().encode()})
    for path, words in ((cut, "truncated or corrupt zip"),
                        (foreign, "no .txt member of English<TAB>French"),
                        (forks, "no .txt member of English<TAB>French"),
                        (broken, "fra.txt line 2 is not English<TAB>French"),
                        (latin1, "fra.txt is not UTF-8 text of English<TAB>French lines"),
                        (bad_line, "fra.txt line 2 is not valid UTF-8"),
                        (twice, "zip has 2 fra.txt members (a/fra.txt, b/fra.txt); keep one")):
        with pytest.raises(PipelineError) as e:
            filter_pairs(path, EN_RX, FR_RX)
        assert str(e.value).startswith(f"{path}: ") and words in str(e.value)
        assert "\n" not in str(e.value)


def _crlf_gz(lines: list[str], bom: bool = False) -> bytes:
    return gzip.compress(("\ufeff" if bom else "").encode() + "".join(
        line + "\r\n" for line in lines).encode("utf-8"))


@pytest.mark.parametrize("members", [
    {"./": b"", f"./{EN}": gz_lines(EN_LINES), f"./{FR}": gz_lines(FR_LINES)},  # tar -C . .
    {"training/": b"", f"training/{EN}": gz_lines(EN_LINES),
     f"training/{FR}": gz_lines(FR_LINES)},                                    # in a folder
    {f"._{EN}": b"\x00\x05\x16\x07 fork", f"._{FR}": b"\x00\x05\x16\x07 fork",
     EN: gz_lines(EN_LINES), FR: gz_lines(FR_LINES)},                          # a Mac's tar
    {EN: _crlf_gz(EN_LINES, bom=True), FR: _crlf_gz(FR_LINES, bom=True)},      # BOM and CRLF
    {EN: gz_lines(EN_LINES + [""]), FR: gz_lines(FR_LINES + [""])},            # empty last line
])
def test_tarballs_as_real_archives_hold_them_read_the_same_pairs(tmp_path: Path, tarball: Path,
                                                                 members: dict) -> None:
    expected = filter_pairs(tarball, EN_RX, FR_RX).pairs
    path = tmp_path / "t.tar"
    path.write_bytes(tar_bytes(members))
    r = filter_pairs(path, EN_RX, FR_RX)
    assert r.pairs.equals(expected)
    assert check_corpus(path) == r.source and r.source.count(".gz") == 2


def test_a_tarball_with_a_member_twice_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "t.tar"
    path.write_bytes(tar_bytes({EN: gz_lines(EN_LINES), FR: gz_lines(FR_LINES),
                                          f"copy/{FR}": gz_lines(FR_LINES)}))
    with pytest.raises(PipelineError, match=rf"t\.tar: tarball has the same member twice "
                       rf"\({FR}, copy/{FR}\)$"):
        check_corpus(path)


def test_the_shared_pairs_as_a_zip_give_8623_pairs(tmp_path: Path,
                                                   shared_tarball: Path) -> None:
    r = filter_pairs(shared_pairs_zip(tmp_path / "fra-eng.zip"), EN_RX, FR_RX)
    assert (r.lines, len(r.pairs)) == (167_130, 8_623)
    assert r.pairs.equals(filter_pairs(shared_tarball, EN_RX, FR_RX).pairs)


@pytest.mark.parametrize("en_rx", [EN_RX, r"(\w+)\?", r"^W[^?]*", r"h.$", r"o\s+\w"])
def test_block_filter_agrees_with_line_by_line(tmp_path: Path, en_rx: str,
                                               monkeypatch) -> None:
    # Small blocks and patterns that can run across newlines exercise the block matcher's
    # fallback; the result must equal re.search on each line alone.
    monkeypatch.setattr("pipeline.data.corpus.BLOCK_BYTES", 64)
    rnd = random.Random(1)
    words = ["What", "Who?", "is", "it?", "?", ".", "!", "Why", "no", "h", "\u00e9t\u00e9", ""]
    en = [" ".join(rnd.choice(words) for _ in range(rnd.randint(0, 6))) for _ in range(500)]
    fr = [" ".join(rnd.choice(words) for _ in range(rnd.randint(0, 6))) for _ in range(500)]
    r = filter_pairs(make_tarball(tmp_path / "r.tar", en, fr), en_rx, r"\w(.)")
    expected = filter_lines(en, fr, en_rx, r"\w(.)")
    assert list(zip(r.pairs["line"], r.pairs["fr"], r.pairs["en"])) == expected
    assert len(expected) > 0


def test_filter_reads_concatenated_gzip_streams(tmp_path: Path) -> None:
    en = gz_lines(EN_LINES[:4]) + gz_lines(EN_LINES[4:])
    fr = gz_lines(FR_LINES[:2]) + gz_lines(FR_LINES[2:])
    r = filter_pairs(make_tarball(tmp_path / "c.tar", members={EN: en, FR: fr}), EN_RX, FR_RX)
    assert len(r.pairs) == 6


def _bad(tmp_path: Path, **kw) -> Path:
    return make_tarball(tmp_path / "bad.tar", **kw)


def test_filter_missing_member(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"bad\.tar: tarball lacks member\(s\) .*fr\.gz"):
        filter_pairs(_bad(tmp_path, members={EN: gz_lines(EN_LINES)}), EN_RX, FR_RX)


def test_filter_different_line_counts(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"different line counts \(.*en\.gz: 8, .*fr\.gz: 7\)"):
        filter_pairs(_bad(tmp_path, fr=FR_LINES[:-1]), EN_RX, FR_RX)
    with pytest.raises(PipelineError, match=r"en\.gz: 7, .*fr\.gz: 8\)"):
        filter_pairs(_bad(tmp_path, en=EN_LINES[:-1]), EN_RX, FR_RX)


def test_filter_invalid_utf8_names_member_and_line(tmp_path: Path) -> None:
    fr = "".join(line + "\n" for line in FR_LINES).encode()
    fr = fr.replace(b"Bonjour", b"Bon\xffjour")
    path = _bad(tmp_path, members={EN: gz_lines(EN_LINES), FR: gzip.compress(fr)})
    with pytest.raises(PipelineError, match=r"fr\.gz line 2: invalid UTF-8"):
        filter_pairs(path, EN_RX, FR_RX)


def test_filter_keeps_zero_pairs(tarball: Path) -> None:
    with pytest.raises(PipelineError, match=r"small\.tar: the filter kept no pairs of 8 lines"):
        filter_pairs(tarball, r"^Zzz", FR_RX)


def test_filter_invalid_regex(tarball: Path) -> None:
    with pytest.raises(PipelineError, match="invalid regex"):
        filter_pairs(tarball, r"^(Wh", FR_RX)


def test_filter_truncated_tarball(shared_tarball: Path, tmp_path: Path) -> None:
    data = shared_tarball.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: len(data) * 3 // 4])  # ends inside the French member
    with pytest.raises(PipelineError, match=r"cut\.tar: .*truncated"):
        filter_pairs(cut, EN_RX, FR_RX)


def test_filter_corrupt_gzip(tmp_path: Path) -> None:
    en = bytearray(gz_lines(EN_LINES * 50))
    en[len(en) // 2] ^= 0xFF
    path = _bad(tmp_path, members={EN: bytes(en), FR: gz_lines(FR_LINES * 50)})
    with pytest.raises(PipelineError, match=r"en\.gz is corrupt|en\.gz.*truncated"):
        filter_pairs(path, EN_RX, FR_RX)


def test_filter_not_a_tar(tmp_path: Path) -> None:
    path = tmp_path / "x.tar"
    path.write_bytes(b"this is not a tarball" * 100)
    with pytest.raises(PipelineError, match=r"x\.tar: truncated or corrupt tar archive"):
        filter_pairs(path, EN_RX, FR_RX)


# --- tokenize -----------------------------------------------------------------------------
def test_tokenize_normalizes_no_break_spaces_and_case() -> None:
    assert tokenize("Quel est ton nom\u202f?", "fr") == ["quel", "est", "ton", "nom", "?"]
    assert tokenize("Quel est ton nom\u00a0?", "fr") == tokenize("Quel est ton nom ?", "fr")
    assert tokenize("Who is NASA?", "en") == ["who", "is", "t_up", "nasa", "?"]
    assert tokenize("Who is NASA?", "en", lowercase=False, mark_caps=False) == \
        ["Who", "is", "NASA", "?"]
    assert tokenize("Qu'est-ce que c'est ?", "fr")[0] == "qu'"


def test_parallel_tokenization_equals_serial() -> None:
    pairs = pd.DataFrame({"fr": FR_LINES * 30, "en": EN_LINES * 30,
                          "line": np.arange(240) + 1})
    p = TokenizeParams()
    one = tokenize_pairs(pairs, p, workers=1, progress=False)
    two = tokenize_pairs(pairs, p, workers=3, progress=False)
    assert one["line"].tolist() == two["line"].tolist() == pairs["line"].tolist()
    assert [list(x) for x in one["en_tokens"]] == [list(x) for x in two["en_tokens"]]
    assert [list(x) for x in one["fr_tokens"]] == [list(x) for x in two["fr_tokens"]]


# --- vocab --------------------------------------------------------------------------------
def test_vocab_specials_order_and_unknowns() -> None:
    itos = build_vocab([["a", "b", "a"], ["c", "a", "b"]], max_size=2)
    assert itos == ["_bos_", "_pad_", "_eos_", "_unk", "a", "b"]
    tokens = pd.DataFrame({"fr_tokens": [["a", "b", "a"], ["c", "a", "b"]] * 5,
                           "en_tokens": [["x"], ["y", "x"]] * 5, "line": range(10)})
    vocabs, ids, stats = build_ids(tokens, VocabParams(max_size=2, max_len_percentile=100,
                                                       split="lesson"))
    assert list(ids["fr_ids"][1]) == [UNK, 4, 5, EOS]
    assert list(ids["en_ids"][0]) == [4, EOS]
    assert stats["fr_unk_tokens"] == 5


def test_vocab_truncates_at_percentile() -> None:
    tokens = pd.DataFrame({"fr_tokens": [["a"] * n for n in range(1, 101)],
                           "en_tokens": [["b"]] * 100, "line": range(100)})
    _, ids, stats = build_ids(tokens, VocabParams(max_len_percentile=50, split="lesson"))
    assert stats["fr_max_len"] == int(np.percentile(np.arange(2, 102), 50))
    assert max(len(s) for s in ids["fr_ids"]) == stats["fr_max_len"]


def test_split_is_the_lessons() -> None:
    np.random.seed(42)
    expected = np.random.rand(1000) > 0.1
    assert (split_mask(1000, 0.1, 42) == expected).all()
    tokens = pd.DataFrame({"fr_tokens": [["f", str(i)] for i in range(1000)],
                           "en_tokens": [["e", str(i % 7)] for i in range(1000)],
                           "line": range(1000)})
    lesson = split_of(tokens, VocabParams(split="lesson"))
    assert (lesson == np.where(expected, "train", "valid")).all()  # no test set


def _repeated_sides(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Our own corpus that repeats sides as Tatoeba does: an English sentence with several
    French translations, a French one with several English, chains of both (pair k shares its
    English or its French with pair k-1 of its cluster), and exact duplicates."""
    rnd = random.Random(seed)
    en, fr = [], []
    while len(en) < n:
        c = len(en)
        e, f = f"e{c}", f"f{c}"
        for k in range(rnd.randint(1, 5)):
            if k:
                roll = rnd.random()
                if roll < 0.45:
                    f = f"f{c}.{k}"  # the same English, another French
                elif roll < 0.9:
                    e = f"e{c}.{k}"  # the same French, another English
            en.append(["what", "is", e, "?"])
            fr.append(["qu'", "est", f, "?"])
    return pd.DataFrame({"fr_tokens": fr[:n], "en_tokens": en[:n], "line": range(1, n + 1)})


def test_the_grouped_split_shares_no_sentence_between_sets() -> None:
    tokens = _repeated_sides()
    split = split_of(tokens, VocabParams())
    report = data_report(tokens, split)
    for name in ("valid", "test"):
        assert report[f"{name}_overlap"] == {"en_in_train": 0.0, "fr_in_train": 0.0,
                                             "either_in_train": 0.0, "pair_in_train": 0.0}
    en = [side_key(t) for t in tokens["en_tokens"]]
    fr = [side_key(t) for t in tokens["fr_tokens"]]
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        for side in (en, fr):
            assert not {k for k, s in zip(side, split) if s == a} & \
                {k for k, s in zip(side, split) if s == b}
    # the lesson's random split of the same pairs leaks: that is what the report is for
    lesson = data_report(tokens, split_of(tokens, VocabParams(split="lesson")))
    assert lesson["valid_overlap"]["en_in_train"] > 0.5 and lesson["test_overlap"] is None
    assert report["pairs"]["train"] + report["pairs"]["valid"] + report["pairs"]["test"] == 3000
    assert report["duplicate_pairs"] == 3000 - report["distinct"]["pairs"] > 0
    assert 1 < report["largest_group"] <= 5 and report["groups"] < 3000


def test_the_grouped_split_is_seeded_and_stable_when_the_corpus_grows() -> None:
    tokens = _repeated_sides()
    split = split_of(tokens, VocabParams())
    assert (split == split_of(tokens, VocabParams())).all()  # deterministic
    assert (split != split_of(tokens, VocabParams(seed=7))).any()
    sizes = {name: (split == name).mean() for name in ("valid", "test")}
    assert 0.03 < sizes["valid"] < 0.2 and 0.03 < sizes["test"] < 0.2  # groups, not pairs
    # new pairs with sentences of their own: no old pair changes its set
    more = pd.DataFrame({"fr_tokens": [["nouveau", str(i)] for i in range(500)],
                         "en_tokens": [["new", str(i)] for i in range(500)],
                         "line": range(5000, 5500)})
    grown = split_of(pd.concat([tokens, more], ignore_index=True), VocabParams())
    assert (grown[:3000] == split).all()


def test_groups_are_the_connected_components_of_shared_sides() -> None:
    # 0-1 share English, 1-2 share French, 3 alone, 4-5 share both
    en = ["a", "a", "b", "c", "d", "d"]
    fr = ["x", "y", "y", "z", "w", "w"]
    g = groups(en, fr)
    assert g[0] == g[1] == g[2] and len({g[0], g[3], g[4]}) == 3 and g[4] == g[5]


def test_under_grouped_only_training_pairs_make_the_vocabulary() -> None:
    tokens = _repeated_sides()
    vocabs, ids, stats = build_ids(tokens, VocabParams())
    train = ids["split"] == "train"
    seen = {t for s in tokens.loc[train, "en_tokens"] for t in s}
    unseen = {t for s in tokens.loc[~train, "en_tokens"] for t in s} - seen
    assert unseen and not unseen & set(vocabs["en"])  # a word of valid or test alone: unknown
    assert stats["en_unk_tokens"] >= len(unseen)
    assert stats["test_pairs"] == int((ids["split"] == "test").sum()) > 0
    lesson_vocabs, _, _ = build_ids(tokens, VocabParams(split="lesson"))
    assert unseen <= set(lesson_vocabs["en"])  # the lesson's way learns from every pair


# --- embeddings ---------------------------------------------------------------------------
def _write_vec(path: Path, rows: dict[str, list[float]], header: bool = True) -> Path:
    dim = len(next(iter(rows.values())))
    text = (f"{len(rows)} {dim}\n" if header else "") + "".join(
        w + " " + " ".join(str(x) for x in v) + " \n" for w, v in rows.items())
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["v.vec", "v.vec.gz"])
def test_read_vec_keeps_only_vocabulary_words(tmp_path: Path, name: str) -> None:
    path = _write_vec(tmp_path / name, {"chat": [1, 2, 3], "chien": [4, 5, 6],
                                         "été": [7, 8, 9]})
    got = read_vectors(path, {"chat", "été", "absent"}, dim=3)
    assert set(got) == {"chat", "été"}
    assert got["été"].tolist() == [7, 8, 9]
    matrix, cov = build_matrix(["_bos_", "_pad_", "_eos_", "_unk", "chat", "absent", "été"],
                               got, 3)
    assert matrix.dtype == np.float32 and matrix.shape == (7, 3)
    assert (matrix[5] == 0).all() and matrix[4].tolist() == [1, 2, 3]
    assert cov == {"words": 3, "with_vector": 2, "missing": 1, "missing_examples": ["absent"]}


def test_vectors_of_wrong_dimension(tmp_path: Path) -> None:
    path = _write_vec(tmp_path / "v.vec", {"chat": [1, 2, 3]})
    with pytest.raises(PipelineError, match=r"v\.vec: vectors have dimension 3, .*dim is 300"):
        read_vectors(path, {"chat"}, dim=300)
    path = _write_vec(tmp_path / "n.vec", {"chat": [1, 2, 3]}, header=False)
    with pytest.raises(PipelineError, match=r"n\.vec: line 1 has 3 values, expected .*=4"):
        read_vectors(path, {"chat"}, dim=4)


def _made_up_corpus(n: int = 2000, words: int = 300, seed: int = 0) -> list[list[str]]:
    # Zipf-distributed made-up words: a handful of words repeated hundreds of times is not a
    # corpus, and fastText's skip-gram was seen to diverge (NaN) on such input on a CI machine.
    rng = np.random.default_rng(seed)
    vocab = [f"mot{i}" for i in range(words)] + ["qui", "gare", "?"]
    p = 1 / np.arange(1, len(vocab) + 1)
    p /= p.sum()
    return [list(rng.choice(vocab, size=int(rng.integers(4, 12)), p=p)) for _ in range(n)]


def test_trained_vectors_and_bin_format(tmp_path: Path) -> None:
    sentences = _made_up_corpus()
    p = FastTextTrainParams(epochs=2, bucket=1000)
    # dim 100, not a tiny one: fastText 0.9 at dim 8 returned garbage or NaN in some runs
    vecs = train_vectors(sentences, 100, p)
    assert set(vecs) >= {"qui", "gare", "?"} and vecs["qui"].shape == (100,)
    # the .bin reader: a model saved by fastText itself
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(" ".join(s) for s in sentences))
    # in a fresh process with zeroed memory, as train_vectors does (see its docstring)
    subprocess.run([sys.executable, "-c", "import fasttext, sys; fasttext.train_unsupervised("
                    "sys.argv[1], dim=100, epoch=1, minCount=1, bucket=1000, thread=1, verbose=0"
                    ").save_model(sys.argv[2])", str(corpus), str(tmp_path / "m.bin")],
                   env={**os.environ, "MALLOC_PERTURB_": "255"}, check=True)
    got = read_vectors(tmp_path / "m.bin", {"gare", "inconnu"}, dim=100)
    assert set(got) == {"gare"}
    with pytest.raises(PipelineError, match=r"m\.bin: vectors have dimension 100"):
        read_vectors(tmp_path / "m.bin", {"gare"}, dim=300)


def test_failed_fasttext_training_is_a_clear_error() -> None:
    with pytest.raises(PipelineError, match=r"embeddings\.train: fastText training failed "
                                            r"\(.*[Ee]mpty vocabulary"):
        train_vectors([], 100, FastTextTrainParams(epochs=1))


def test_diverged_fasttext_vectors_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real_load = np.load

    def diverged(path, *args, **kwargs):  # what fastText 0.9 returned in some runs
        v = real_load(path, *args, **kwargs)
        v[1, 0] = 3e10
        return v

    monkeypatch.setattr(np, "load", diverged)
    with pytest.raises(PipelineError, match=r"embeddings\.train: fastText returned vectors with "
                                            r"values up to 3e\+10"):
        train_vectors(_made_up_corpus(100), 100, FastTextTrainParams(epochs=1))


def test_trained_vectors_learn_from_the_training_pairs_alone(tmp_path: Path) -> None:
    from pipeline.data.embeddings import training_tokens

    tokens = pd.DataFrame({"fr_tokens": [["a"], ["b"], ["c"]], "en_tokens": [["x"], ["y"], ["z"]],
                           "line": [10, 20, 30]})
    tokens.to_parquet(tmp_path / "tokens.parquet")
    pd.DataFrame({"fr_ids": [[4]] * 3, "en_ids": [[4]] * 3, "split": ["train", "valid", "test"],
                  "line": [10, 20, 30]}).to_parquet(tmp_path / "ids.parquet")
    paths = tmp_path / "tokens.parquet", tmp_path / "ids.parquet"
    assert training_tokens(*paths, "grouped")["line"].tolist() == [10]
    assert training_tokens(*paths, "lesson")["line"].tolist() == [10, 20, 30]
