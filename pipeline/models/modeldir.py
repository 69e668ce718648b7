"""Model directories: what train@VARIANT writes and `fren-nmt translate` and evaluate read.

A model directory (models/VARIANT) holds the weights (model.pt, a state dict loaded with
weights_only=True), config.json (model options, sizes, tokenizer settings, maximum lengths)
and both vocabularies as JSON. Searching lives in pipeline/decoding/search.py, translating raw
text in pipeline/decoding/translate.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from pipeline.errors import PipelineError
from pipeline.files import read_json
from pipeline.models.build import make_model
from pipeline.models.decoder import Model
from pipeline.params import ModelConfig, TokenizeParams, from_dict

FORMAT = 2  # bump when the directory layout or the model's parameters change incompatibly


def save_model_dir(path: str | Path, model: Model, config: dict, vocab_fr: list[str],
                   vocab_en: list[str], extra: dict | None = None,
                   files: dict[str, bytes] | None = None) -> None:
    """Write the directory under a temporary name, then swap it into place: `extra` JSON
    records and `files` (a pieces model's SentencePiece models) beside the weights."""
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
    for name, data in (files or {}).items():
        (tmp / name).write_bytes(data)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


def model_config(cfg: ModelConfig, tok: TokenizeParams, emb_dim: int, max_src_len: int,
                 max_tgt_len: int) -> dict:
    return {"model": asdict(cfg), "tokenize": asdict(tok), "emb_dim": emb_dim,
            "max_src_len": int(max_src_len), "max_tgt_len": int(max_tgt_len)}


def max_len(seqs: list[np.ndarray]) -> int:
    return max(len(s) for s in seqs)


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of the model's weights (every tensor's name, dtype, shape and bytes, in order):
    equal exactly when two trainings ended on the same weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


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



def load_model_dir(path: str | Path, device: torch.device
                   ) -> tuple[Model, dict, list[str], list[str]]:
    """The model (in eval mode, on `device`), config.json, and the fr and en vocabularies;
    a one-line error for a directory that is not complete and sound."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise PipelineError(f"{path}: not a model directory (no config.json); "
                            "train one with `dvc repro train@VARIANT`")
    config = read_json(path / "config.json")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else None
        raise PipelineError(f"{path}: model directory format {found!r}, this version "
                            f"reads format {FORMAT}; retrain with `dvc repro train@VARIANT`")
    vocab_fr = read_json(path / "vocab_fr.json")
    vocab_en = read_json(path / "vocab_en.json")
    cfg = from_dict(ModelConfig, config["model"], f"{path}: model")
    model = make_model(cfg, len(vocab_fr), len(vocab_en), config["emb_dim"])
    state = load_state(path / "model.pt")
    try:
        model.load_state_dict(state)
    except (RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0]
        raise PipelineError(f"{path}: model.pt does not fit config.json ({first})") from None
    return model.to(device).eval(), config, vocab_fr, vocab_en
