"""Batches for training and evaluation: the lesson's sortish sampling and post-padding."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from pipeline.data.units import Pieces, Words
from pipeline.data.vocab import EOS, PAD, UNK, numericalize


def pinned(t: torch.Tensor) -> torch.Tensor:
    """`t` in page-locked host memory (call only when a GPU is the destination)."""
    return t if t.is_pinned() else t.pin_memory()


def to_device(x: torch.Tensor | Sequence, device: torch.device) -> torch.Tensor:
    """A host tensor, or Python values, on `device`. To a GPU it goes through pinned memory as
    an asynchronous copy: a copy from pageable memory waits for the GPU (set_sync_debug_mode
    "error" raises on it), which a captured step's warm-up or a search loop must not do. A CPU
    run touches nothing of CUDA."""
    t = x if isinstance(x, torch.Tensor) else torch.tensor(x)
    if device.type != "cuda":
        return t.to(device)
    return pinned(t).to(device, non_blocking=True)


@dataclass
class Batch:
    src: torch.Tensor      # (B, S) French ids, post-padded with _pad_
    src_len: torch.Tensor  # (B,)
    tgt: torch.Tensor      # (B, T) English ids ending in _eos_ (unless cut), post-padded
    index: np.ndarray      # rows of the split these come from

    def to(self, device: torch.device) -> Batch:
        return Batch(to_device(self.src, device), to_device(self.src_len, device),
                     to_device(self.tgt, device), self.index)


def pad(seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    out = np.full((len(seqs), int(lengths.max())), PAD, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return torch.from_numpy(out), torch.from_numpy(lengths)


class Split:
    """One split (train or valid) of the ids table, ready to batch."""

    def __init__(self, ids: pd.DataFrame) -> None:
        self.src = [np.asarray(s, dtype=np.int64) for s in ids["fr_ids"]]
        self.tgt = [np.asarray(s, dtype=np.int64) for s in ids["en_ids"]]
        self.lines = ids["line"].to_numpy()
        self.src_lengths = np.array([len(s) for s in self.src])

    def __len__(self) -> int:
        return len(self.src)

    @classmethod
    def of(cls, src: list[np.ndarray], tgt: list[np.ndarray], lines: np.ndarray) -> Split:
        """A split of these id sequences and corpus line numbers."""
        out = cls.__new__(cls)
        out.src, out.tgt, out.lines = src, tgt, lines
        out.src_lengths = np.array([len(s) for s in src])
        return out

    @classmethod
    def join(cls, parts: list[tuple[Split, np.ndarray]]) -> Split:
        """The rows `index` of each (split, index) part, one after the other."""
        return cls.of([part.src[i] for part, index in parts for i in index],
                      [part.tgt[i] for part, index in parts for i in index],
                      np.concatenate([part.lines[index] for part, index in parts]))

    def max_lengths(self) -> tuple[int, int]:
        """The longest source and target (training cuts its lengths there)."""
        return int(self.src_lengths.max()), max(len(t) for t in self.tgt)

    def batch(self, index: np.ndarray) -> Batch:
        src, src_len = pad([self.src[i] for i in index])
        tgt, _ = pad([self.tgt[i] for i in index])
        return Batch(src, src_len, tgt, index)  # Batch.to pins it where a GPU wants that

    def sortish(self, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """The lesson's SortishSampler: shuffle, sort by length within chunks of 50 batches,
        start with the longest batch (to hit out-of-memory at once), shuffle the rest."""
        idx = rng.permutation(len(self))
        chunk = batch_size * 50
        idx = np.concatenate([
            idx[i:i + chunk][np.argsort(-self.src_lengths[idx[i:i + chunk]], kind="stable")]
            for i in range(0, len(idx), chunk)
        ])
        batches = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
        longest = int(np.argmax([self.src_lengths[b].max() for b in batches]))
        batches[0], batches[longest] = batches[longest], batches[0]
        rest = batches[1:]
        order = rng.permutation(len(rest))
        for b in [batches[0]] + [rest[i] for i in order]:
            yield self.batch(b)

    def sorted(self, batch_size: int) -> Iterator[Batch]:
        """Batches of similar length in a fixed order (evaluation)."""
        idx = np.argsort(-self.src_lengths, kind="stable")
        for i in range(0, len(idx), batch_size):
            yield self.batch(idx[i:i + batch_size])


def max_lengths(*splits: Split | None) -> tuple[int, int]:
    """The longest source and target of the splits together (the questions and the pool:
    what training may see, whose longest pairs set the captured CUDA steps' shapes)."""
    found = [s.max_lengths() for s in splits if s is not None and len(s)]
    return max(src for src, _ in found), max(tgt for _, tgt in found)


def epoch_pairs(train: Split, pool: Split | None, repeats: int, per_epoch: int,
                epoch: int) -> Split:
    """What epoch `epoch` trains on: the questions `repeats` times, and the next `per_epoch`
    pairs of the pool (epoch k takes the k-th slice, wrapping round), so that the epochs go
    through the pool in its seeded order and every epoch has as many pairs."""
    parts = [(train, np.arange(len(train)))] * repeats
    if pool is not None and per_epoch and len(pool):
        n = min(per_epoch, len(pool))
        parts.append((pool, (epoch * n + np.arange(n)) % len(pool)))
    return train if len(parts) == 1 else Split.join(parts)


def sample_pieces(pairs: Split, units: Pieces, alpha: float, seed: int,
                  longest: tuple[int, int]) -> Split:
    """Subword regularization (Kudo, 2018): each pair's pieces drawn again from the unigram
    model's segmentations of its text, sharpened by `alpha` (SentencePiece's sampling, seeded
    by `seed`: a resumed run draws what an uninterrupted one did), so that the model meets a
    word in several segmentations and a rare word's pieces are not all new to it. A side
    keeps its own pieces where the draw would be longer than `longest` (the training data's
    longest source and target, which a captured CUDA step's shapes hold) or where it has no
    text to draw from (cut at the length percentile, or holding _unk)."""
    import sentencepiece as spm

    spm.set_random_generator_seed(seed)
    sides = []
    for side, lang, cap in (("src", "fr", longest[0]), ("tgt", "en", longest[1])):
        sp, drawn = units.sp[lang], []
        for ids in getattr(pairs, side):
            if ids[-1] != EOS or (ids == UNK).any():
                drawn.append(ids)
                continue
            new = sp.encode(sp.decode(ids[:-1].tolist()), enable_sampling=True, alpha=alpha,
                            nbest_size=-1) + [EOS]
            drawn.append(np.asarray(new, dtype=np.int64) if len(new) <= cap else ids)
        sides.append(drawn)
    return Split.of(*sides, pairs.lines)


def names_in_both(fr: str, en: str) -> list[str]:
    """The words a translation of `fr` carries through unchanged, as the copy rate counts
    them (metrics.copy_words: names, numbers), in a fixed order (a set's order varies from
    one process to the next)."""
    from pipeline.evaluation.metrics import copy_words  # metrics imports this module

    return sorted(copy_words(fr, en))


def made_up_name(rng: np.random.Generator, pieces: list[str], like: str) -> str:
    """A token the corpus need not hold, in place of `like`: a number of 1 to 4 digits for a
    number, else 2 or 3 of the vocabulary's word pieces run together, capitalized
    ("Lomiraque")."""
    if like.isdigit():
        return str(int(rng.integers(0, 10 ** int(rng.integers(1, 5)))))
    word = "".join(pieces[i] for i in rng.integers(0, len(pieces), int(rng.integers(2, 4))))
    return word[:1].upper() + word[1:]


def word_pieces(units: Pieces) -> list[str]:
    """The joint vocabulary's pieces made of letters alone (no word boundary, digit or
    sign), the stuff made_up_name builds names from."""
    sp = units.sp["fr"]
    out = [sp.id_to_piece(i) for i in range(sp.get_piece_size())
           if not (sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i))]
    return sorted({p.lstrip("\u2581").lower() for p in out
                   if p.lstrip("\u2581").isalpha() and len(p.lstrip("\u2581")) > 1})


def swap_names(pairs: Split, units: Pieces, share: float, seed: int,
               longest: tuple[int, int]) -> Split:
    """Copy by example (train.name_swaps): in `share` of an epoch's pairs that hold a name or
    a number on both sides, each such token replaced, on both sides alike, by a made-up one,
    then the pair encoded again. A corpus where Tom and Mary are half the names teaches a
    model to write Tom; new names teach it to copy what it cannot translate ("Simone Veil",
    "1995"). Seeded by `seed` (a resumed run draws what an uninterrupted one did); a pair is
    kept as it was where it was cut at the length percentile, holds _unk (before or after:
    a capital the pieces lack), or would grow past `longest` (the captured CUDA steps'
    shapes)."""
    rng = np.random.default_rng(seed)
    pieces = word_pieces(units)
    fr_sp, en_sp = units.sp["fr"], units.sp["en"]
    srcs, tgts = list(pairs.src), list(pairs.tgt)
    for i, (src, tgt) in enumerate(zip(pairs.src, pairs.tgt)):
        if src[-1] != EOS or tgt[-1] != EOS or (src == UNK).any() or (tgt == UNK).any():
            continue
        fr, en = fr_sp.decode(src[:-1].tolist()), en_sp.decode(tgt[:-1].tolist())
        names = names_in_both(fr, en)
        if not names or rng.random() >= share:
            continue
        for name in names:
            other = made_up_name(rng, pieces, name)
            whole = re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")
            fr, en = whole.sub(other, fr), whole.sub(other, en)
        new_src = np.asarray(fr_sp.encode(fr) + [EOS], dtype=np.int64)
        new_tgt = np.asarray(en_sp.encode(en) + [EOS], dtype=np.int64)
        if len(new_src) <= longest[0] and len(new_tgt) <= longest[1] and \
                not (new_src == UNK).any() and not (new_tgt == UNK).any():
            srcs[i], tgts[i] = new_src, new_tgt
    return Split.of(srcs, tgts, pairs.lines)


SETS = ("train", "valid", "test")


def load_splits(path: str) -> tuple[Split, Split, Split]:
    """The training, validation and test pairs of the ids table (the lesson's split has no
    test pairs: that Split is empty)."""
    ids = pd.read_parquet(path)
    return tuple(Split(ids[ids["split"] == name].reset_index(drop=True)) for name in SETS)


@dataclass
class WholeSet:
    """A set as evaluation scores it: its sources whole (the full tokenized sentences, not the
    ids cut at the length percentile for training) as a Split, the references as space-joined
    tokens (the lesson's BLEU) and as the original English sentences (standard BLEU on the
    text translate prints), and the source tokens."""

    split: Split
    token_refs: list[str]
    text_refs: list[str]
    sources: list[list[str]]
    text_sources: list[str]  # the original French sentences (the copy rate reads them)


def whole_set(pairs: Split, tokens: pd.DataFrame, questions: pd.DataFrame,
              vocab_fr: list[str], units: Words | Pieces) -> WholeSet:
    """`tokens` is tokens.parquet and `questions` questions.parquet, each indexed by line.
    Words take the tokenize stage's tokens; pieces encode the original text (the references
    as tokens are then the English pieces)."""
    if isinstance(units, Pieces):
        sources = [units.source_tokens(questions.at[line, "fr"]) for line in pairs.lines]
        token_refs = [" ".join(units.target_tokens(questions.at[line, "en"]))
                      for line in pairs.lines]
    else:
        sources = [list(tokens.at[line, "fr_tokens"]) for line in pairs.lines]
        token_refs = [" ".join(tokens.at[line, "en_tokens"]) for line in pairs.lines]
    stoi = {w: i for i, w in enumerate(vocab_fr)}
    whole = Split(pd.DataFrame({"fr_ids": [numericalize(t, stoi) for t in sources],
                                "en_ids": [list(t) for t in pairs.tgt], "line": pairs.lines}))
    return WholeSet(whole, token_refs, [str(questions.at[line, "en"]) for line in pairs.lines],
                    sources, [str(questions.at[line, "fr"]) for line in pairs.lines])


def text_set(fr: list[str], en: list[str], units: Words | Pieces, vocab_fr: list[str],
             vocab_en: list[str]) -> WholeSet:
    """A set of raw sentence pairs (the outside set) as evaluation scores it: both sides in
    the model's units, as translate reads a sentence and as whole_set makes the references."""
    sources = [units.source_tokens(s) for s in fr]
    targets = [units.target_tokens(s) for s in en]
    stoi_fr = {w: i for i, w in enumerate(vocab_fr)}
    stoi_en = {w: i for i, w in enumerate(vocab_en)}
    whole = Split(pd.DataFrame({"fr_ids": [numericalize(t, stoi_fr) for t in sources],
                                "en_ids": [numericalize(t, stoi_en) for t in targets],
                                "line": np.arange(len(fr))}))
    return WholeSet(whole, [" ".join(t) for t in targets], list(en), sources, list(fr))
