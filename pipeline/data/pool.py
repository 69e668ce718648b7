"""The pool: the corpus pairs the question filter rejects, kept as training-only data.

The lesson trains on its wh-questions alone and throws the rest of the corpus away (95% of the
Tatoeba tarball, 99.8% of Giga-fren). The pool keeps up to `pool.size` of those pairs, a seeded
sample (each pair's place is a hash of the seed and its line number, so the sample does not
depend on the corpus order, and a smaller size takes the first pairs of a larger one), for
training only: valid and test stay questions.

The leak guard drops every pool pair whose English or French equals or contains a validation
or test sentence of the same language, compared as `guard_key` makes them (lowercased, NFKC,
every run of non-word characters one space, whole words only): a question inside a longer
pool sentence ("Why are you here? I wonder.") is as much a leak as the question alone. The
containment search is pyahocorasick's automaton over all the needles at once.
"""

from __future__ import annotations

import heapq
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import ahocorasick
import pandas as pd
from tqdm import tqdm

from pipeline.data.vocab import seeded_unit
from pipeline.params import PoolParams

_NON_WORD = re.compile(r"[\W_]+")
_WORD = re.compile(r"\w+")


def guard_key(text: str) -> str:
    """A sentence as the guard compares it, padded with a space each side so that a
    containment is of whole words: " why are you here "."""
    key = _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()
    return f" {key} " if key else ""


class Guard:
    """The sentences no training pair may equal or contain, one automaton per language."""

    def __init__(self, sentences: dict[str, Iterable[str]]) -> None:
        self.automata: dict[str, ahocorasick.Automaton] = {}
        for lang, texts in sentences.items():
            automaton = ahocorasick.Automaton()
            for key in {guard_key(t) for t in texts} - {""}:
                automaton.add_word(key, key)
            if len(automaton):
                automaton.make_automaton()
                self.automata[lang] = automaton

    def hit(self, lang: str, text: str) -> str | None:
        """"equal" or "contains" when `text` holds a guarded sentence of `lang`, else None."""
        automaton = self.automata.get(lang)
        key = guard_key(text)
        if automaton is None or not key:
            return None
        for _, found in automaton.iter(key):
            return "equal" if found == key else "contains"
        return None


@dataclass
class PoolResult:
    pairs: pd.DataFrame  # fr, en, line: the sample, in its seeded order
    counts: dict = field(default_factory=dict)


def sample_pool(pairs: Iterator[tuple[int, str, str]], questions: set[int], guard: Guard,
                p: PoolParams, total: int | None = None) -> PoolResult:
    """Up to p.size of the corpus `pairs` ((line, en, fr), as corpus.line_pairs gives them)
    whose line is not one of the filter's `questions`: both sides non-empty and at most
    p.max_words words, and past the guard; the p.size with the smallest seeded hash.

    The guard looks only at the pairs whose place could still enter the sample (the sample
    is the same as if it looked at all): on Giga-fren that is about 1M of 14M eligible pairs,
    and its normalization was most of the stage's time. So its counts are of the pairs it
    checked (`guard_checked`: every eligible pair while the sample is not full, which on the
    Tatoeba tarball is all of them)."""
    counts = {"rejected_by_filter": 0, "empty_or_long": 0, "eligible": 0, "guard_checked": 0,
              "guard_equal": 0, "guard_contains": 0}
    heap: list[tuple[float, int, str, str]] = []  # (-place, line, en, fr): the largest on top
    for line, en, fr in tqdm(pairs, total=total, desc="pool", mininterval=1.0, disable=None):
        if line in questions:
            continue
        counts["rejected_by_filter"] += 1
        en, fr = en.strip(), fr.strip()
        # split at most max_words times: more pieces than that means too many words
        if (not en or not fr or len(en.split(None, p.max_words)) > p.max_words
                or len(fr.split(None, p.max_words)) > p.max_words):
            counts["empty_or_long"] += 1
            continue
        counts["eligible"] += 1
        if p.size == 0:
            continue
        place = seeded_unit(p.seed, str(line))
        if len(heap) == p.size and place >= -heap[0][0]:
            continue  # the sample only ever takes smaller places: this pair cannot enter it
        counts["guard_checked"] += 1
        hit = guard.hit("en", en) or guard.hit("fr", fr)
        if hit:
            counts[f"guard_{hit}"] += 1
        elif len(heap) < p.size:
            heapq.heappush(heap, (-place, line, en, fr))
        else:
            heapq.heapreplace(heap, (-place, line, en, fr))
    chosen = sorted(heap, reverse=True)  # the smallest place first
    counts["kept"] = len(chosen)
    table = pd.DataFrame({"fr": [c[3] for c in chosen], "en": [c[2] for c in chosen],
                          "line": pd.array([c[1] for c in chosen], dtype="int64")})
    return PoolResult(table, counts)


def overlap(pool: pd.DataFrame, guard: Guard) -> int:
    """Pool pairs that equal or contain a guarded sentence: 0 unless the guard was bypassed
    (the data report's check, made again on what was written)."""
    return sum(bool(guard.hit("en", e) or guard.hit("fr", f))
               for e, f in zip(pool["en"], pool["fr"]))


def unseen_report(questions: pd.DataFrame, pool: pd.DataFrame) -> dict:
    """For valid and test (`questions` has fr and split), the share of sentences with a French
    word that the training questions never show, and that neither they nor `pool` show."""
    known = set().union(*map(words, questions.loc[questions["split"] == "train", "fr"]))
    with_pool = known.union(*map(words, pool["fr"]))
    return {name: {"questions": unseen_share(rows["fr"], known),
                   "questions_and_pool": unseen_share(rows["fr"], with_pool)}
            for name, rows in questions[questions["split"].isin(["valid", "test"])].groupby(
                "split")}


def words(text: str) -> set[str]:
    """A sentence's words as the unseen-word count takes them: \\w+, lowercased."""
    return set(_WORD.findall(text.lower()))


def unseen_share(sentences: Iterable[str], known: set[str]) -> float:
    """The share of `sentences` with a word not in `known`."""
    flags = [bool(words(s) - known) for s in sentences]
    return round(sum(flags) / len(flags), 4) if flags else 0.0
