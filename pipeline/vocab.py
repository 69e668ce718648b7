"""Vocabularies, token ids and the lesson's train/validation split."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from pipeline.files import PipelineError
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


def build_ids(tokens: pd.DataFrame, p: VocabParams) -> tuple[dict[str, list[str]], pd.DataFrame,
                                                            dict]:
    """Vocabularies per language, an ids table (fr_ids, en_ids, split, line) and stats."""
    vocabs, ids, stats = {}, {}, {}
    for lang in ("fr", "en"):
        itos = build_vocab(tokens[f"{lang}_tokens"], p.max_size)
        stoi = {w: i for i, w in enumerate(itos)}
        seqs = [numericalize(s, stoi) for s in tokens[f"{lang}_tokens"]]
        max_len = int(np.percentile([len(s) for s in seqs], p.max_len_percentile))
        ids[lang] = [s[:max_len] for s in seqs]
        vocabs[lang] = itos
        stats[f"{lang}_vocab_size"] = len(itos)
        stats[f"{lang}_max_len"] = max_len
        stats[f"{lang}_unk_tokens"] = int(sum(s.count(UNK) for s in seqs))
    train = split_mask(len(tokens), p.valid_fraction, p.seed)
    if train.all() or not train.any():
        raise PipelineError(f"vocab: the split of {len(tokens):,} pairs has {int(train.sum()):,} "
                            f"training and {int((~train).sum()):,} validation pairs; both need "
                            "at least one (change vocab.valid_fraction or use more data)")
    table = pd.DataFrame({
        "fr_ids": ids["fr"],
        "en_ids": ids["en"],
        "split": np.where(train, "train", "valid"),
        "line": tokens["line"].to_numpy(),
    })
    stats["train_pairs"] = int(train.sum())
    stats["valid_pairs"] = int((~train).sum())
    return vocabs, table, stats
