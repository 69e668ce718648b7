"""Vocabularies, token ids and the split into training, validation and test pairs.

The lesson split its pairs at random, but the corpus holds the same English sentence with
several French translations (and the same French with several English ones): with a random
split most validation references are training targets (metrics/data.json shows how many), so
validation measures recall, not translation. The default split keeps every sentence on one
side; the lesson's stays one setting away (vocab.split: lesson).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError
from pipeline.params import VocabParams

BOS, PAD, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["_bos_", "_pad_", "_eos_", "_unk"]  # the lesson's names and ids


def build_vocab(sentences: Iterable[Sequence[str]], max_size: int) -> list[str]:
    """itos: the 4 specials, then the `max_size` most frequent tokens.

    Ties keep first-seen order, as the lesson's Counter.most_common did.
    """
    freq = Counter(t for s in sentences for t in s)
    words = [w for w, _ in freq.most_common(max_size) if w not in SPECIALS]
    return SPECIALS + words


def ids_to_tokens(ids: Sequence[int], itos: list[str]) -> list[str]:
    """Tokens of ids, with padding and the other specials left out (but _unk kept)."""
    return [itos[i] for i in ids if i != PAD and (itos[i] not in SPECIALS or i == UNK)]


def numericalize(sentence: Sequence[str], stoi: dict[str, int]) -> list[int]:
    """Token ids with `_eos_` appended; unknown tokens map to `_unk` (3)."""
    return [stoi.get(t, UNK) for t in sentence] + [EOS]


def split_mask(n: int, valid_fraction: float, seed: int) -> np.ndarray:
    """True for training pairs: the lesson's `np.random.seed(42); rand(n) > 0.1`."""
    return np.random.RandomState(seed).rand(n) > valid_fraction


def side_key(tokens: Sequence[str]) -> str:
    """A sentence as the split compares it: its tokens, lowercased, space-joined."""
    return " ".join(tokens).lower()


def groups(en_keys: Sequence[str], fr_keys: Sequence[str]) -> np.ndarray:
    """For each pair, its group: the connected component of pairs linked by an English or a
    French sentence they share (union-find over the two sides). Numbered by first pair."""
    parent = list(range(len(en_keys)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for keys in (en_keys, fr_keys):
        first: dict[str, int] = {}
        for i, k in enumerate(keys):
            j = first.setdefault(k, i)
            if j != i:
                a, b = root(i), root(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return np.array([root(i) for i in range(len(en_keys))], dtype=np.int64)


def seeded_unit(seed: int, key: str) -> float:
    """A number in [0, 1) that depends only on the seed and the key (SHA-256)."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def grouped_split(en_keys: Sequence[str], fr_keys: Sequence[str], valid_fraction: float,
                  test_fraction: float, seed: int) -> np.ndarray:
    """"train", "valid" or "test" for each pair, with no sentence on two sides of the split:
    pairs that share their English or their French are one group, and a group goes whole to
    one set, by a seeded hash of its smallest English sentence. So the split is the same on
    every run, and a pair's set does not move when other, unrelated pairs join the corpus."""
    group = groups(en_keys, fr_keys)
    name: dict[int, str] = {}
    for i, g in enumerate(group):  # a group's key: its smallest English sentence
        if g not in name or en_keys[i] < name[g]:
            name[g] = en_keys[i]
    where = {g: seeded_unit(seed, k) for g, k in name.items()}
    u = np.array([where[g] for g in group])
    return np.where(u < test_fraction, "test",
                    np.where(u < test_fraction + valid_fraction, "valid", "train"))


def split_of(tokens: pd.DataFrame, p: VocabParams) -> np.ndarray:
    """The set of every pair: vocab.split grouped (the default) or lesson (the lesson's random
    draw, no test set)."""
    if p.split == "lesson":
        return np.where(split_mask(len(tokens), p.valid_fraction, p.seed), "train", "valid")
    return grouped_split([side_key(t) for t in tokens["en_tokens"]],
                         [side_key(t) for t in tokens["fr_tokens"]],
                         p.valid_fraction, p.test_fraction, p.seed)


def data_report(tokens: pd.DataFrame, split: np.ndarray) -> dict:
    """Sizes, distinct sentences, duplicates and, for valid and test, how much of each set
    training has already seen (sentences compared as side_key makes them): what a split leaks."""
    en = np.array([side_key(t) for t in tokens["en_tokens"]], dtype=object)
    fr = np.array([side_key(t) for t in tokens["fr_tokens"]], dtype=object)
    train = split == "train"
    seen_en, seen_fr = set(en[train]), set(fr[train])
    seen_pairs = set(zip(en[train], fr[train]))
    report: dict = {
        "pairs": {name: int((split == name).sum()) for name in ("train", "valid", "test")},
        "distinct": {"en": len(set(en)), "fr": len(set(fr)), "pairs": len(set(zip(en, fr)))},
    }
    report["duplicate_pairs"] = len(tokens) - report["distinct"]["pairs"]
    # the sets are drawn by group: one huge group (a crawl that links everything) would make
    # the set sizes far from their fractions, and this says so
    sizes = np.unique(groups(list(en), list(fr)), return_counts=True)[1]
    report["groups"], report["largest_group"] = len(sizes), int(sizes.max())
    for name in ("valid", "test"):
        rows = split == name
        n = int(rows.sum())
        if n == 0:
            report[f"{name}_overlap"] = None  # the lesson's split has no test set
            continue
        e = np.array([k in seen_en for k in en[rows]])
        f = np.array([k in seen_fr for k in fr[rows]])
        p = np.array([pair in seen_pairs for pair in zip(en[rows], fr[rows])])
        report[f"{name}_overlap"] = {
            "en_in_train": round(float(e.mean()), 4), "fr_in_train": round(float(f.mean()), 4),
            "either_in_train": round(float((e | f).mean()), 4),
            "pair_in_train": round(float(p.mean()), 4)}
    return report


def split_summary(split: str, stats: dict, report: dict) -> str:
    """The vocab stage's line: vocabulary sizes, the split's sizes, and what it leaks."""
    valid = report["valid_overlap"]
    return (f"vocab: fr {stats['fr_vocab_size']:,} en {stats['en_vocab_size']:,} tokens; "
            f"{split} split: {stats['train_pairs']:,} train / {stats['valid_pairs']:,} valid / "
            f"{stats['test_pairs']:,} test pairs; {valid['en_in_train']:.1%} of validation "
            "references are training targets"
            + ("" if stats["test_pairs"] else " (the lesson's split has no test set)"))


def build_ids(tokens: pd.DataFrame, p: VocabParams) -> tuple[dict[str, list[str]], pd.DataFrame,
                                                            dict]:
    """Vocabularies per language, an ids table (fr_ids, en_ids, split, line) and stats.

    Under vocab.split grouped the vocabularies and the length cut are learned from the
    training pairs alone, so a word only validation or test has is unknown, as it would be
    in use; under lesson from every pair, as the lesson did."""
    split = split_of(tokens, p)
    counts = {name: int((split == name).sum()) for name in ("train", "valid", "test")}
    if counts["train"] == 0 or counts["valid"] == 0 or (
            p.split == "grouped" and p.test_fraction > 0 and counts["test"] == 0):
        raise PipelineError(
            f"vocab: the {p.split} split of {len(tokens):,} pairs has {counts['train']:,} "
            f"training, {counts['valid']:,} validation and {counts['test']:,} test pairs; each "
            "needs at least one (change vocab.valid_fraction or vocab.test_fraction, or use "
            "more data)")
    learn = split == "train" if p.split == "grouped" else np.ones(len(tokens), dtype=bool)
    vocabs, ids, stats = {}, {}, {}
    for lang in ("fr", "en"):
        sentences = tokens[f"{lang}_tokens"]
        itos = build_vocab(sentences[learn], p.max_size)
        stoi = {w: i for i, w in enumerate(itos)}
        seqs = [numericalize(s, stoi) for s in sentences]
        max_len = int(np.percentile([len(s) for s, k in zip(seqs, learn) if k],
                                    p.max_len_percentile))
        ids[lang] = [s[:max_len] for s in seqs]
        vocabs[lang] = itos
        stats[f"{lang}_vocab_size"] = len(itos)
        stats[f"{lang}_max_len"] = max_len
        stats[f"{lang}_unk_tokens"] = int(sum(s.count(UNK) for s in seqs))
    table = pd.DataFrame({
        "fr_ids": ids["fr"],
        "en_ids": ids["en"],
        "split": split,
        "line": tokens["line"].to_numpy(),
    })
    stats.update(split=p.split, train_pairs=counts["train"], valid_pairs=counts["valid"],
                 test_pairs=counts["test"])
    return vocabs, table, stats
