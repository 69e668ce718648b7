"""SentencePiece models learned from the training text, and the pieces' ids.

The subwords stage trains them on the raw cased text of the training questions and the pool
(never valid or test), one joint model for both languages or one per language
(subwords.joint). Its special pieces are the lesson's, at the lesson's ids (_bos_ 0, _pad_ 1,
_eos_ 2, _unk 3), so a pieces vocabulary works wherever a words one does.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data.embeddings import build_matrix, train_vectors
from pipeline.data.units import SPM_FILE
from pipeline.data.vocab import BOS, EOS, PAD, SPECIALS, UNK
from pipeline.errors import PipelineError
from pipeline.files import atomic_path, write_json, write_npy, write_parquet
from pipeline.params import EmbeddingsParams, SubwordsParams

SPECIAL_ARGS = {"bos_id": BOS, "pad_id": PAD, "eos_id": EOS, "unk_id": UNK,
                "bos_piece": SPECIALS[BOS], "pad_piece": SPECIALS[PAD],
                "eos_piece": SPECIALS[EOS], "unk_piece": SPECIALS[UNK]}
_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")
_TOO_LOW = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")


def train_sentencepiece(sentences: Sequence[str], p: SubwordsParams, what: str) -> bytes:
    """A SentencePiece model (its serialized bytes) of `sentences`; `what` names the text in
    errors. One thread and the input in its given order: the same model on every run."""
    import sentencepiece as spm

    model = io.BytesIO()
    with open(os.devnull, "w") as log:  # its long progress log; its errors are raised
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences), model_writer=model, logstream=log,
                minloglevel=2,
                model_type=p.type, vocab_size=p.vocab_size,
                character_coverage=p.character_coverage, num_threads=1,
                shuffle_input_sentence=False, input_sentence_size=0, **SPECIAL_ARGS)
        except RuntimeError as e:
            found = _TOO_HIGH.search(str(e))
            if found:
                raise PipelineError(
                    f"subwords.vocab_size: {p.vocab_size} is more pieces than the {what} can "
                    f"fill (SentencePiece: at most {found.group(2)})") from None
            found = _TOO_LOW.search(str(e))
            if found:
                raise PipelineError(
                    f"subwords.vocab_size: {p.vocab_size} is fewer pieces than the {what}'s "
                    f"characters and the specials need (at least {found.group(2)})") from None
            last = (str(e).strip().splitlines() or ["no message"])[-1]
            raise PipelineError(f"subwords: SentencePiece failed on the {what} ({last})"
                                ) from None
    return model.getvalue()


def train_models(text: dict[str, Sequence[str]], p: SubwordsParams) -> dict[str, bytes]:
    """One model per language, or the same joint model twice (subwords.joint)."""
    if p.joint:
        joint = train_sentencepiece([*text["fr"], *text["en"]], p, "training text")
        return {"fr": joint, "en": joint}
    return {lang: train_sentencepiece(text[lang], p, f"{lang} training text")
            for lang in ("fr", "en")}


def vocabulary(model: bytes) -> list[str]:
    """The model's pieces in id order: its itos, specials first."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=model)
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def encode_pairs(pairs: pd.DataFrame, models: dict[str, bytes]) -> pd.DataFrame:
    """fr_ids and en_ids (each ending in _eos_) of the pairs' raw text, with their line."""
    import sentencepiece as spm

    out = {"line": pairs["line"].to_numpy()}
    for lang in ("fr", "en"):
        sp = spm.SentencePieceProcessor(model_proto=models[lang])
        out[f"{lang}_ids"] = [ids + [EOS] for ids in sp.encode(list(pairs[lang]))]
    return pd.DataFrame({"fr_ids": out["fr_ids"], "en_ids": out["en_ids"], "line": out["line"]})


def length_cut(ids: pd.DataFrame, train: np.ndarray, percentile: float) -> dict[str, int]:
    """Each side's cut: the `percentile` of the training pairs' lengths (vocab's rule)."""
    return {lang: int(np.percentile([len(s) for s in ids.loc[train, f"{lang}_ids"]],
                                    percentile)) for lang in ("fr", "en")}


def learned_from(text: dict[str, Sequence[str]], questions: pd.DataFrame) -> dict[str, dict]:
    """What SentencePiece learned from, per language: its sentences, and how many of the
    distinct valid and test questions are among them, verbatim (0 unless scored text leaked
    into training: the grouped split and the pool's guard keep them apart)."""
    out = {}
    for lang in ("fr", "en"):
        seen = set(text[lang])
        held_out = questions.loc[questions["split"] != "train", lang].unique()
        out[lang] = {"sentences": len(text[lang]),
                     "valid_test_questions": sum(s in seen for s in held_out)}
    return out


@dataclass
class PiecesData:
    """What the subwords stage writes: the models, vocabularies, ids, vectors and its record."""

    models: dict[str, bytes]
    vocabs: dict[str, list[str]]
    ids: pd.DataFrame       # the questions: fr_ids, en_ids, line, split (cut as vocab cuts)
    pool_ids: pd.DataFrame  # the pool pairs within the cut: fr_ids, en_ids, line
    vectors: dict[str, np.ndarray]
    stats: dict

    def save(self, folder: Path) -> None:
        """Each file written whole under a temporary name, then renamed (pipeline/files.py)."""
        for lang in ("fr", "en"):
            with atomic_path(folder / SPM_FILE.format(lang=lang)) as tmp:
                tmp.write_bytes(self.models[lang])
            write_json(folder / f"vocab_{lang}.json", self.vocabs[lang])
            write_npy(folder / f"emb_{lang}.npy", self.vectors[lang])
        write_parquet(folder / "ids.parquet", self.ids)
        write_parquet(folder / "pool_ids.parquet", self.pool_ids)


def build_pieces(questions: pd.DataFrame, pool: pd.DataFrame, p: SubwordsParams,
                 percentile: float, embeddings: EmbeddingsParams) -> PiecesData:
    """SentencePiece models of the training questions' and the pool's text (`questions` has
    fr, en, line and split), their ids, and fastText vectors of the pieces where
    embeddings.source is train (pretrained word vectors have no rows for pieces: refused)."""
    if embeddings.source == "pretrained":
        raise PipelineError("embeddings.source: pretrained word vectors have no rows for "
                            "SentencePiece pieces; use train (fastText on the pieces) or random")
    train = questions[questions["split"] == "train"]
    text = {lang: [*train[lang], *pool[lang]] for lang in ("fr", "en")}
    models = train_models(text, p)
    ids = encode_pairs(questions, models).assign(split=questions["split"].to_numpy())
    is_train = (ids["split"] == "train").to_numpy()
    cut = length_cut(ids, is_train, percentile)
    for lang in ("fr", "en"):  # as vocab cuts the words' ids: the whole sentences are scored
        ids[f"{lang}_ids"] = [s[:cut[lang]] for s in ids[f"{lang}_ids"]]
    pool_ids = encode_pairs(pool, models)
    fits = (pool_ids["fr_ids"].map(len) <= cut["fr"]) & (pool_ids["en_ids"].map(len) <= cut["en"])
    pool_ids = pool_ids[fits].reset_index(drop=True)  # a cut pool pair would teach a cut output
    stats: dict = {"type": p.type, "joint": p.joint, "pool_pairs": len(pool_ids),
                   "pool_pairs_too_long": int((~fits).sum()),
                   "learned_from": learned_from(text, questions)}
    vocabs, vectors = {}, {}
    # A joint model's pieces are one vocabulary: one fastText model of both languages' text
    # gives each piece one vector (a name reads the same on both sides), which a model with
    # shared embeddings can start from; one per language otherwise.
    langs = [("fr", "en")] if p.joint else [("fr",), ("en",)]
    found: dict[str, dict] = {}
    for group in langs:
        itos = vocabulary(models[group[0]])
        seen = [s for lang in group
                for s in (*ids.loc[is_train, f"{lang}_ids"], *pool_ids[f"{lang}_ids"])]
        vecs = (train_vectors([[itos[i] for i in s[:-1]] for s in seen], embeddings.dim,
                              embeddings.train) if embeddings.source == "train" else {})
        found.update({lang: vecs for lang in group})
    for lang in ("fr", "en"):
        itos = vocabulary(models[lang])
        vectors[lang], coverage = build_matrix(itos, found[lang], embeddings.dim)
        vocabs[lang] = itos
        stats[lang] = {"vocab_size": len(itos), "max_len": cut[lang],
                       "mean_len": round(float(ids.loc[is_train, f"{lang}_ids"].map(len).mean()),
                                         2), "with_vector": coverage["with_vector"]}
    return PiecesData(models, vocabs, ids, pool_ids, vectors, stats)
