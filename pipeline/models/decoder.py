"""The decoder protocol that search, translate, ensembles and heatmaps drive, written once.

Two kinds of model implement it: the GRU family (pipeline/models/gru.py) and the Transformer
(pipeline/models/transformer.py); an ensemble (pipeline/decoding/search.py) is a third that
wraps several.
The loss of a batch of features is shared here too, so both kinds score tokens the same way.
"""

from __future__ import annotations

from typing import Protocol, Self

import torch
import torch.nn.functional as F

from pipeline.data.vocab import PAD
from pipeline.params import ModelConfig

# Per-step teacher forcing: a list of bools decided on the host (the eager path, which can skip
# projecting forced steps), or a (T,) bool tensor on the device (a captured step: one graph
# serves every draw of the flags).
Force = list[bool] | torch.Tensor

LOSS_ROWS = 256  # target tokens per output projection in sequence_loss (fastest on a CPU)


class DecoderState(Protocol):
    """What a decoder carries from one step to the next, for a batch of rows."""

    def select(self, index: torch.Tensor) -> Self:
        """The state of the rows `index`, in that order (beam search tiles and reorders)."""
        ...


class Decoder(Protocol):
    """A model that decodes one step at a time, driven from outside (search.py)."""

    def start(self, src: torch.Tensor, src_len: torch.Tensor) -> DecoderState:
        """Encode a batch (B, S) with each row's length; the state before the first step."""
        ...

    def step(self, prev: torch.Tensor, state: DecoderState
             ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """From the previous tokens (B,): the features (B, E), the new state and the
        attention weights over the source (B, S), or None."""
        ...

    def out(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (..., V) from features (..., E)."""
        ...

    def eval(self) -> Self:  # every decoder is a torch.nn.Module
        ...


class Model(Decoder, Protocol):
    """A decoder that trains: the GRU family's Seq2Seq and the Transformer."""

    cfg: ModelConfig
    attends: bool  # whether `step` returns attention weights over the source
    masks_padding: bool  # whether the bucket padding changes nothing the loss sees

    def loss(self, src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor, force: Force,
             pad_in_loss: bool = False, label_smoothing: float = 0.0,
             one_call: bool | None = None, per: float | None = None) -> torch.Tensor:
        """Mean cross-entropy per target token (sequence_loss, below)."""
        ...


def select_state(state: DecoderState | list, index: torch.Tensor) -> DecoderState | list:
    """The state of the rows `index`; an ensemble's state is a list of its models' states."""
    if isinstance(state, list):
        return [select_state(s, index) for s in state]
    return state.select(index)


def sequence_loss(out: torch.nn.Module, feats: torch.Tensor,
                  step_logits: list[torch.Tensor | None], tgt: torch.Tensor,
                  pad_in_loss: bool = False, label_smoothing: float = 0.0,
                  one_call: bool | None = None, per: float | None = None) -> torch.Tensor:
    """Mean cross-entropy per target token (pad_in_loss: the lesson's, padding counted) of
    the features (B, U, E) of the steps not projected yet and the logits of those that were
    (`step_logits`: T entries, None where the step's features are in `feats`). `per`: divide
    the summed loss by this instead of the batch's own count of tokens (a process's share of
    a global batch, pipeline/training/distributed.py).

    On a CPU it is computed a few steps at a time, so the (B, T, V) logits never exist at
    once: the softmax and its gradient stay in cache, about twice as fast (BENCHMARKS.md).
    On a GPU (`one_call`, default: tgt on CUDA), where each slice and each free-running step's
    own cross-entropy cost kernels rather than cache, the steps not projected yet go in one
    projection and every step in one cross-entropy.
    """
    ignore = -100 if pad_in_loss else PAD
    if tgt.is_cuda if one_call is None else one_call:
        logits = project(out, feats, step_logits)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), tgt.reshape(-1),
                               ignore_index=ignore, label_smoothing=label_smoothing,
                               reduction="mean" if per is None else "sum")
        return loss if per is None else loss / per
    count = per if per is not None else tgt.numel() if pad_in_loss else (tgt != PAD).sum()
    steps = tgt.size(1)
    rows = max(1, LOSS_ROWS // tgt.size(0))  # steps per projection
    total = feats.new_zeros((), dtype=torch.float32)
    t = u = 0  # u: t's place among the steps in feats (those not projected yet)
    while t < steps:
        if step_logits[t] is not None:
            lg, end = step_logits[t], t + 1
        else:
            end = t + 1
            while end < min(steps, t + rows) and step_logits[end] is None:
                end += 1
            lg = out(feats[:, u:u + end - t]).flatten(0, 1)
            u += end - t
        total = total + F.cross_entropy(lg.float(), tgt[:, t:end].reshape(-1),
                                        ignore_index=ignore, reduction="sum",
                                        label_smoothing=label_smoothing)
        t = end
    return total / count


def project(out: torch.nn.Module, feats: torch.Tensor, step_logits: list[torch.Tensor | None]
            ) -> torch.Tensor:
    """(B, T, V): one projection of the steps not projected yet, each step in its place."""
    if all(lg is None for lg in step_logits):
        return out(feats)
    rest = iter(out(feats).unbind(1) if feats.size(1) else ())
    return torch.stack([lg if lg is not None else next(rest) for lg in step_logits], 1)
