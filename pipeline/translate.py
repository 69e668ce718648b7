"""Model directories (save, load) and translation of raw sentences into text a person reads.

A model directory (models/VARIANT) holds everything `fren-nmt translate` needs: the weights
(model.pt, a state dict loaded with weights_only=True), config.json (model options, sizes,
tokenizer settings, maximum lengths) and both vocabularies as JSON. Searching lives in
pipeline/search.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import asdict
from functools import cache
from pathlib import Path

import numpy as np
import torch

from pipeline.data import pad
from pipeline.files import PipelineError, read_json
from pipeline.model import Seq2Seq
from pipeline.params import ModelConfig, TokenizeParams, from_dict
from pipeline.search import Hypothesis, beam_search, greedy
from pipeline.train import pick_device
from pipeline.vocab import EOS, PAD, SPECIALS, UNK

FORMAT = 2  # bump when the directory layout or the model's parameters change incompatibly
CAPS = "t_up"  # the tokenizer's marker: the next word was written in capitals


def save_model_dir(path: str | Path, model: Seq2Seq, config: dict, vocab_fr: list[str],
                   vocab_en: list[str], extra: dict | None = None) -> None:
    """Write the directory under a temporary name, then swap it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp / "model.pt")
    (tmp / "config.json").write_text(json.dumps({"format": FORMAT, **config}, indent=2))
    (tmp / "vocab_fr.json").write_text(json.dumps(vocab_fr, ensure_ascii=False))
    (tmp / "vocab_en.json").write_text(json.dumps(vocab_en, ensure_ascii=False))
    for name, obj in (extra or {}).items():
        (tmp / name).write_text(json.dumps(obj, indent=2))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


def model_config(cfg: ModelConfig, tok: TokenizeParams, emb_dim: int, max_src_len: int,
                 max_tgt_len: int) -> dict:
    return {"model": asdict(cfg), "tokenize": asdict(tok), "emb_dim": emb_dim,
            "max_src_len": int(max_src_len), "max_tgt_len": int(max_tgt_len)}


def max_len(seqs: list[np.ndarray]) -> int:
    return max(len(s) for s in seqs)


def load_state(path: Path) -> dict:
    """model.pt's state dict; anything else is a one-line error (never a traceback)."""
    if not path.is_file():
        raise PipelineError(f"{path}: missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # empty, truncated, random bytes, a pickle of something else
        raise PipelineError(f"{path}: not a readable model file (empty, truncated or not "
                            "written by fren-nmt); retrain with `dvc repro train@VARIANT`"
                            ) from None
    if not isinstance(state, dict):
        raise PipelineError(f"{path}: holds {type(state).__name__}, not a model's weights")
    return state


class Translator:
    """A trained model with its vocabularies and tokenizer settings."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        path = Path(path)
        if not (path / "config.json").is_file():
            raise PipelineError(f"{path}: not a model directory (no config.json); "
                                "train one with `dvc repro train@VARIANT`")
        config = read_json(path / "config.json")
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            found = config.get("format") if isinstance(config, dict) else None
            raise PipelineError(f"{path}: model directory format {found!r}, this version "
                                f"reads format {FORMAT}; retrain with `dvc repro train@VARIANT`")
        self.device = pick_device(device, "--device")
        self.config = config
        self.vocab_fr = read_json(path / "vocab_fr.json")
        self.vocab_en = read_json(path / "vocab_en.json")
        self.stoi_fr = {w: i for i, w in enumerate(self.vocab_fr)}
        self.tokenize_params = from_dict(TokenizeParams, config["tokenize"], f"{path}: tokenize")
        cfg = from_dict(ModelConfig, config["model"], f"{path}: model")
        self.model = Seq2Seq(cfg, len(self.vocab_fr), len(self.vocab_en), config["emb_dim"])
        state = load_state(path / "model.pt")
        try:
            self.model.load_state_dict(state)
        except (RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0]
            raise PipelineError(f"{path}: model.pt does not fit config.json ({first})") from None
        self.model.to(self.device).eval()
        self.max_src_len = int(config["max_src_len"])
        self.max_tgt_len = int(config["max_tgt_len"])

    def encode(self, sentence: str) -> tuple[list[int], bool]:
        """French ids with _eos_, and whether the sentence was cut to the model's maximum."""
        from pipeline.tokenize import tokenize

        p = self.tokenize_params
        toks = tokenize(sentence, "fr", p.lowercase, p.mark_caps)
        ids = [self.stoi_fr.get(t, UNK) for t in toks] + [EOS]
        return ids[: self.max_src_len], len(ids) > self.max_src_len

    def search(self, sentences: list[str], batch_size: int = 64, beam_size: int = 1,
               alpha: float = 0.0, n_best: int = 1) -> list[list[Hypothesis]]:
        """The n_best hypotheses of each sentence ([] for an empty line), in input order.

        Sentences are batched in order of length, so a sentence's translation does not depend
        on its neighbours (tests/test_search.py checks that).
        """
        out: list[list[Hypothesis]] = [[] for _ in sentences]
        todo = []
        for i, s in enumerate(sentences):
            if not s.strip():
                continue
            ids, cut = self.encode(s)
            if cut:
                print(f"warning: line {i + 1} cut to the model's {self.max_src_len} tokens",
                      file=sys.stderr)
            todo.append((i, ids))
        todo.sort(key=lambda item: -len(item[1]))
        for k in range(0, len(todo), batch_size):
            chunk = todo[k:k + batch_size]
            src, src_len = pad([ids for _, ids in chunk])
            src, src_len = src.to(self.device), src_len.to(self.device)
            if beam_size == 1 and n_best == 1:
                hyps, _ = greedy(self.model, src, src_len, self.max_tgt_len)
                found = [[Hypothesis(h, float("nan"), float("nan"))] for h in hyps]
            else:
                found = beam_search(self.model, src, src_len, self.max_tgt_len, beam_size,
                                    alpha, n_best)
            for (i, _), hyps in zip(chunk, found):
                out[i] = hyps
        return out

    def translate(self, sentences: list[str], batch_size: int = 64, beam_size: int = 1,
                  alpha: float = 0.0, tokens: bool = False) -> list[str]:
        """One line per sentence: text a person reads, or the model's tokens (`tokens`)."""
        lines = []
        for hyps in self.search(sentences, batch_size, beam_size, alpha):
            words = ids_to_tokens(hyps[0].ids, self.vocab_en) if hyps else []
            lines.append(" ".join(words) if tokens else to_text(words))
        return lines


def ids_to_tokens(ids: list[int], itos: list[str]) -> list[str]:
    """Tokens of ids, with padding and the other specials left out (but _unk kept)."""
    return [itos[i] for i in ids if i != PAD and (itos[i] not in SPECIALS or i == UNK)]


@cache
def _detokenizer():  # noqa: ANN202 - sacremoses' MosesDetokenizer
    from sacremoses import MosesDetokenizer

    return MosesDetokenizer(lang="en")


_PUNCT = {"?", "!", ".", "..."}
# spaCy splits "can't", "gonna", "gotta", "wanna" in two; Moses' detokenizer does not join them
_JOIN = {"gon": "na", "wan": "na", "got": "ta"}


def to_text(tokens: list[str]) -> str:
    """English text from the model's tokens: the t_up marker applied, spaCy's contraction
    splits joined, Moses' detokenizer for the spacing, repeated final punctuation collapsed,
    "i" and the first letter capitalized."""
    words: list[str] = []
    caps = False
    for tok in tokens:
        if tok == CAPS:
            caps = True
            continue
        tok = (tok.upper() if caps else tok).replace("\u2019", "'")  # Moses wants ' for 's
        caps = False
        if words and (tok.lower() == "n't" or _JOIN.get(words[-1].lower()) == tok.lower()):
            words[-1] += tok
            continue
        words.append("I" if tok == "i" else tok)
    while len(words) > 1 and words[-1] in _PUNCT and words[-2] == words[-1]:
        words.pop()
    text = _detokenizer().detokenize(words) if words else ""
    first = re.search(r"[^\W\d_]", text)  # the first letter, after any quote or digit
    return text if first is None else (text[:first.start()] + text[first.start()].upper()
                                       + text[first.start() + 1:])
