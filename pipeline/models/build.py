"""Building a model of any kind from its config: the one place that knows every kind.

`model.kind` picks the class (pipeline/models/gru.py's Seq2Seq, the lesson's family, or
pipeline/models/transformer.py's Transformer); the embeddings can start from vectors (the
embeddings stage's fastText matrices).
"""

from __future__ import annotations

import torch

from pipeline.errors import PipelineError
from pipeline.models.gru import Seq2Seq
from pipeline.models.transformer import Transformer
from pipeline.params import ModelConfig


def make_model(cfg: ModelConfig, src_vocab: int, tgt_vocab: int, emb_dim: int
               ) -> Seq2Seq | Transformer:
    """The kind of model `model.kind` names, freshly initialized."""
    kind = Transformer if cfg.kind == "transformer" else Seq2Seq
    return kind(cfg, src_vocab, tgt_vocab, emb_dim)


def build_model(cfg: ModelConfig, src_vocab: int, tgt_vocab: int, emb_dim: int,
                src_vectors: torch.Tensor | None = None, tgt_vectors: torch.Tensor | None = None,
                ) -> Seq2Seq | Transformer:
    """The model, with embedding rows taken from pretrained vectors where they have one.

    Vectors are scaled so that their spread matches the random init's (model.emb_std), as the
    lesson did with its x3 on fastText vectors; rows of zeros (no vector) keep the random init.
    """
    model = make_model(cfg, src_vocab, tgt_vocab, emb_dim)
    # a shared matrix (model.share_embeddings) starts from the source's vectors (a joint
    # vocabulary's vectors are one fastText model of both languages: the same rows)
    sides = [(model.src_emb, src_vectors)]
    if model.tgt_emb is not model.src_emb:
        sides.append((model.tgt_emb, tgt_vectors))
    for emb, vectors in sides:
        if vectors is None:
            continue
        if tuple(vectors.shape) != tuple(emb.weight.shape):
            raise PipelineError(f"embedding matrix has shape {tuple(vectors.shape)}, the model "
                                f"needs {tuple(emb.weight.shape)}")
        found = vectors.abs().sum(1) > 0
        if found.any():
            with torch.no_grad():
                std = vectors[found].std().clamp_min(1e-8)
                emb.weight[found] = vectors[found] * (emb.weight.std() / std)
    return model
