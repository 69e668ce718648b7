"""What a variant trains on, ready: its configs, its pairs (of words, or of pieces and the
pool), its vocabularies and a freshly built model (the train stage, lr_find and the benchmarks
start here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.data.batches import Split, load_splits
from pipeline.data.units import processed_folder
from pipeline.errors import PipelineError
from pipeline.files import read_json
from pipeline.models.build import build_model
from pipeline.models.decoder import Model
from pipeline.params import ModelConfig, TrainConfig, variant_configs, variant_runtime
from pipeline.runtime import set_threads
from pipeline.training.checkpoints import file_digest


@dataclass
class Prepared:
    """A variant ready to train: its configs, data, vocabularies and freshly built model."""

    model_cfg: ModelConfig
    train_cfg: TrainConfig
    train: Split
    valid: Split
    vocab_fr: list[str]
    vocab_en: list[str]
    model: Model
    data_digest: str  # of the processed files it read (the checkpoint's fingerprint has it)
    units_dir: Path   # where its units' files are: data/processed, or its pieces folder
    pool: Split | None = None


def prepare(params: dict, variant: str, processed: str | Path) -> Prepared:
    """Configs, data splits, vocabularies and a freshly built model for `variant`: of words
    (the vocab and embeddings stages' files) or pieces (the subwords stage's, in pieces/)."""
    model_cfg, train_cfg = variant_configs(params, variant)
    folder = processed_folder(processed, train_cfg.units)
    set_threads(variant_runtime(params, variant).threads)
    torch.manual_seed(train_cfg.seed)
    files = [folder / n for n in ("ids.parquet", "emb_fr.npy", "emb_en.npy")]
    if train_cfg.pool:
        files.append(folder / "pool_ids.parquet")
    for f in files:
        if not f.exists():
            stage = "subwords" if train_cfg.units == "pieces" else "embeddings"
            raise PipelineError(f"{f}: missing; run `dvc repro {stage}` first")
    train, valid, _ = load_splits(str(files[0]))  # the test set is for evaluate alone
    pool = Split(pd.read_parquet(files[3])) if train_cfg.pool else None
    vocab_fr = read_json(folder / "vocab_fr.json")
    vocab_en = read_json(folder / "vocab_en.json")
    emb_fr, emb_en = (torch.from_numpy(np.load(f)) for f in files[1:3])
    model = build_model(model_cfg, len(vocab_fr), len(vocab_en), emb_fr.shape[1], emb_fr,
                        emb_en)
    return Prepared(model_cfg, train_cfg, train, valid, vocab_fr, vocab_en, model,
                    file_digest(*files), folder, pool)
