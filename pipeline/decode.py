"""Self-contained model directories, greedy decoding, and translation of raw sentences.

A model directory (models/VARIANT) holds everything `fren-nmt translate` needs: the weights
(model.pt, a state dict loaded with weights_only=True), config.json (model options, sizes,
tokenizer settings, maximum lengths) and both vocabularies as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from pipeline.data import Split, pad
from pipeline.files import PipelineError, read_json
from pipeline.model import Seq2Seq
from pipeline.params import ModelConfig, TokenizeParams, from_dict
from pipeline.vocab import EOS, PAD, SPECIALS, UNK

FORMAT = 1  # bump when the directory layout changes incompatibly


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


class Translator:
    """A trained model with its vocabularies and tokenizer settings."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        path = Path(path)
        if not (path / "config.json").is_file():
            raise PipelineError(f"{path}: not a model directory (no config.json); "
                                "train one with `dvc repro train@VARIANT`")
        config = read_json(path / "config.json")
        if config.get("format") != FORMAT:
            raise PipelineError(f"{path}: model directory format {config.get('format')!r}, "
                                f"this version reads format {FORMAT}")
        self.config = config
        self.vocab_fr = read_json(path / "vocab_fr.json")
        self.vocab_en = read_json(path / "vocab_en.json")
        self.stoi_fr = {w: i for i, w in enumerate(self.vocab_fr)}
        self.tokenize_params = from_dict(TokenizeParams, config["tokenize"], f"{path}: tokenize")
        cfg = from_dict(ModelConfig, config["model"], f"{path}: model")
        self.model = Seq2Seq(cfg, len(self.vocab_fr), len(self.vocab_en), config["emb_dim"])
        try:
            state = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
            self.model.load_state_dict(state)
        except FileNotFoundError:
            raise PipelineError(f"{path}: model.pt is missing") from None
        except (RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0]
            raise PipelineError(f"{path}: model.pt does not fit config.json ({first})") from None
        self.device = torch.device(device)
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

    def translate(self, sentences: list[str], batch_size: int = 64) -> list[str]:
        out = [""] * len(sentences)
        todo = []
        for i, s in enumerate(sentences):
            if not s.strip():
                continue
            ids, cut = self.encode(s)
            if cut:
                print(f"warning: line {i + 1} cut to the model's {self.max_src_len} tokens",
                      file=sys.stderr)
            todo.append((i, ids))
        for k in range(0, len(todo), batch_size):
            chunk = todo[k:k + batch_size]
            src, src_len = pad([ids for _, ids in chunk])
            hyps = greedy(self.model, src.to(self.device), src_len.to(self.device),
                          self.max_tgt_len)
            for (i, _), hyp in zip(chunk, hyps):
                out[i] = " ".join(ids_to_tokens(hyp, self.vocab_en))
        return out


@torch.no_grad()
def greedy(model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, max_len: int
           ) -> list[list[int]]:
    """Greedy decoding; each hypothesis ends before its first _eos_."""
    model.eval()
    logits = model(src, src_len, max_len=max_len, stop_at_eos=True)
    hyps = []
    for row in logits.argmax(-1).tolist():
        hyps.append(row[: row.index(EOS)] if EOS in row else row)
    return hyps


def ids_to_tokens(ids: list[int], itos: list[str]) -> list[str]:
    """Tokens of ids, with padding and the other specials left out (but _unk kept)."""
    return [itos[i] for i in ids if i != PAD and (itos[i] not in SPECIALS or i == UNK)]


def translate_split(model: Seq2Seq, split: Split, batch_size: int, max_len: int,
                    device: torch.device) -> list[list[int]]:
    """Greedy hypotheses for every row of the split, in the split's order."""
    hyps: list[list[int]] = [[] for _ in range(len(split))]
    for batch in split.sorted(batch_size):
        b = batch.to(device)
        for i, h in zip(batch.index, greedy(model, b.src, b.src_len, max_len)):
            hyps[int(i)] = h
    return hyps


def model_config(cfg: ModelConfig, tok: TokenizeParams, emb_dim: int, max_src_len: int,
                 max_tgt_len: int) -> dict:
    return {"model": asdict(cfg), "tokenize": asdict(tok), "emb_dim": emb_dim,
            "max_src_len": int(max_src_len), "max_tgt_len": int(max_tgt_len)}


def max_len(seqs: list[np.ndarray]) -> int:
    return max(len(s) for s in seqs)
