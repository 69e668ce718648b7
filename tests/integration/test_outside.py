"""The outside set (outside/questions.tsv): questions a user would write, none of whose French
or English occurs in the corpus; the filter keeps each pair; every wh-word the filter keeps
is there, and names and numbers to carry through; its loader's errors; a set of raw text
in either unit."""

from __future__ import annotations

import gzip
import re
import tarfile
import unicodedata
from pathlib import Path

import pytest

from pipeline.data.outside import OUTSIDE, read_outside
from pipeline.errors import PipelineError
from pipeline.evaluation.metrics import copy_rate, copy_words
from pipeline.params import FilterParams, load_params, section

WH_WORDS = ("What", "Where", "When", "Which", "Who", "Whom", "Whose", "Why")


def norm(s: str) -> str:
    """Compared as a reader would: Unicode forms, apostrophes, spaces and case set aside."""
    s = unicodedata.normalize("NFKC", s).replace("\u2019", "'")
    return re.sub(r"\s+", " ", s).strip().lower()


def test_the_set_is_big_varied_and_kept_by_the_filter() -> None:
    pairs = read_outside()
    assert len(pairs) >= 300
    assert not pairs["fr"].duplicated().any() and not pairs["en"].duplicated().any()
    f = section(load_params(OUTSIDE.parents[1] / "params.yaml"), "filter", FilterParams)
    for fr, en in zip(pairs["fr"], pairs["en"]):
        assert re.search(f.fr_regex, fr) and re.search(f.en_regex, en), (fr, en)
    first = pairs["en"].str.extract(r"^(\w+)")[0].value_counts()
    assert set(first.index) == set(WH_WORDS), first.to_dict()
    assert pairs["en"].str.contains(r"\d").sum() >= 20  # numbers, dates, years
    with_names = sum(bool(copy_words(fr, en)) for fr, en in zip(pairs["fr"], pairs["en"]))
    assert with_names >= 100
    lengths = pairs["fr"].str.split().map(len)
    assert lengths.min() <= 3 and lengths.max() >= 15


def test_no_sentence_of_it_is_in_the_corpus(shared_tarball: Path) -> None:
    """Neither side equals, or is part of, a line of the shared corpus."""
    pairs = read_outside()
    with tarfile.open(shared_tarball) as tar:
        for member in tar.getmembers():
            lang = member.name.split(".")[-2]  # giga-fren.release2.fixed.LANG.gz
            with gzip.open(tar.extractfile(member), "rt", encoding="utf-8") as f:
                lines = [norm(line) for line in f]
            whole, text = set(lines), "\n".join(lines)
            for s in pairs[lang]:
                assert norm(s) not in whole and norm(s) not in text, (lang, s)


def test_the_loader_says_what_is_wrong(tmp_path: Path) -> None:
    f = tmp_path / "q.tsv"
    with pytest.raises(PipelineError, match=r"q.tsv: no such file \(the outside set\)"):
        read_outside(f)
    for content, message in ((b"fr,en\nO\xc3\xb9 ?,Where?\n", r"line 1 must be the header"),
                             (b"fr\ten\nQui ?\tWho?\nQui ?\n",
                              r"line 3: expected a French and an English"),
                             (b"fr\ten\n\xe9\tx\n", r"not UTF-8"),
                             (b"fr\ten\n", r"no pairs")):
        f.write_bytes(content)
        with pytest.raises(PipelineError, match=rf"q.tsv: {message}"):
            read_outside(f)
    f.write_text("fr\ten\nOù vit Zoé ?\tWhere does Zoé live?\n", encoding="utf-8")
    assert read_outside(f).to_dict("records") == [{"fr": "Où vit Zoé ?",
                                                   "en": "Where does Zoé live?"}]


def test_the_copy_rate_counts_names_and_numbers_that_must_come_through() -> None:
    assert copy_words("Où se situe la Kabylie ?", "Where is Kabylie?") == {"Kabylie"}
    assert copy_words("Où étais-tu le 14 juillet 2019 ?",
                      "Where were you on July 14, 2019?") == {"14", "2019"}
    # translated names and the capital of the first word are not copies
    assert copy_words("Quand partez-vous pour Londres ?", "When are you leaving for London?") \
        == set()
    rate, n = copy_rate(["Où se situe la Kabylie ?", "Qui a vu Clermont-Ferrand en 2019 ?",
                         "Que veux-tu ?"],
                        ["Where is Kabylie?", "Who saw Clermont-Ferrand in 2019?", "What?"],
                        ["Where's the exit?", "Who saw Clermont-Ferrand in 2019?", "What?"])
    assert (rate, n) == (50.0, 2)


def test_a_set_of_raw_text_in_words() -> None:
    """text_set: what evaluate scores for the outside set, as translate would read it (the
    pieces' case: tests/unit/test_units.py)."""
    from pipeline.data.batches import text_set
    from pipeline.data.units import Words
    from pipeline.data.vocab import EOS, SPECIALS, UNK
    from pipeline.params import TokenizeParams

    fr, en = ["Où vit Zoé ?"], ["Where does Zoé live?"]
    words = Words(TokenizeParams(), SPECIALS + ["où", "vit", "?"])
    got = text_set(fr, en, words, SPECIALS + ["où", "vit", "?"], SPECIALS + ["where", "?"])
    assert got.sources == [["où", "vit", "zoé", "?"]]
    assert list(got.split.src[0]) == [4, 5, UNK, 6, EOS]
    assert got.token_refs == ["where does zoé live ?"] and got.text_refs == en
    assert got.text_sources == fr
