"""One GRU encoder-decoder whose options make the lesson's five variants.

- basic:            the lesson's seq2seq; the decoder feeds back its own argmax
- bidir:            bidirectional encoder; both directions' final states feed the decoder
- teacher_forcing:  the true previous word replaces the prediction with probability pr_force
- attention:        additive (Bahdanau) attention over the encoder states at every step
- all:              bidirectional + attention + teacher forcing

Tensors are batch-first: src (B, S), tgt (B, T), logits (B, T, V).

The decoder is a step with explicit state, driven from outside: `start(src, src_len)` encodes
and returns a `GRUState`; `step(prev_tokens, state)` returns the step's features (project them
with `model.out` for logits), the new state and the attention weights. Three drivers use it:
`features` (training's forcing loop, below), and greedy and beam search
(pipeline/decoding/search.py).

The forcing loop is computed the fast way wherever the result is the same: when every step's
input is the true previous word, the non-attention decoder runs as one GRU call over all
steps; steps whose input is known are projected to the vocabulary together, not one by one;
the training loss is taken a slice of steps at a time. tests/unit/test_fast_path.py holds this
against the lesson's step-by-step loop (tests/support/reference.py).

Nothing here reads a device value back to the host: the encoder finds each sentence's end
from `src_len` on the device (no packing, which needs the lengths on the CPU), and teacher
forcing can come as a tensor of per-step flags. That is what lets a training step be captured
in a CUDA graph (pipeline/training/cuda_graphs.py).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.data.vocab import BOS, PAD
from pipeline.errors import PipelineError
from pipeline.models.decoder import Force, project, sequence_loss
from pipeline.params import ModelConfig

# The encoder calls its GRU's weights one layer and direction at a time: on CUDA, cuDNN copies
# them into its own layout on every call (cheap at this size) and warns each time.
warnings.filterwarnings("ignore", message="RNN module weights are not part of single")

class GRUState(NamedTuple):
    """What the decoder carries from one step to the next; every tensor has the batch
    (or batch x beam) on dim 0, except `hidden`, which has it on dim 1."""

    hidden: torch.Tensor                    # (layers, B, E) the decoder GRU's state
    enc_out: torch.Tensor | None = None     # (B, S, H*dirs) encoder states (attention only)
    enc_proj: torch.Tensor | None = None    # (B, S, A) their attention projection
    src_pad: torch.Tensor | None = None     # (B, S) True on source padding (or None)

    def select(self, index: torch.Tensor) -> GRUState:
        """The state of the batch rows `index`, in that order (pipeline/models/decoder.py)."""
        return GRUState(self.hidden.index_select(1, index),
                     *(None if t is None else t.index_select(0, index) for t in self[1:]))


def _top(hidden: torch.Tensor) -> torch.Tensor:
    """The top layer's state (B, E) of hidden (layers, B, E). With one layer it is a view
    (squeeze): hidden[-1]'s backward is a kernel, in every decoder step of a training step."""
    return hidden.squeeze(0) if hidden.size(0) == 1 else hidden[-1]


def _gather_time(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[b, index[b, t]] for every b, t: x (B, S, H), index (B, S)."""
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


class Seq2Seq(nn.Module):
    def __init__(self, cfg: ModelConfig, src_vocab: int, tgt_vocab: int, emb_dim: int) -> None:
        super().__init__()
        if cfg.enc_layers != cfg.dec_layers:
            raise PipelineError(f"model: enc_layers ({cfg.enc_layers}) must equal dec_layers "
                                f"({cfg.dec_layers}): each encoder layer's state starts one "
                                "decoder layer")
        self.cfg = cfg
        dirs = 2 if cfg.bidirectional else 1
        enc_out = cfg.enc_hidden * dirs
        self.src_emb = nn.Embedding(src_vocab, emb_dim, padding_idx=PAD)
        self.tgt_emb = nn.Embedding(tgt_vocab, emb_dim, padding_idx=PAD)
        self.emb_drop = nn.Dropout(cfg.emb_dropout)
        self.encoder = nn.GRU(emb_dim, cfg.enc_hidden, cfg.enc_layers, batch_first=True,
                              dropout=cfg.enc_dropout if cfg.enc_layers > 1 else 0.0,
                              bidirectional=cfg.bidirectional)
        self.bridge = nn.Linear(enc_out, emb_dim)  # encoder final state -> decoder initial state
        self.decoder = nn.GRU(emb_dim, emb_dim, cfg.dec_layers, batch_first=True,
                              dropout=cfg.dec_dropout if cfg.dec_layers > 1 else 0.0)
        self.out_drop = nn.Dropout(cfg.out_dropout)
        self.out = nn.Linear(emb_dim, tgt_vocab)
        if cfg.tie_output:
            self.out.weight = self.tgt_emb.weight
        if cfg.attention:
            self.att_enc = nn.Linear(enc_out, cfg.att_hidden, bias=False)
            self.att_dec = nn.Linear(emb_dim, cfg.att_hidden)
            self.att_v = nn.Parameter(torch.randn(cfg.att_hidden) / cfg.att_hidden ** 0.5)
            self.att_combine = nn.Linear(emb_dim + enc_out, emb_dim)  # word + context -> input
            if cfg.att_output:  # the output also sees the context (Bahdanau et al., 2015)
                self.att_out = nn.Linear(emb_dim + enc_out, emb_dim)
        with torch.no_grad():  # random init's spread; the lesson kept PyTorch's N(0, 1)
            self.src_emb.weight.normal_(0, cfg.emb_std)
            self.tgt_emb.weight.normal_(0, cfg.emb_std)
            self.src_emb.weight[PAD] = 0
            self.tgt_emb.weight[PAD] = 0

    @property
    def attends(self) -> bool:
        """Whether `step` returns attention weights over the source."""
        return self.cfg.attention

    @property
    def masks_padding(self) -> bool:
        """Whether the bucket padding changes nothing the loss sees (the lesson runs the
        encoder through it)."""
        return self.cfg.mask_padding

    # --- encoder ------------------------------------------------------------------------------
    def encode(self, src: torch.Tensor, src_len: torch.Tensor
               ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Encoder states (B, S, H*dirs) and the decoder's initial state (layers, B, E). With
        mask_padding and no attention the states are None: nothing reads them, and each costs
        kernels in a training step."""
        emb = self.emb_drop(self.src_emb(src))
        if self.cfg.mask_padding:  # the final state is taken at each sentence's true end
            out, h = self._encode_to_ends(emb, src_len)
        else:  # the lesson: the GRU runs on through the padding
            out, h = self.encoder(emb)
        if self.cfg.bidirectional:  # (layers*2, B, H) -> (layers, B, 2H)
            layers, b = self.cfg.enc_layers, src.size(0)
            h = h.view(layers, 2, b, -1).permute(0, 2, 1, 3).reshape(layers, b, -1)
        return out, self.bridge(h)

    def _encode_to_ends(self, x: torch.Tensor, src_len: torch.Tensor
                        ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The encoder GRU (its own weights) one layer and direction at a time, each stopping
        at each sentence's last real token; what packing computes, without host-side lengths.

        The backward direction reads every sentence reversed in place (its padding stays at
        the end), so it starts at the sentence's last word, not in the padding.
        """
        b, s, _ = x.shape
        last = src_len - 1  # (B,) every sentence ends in _eos_: src_len >= 1
        real = rev = None  # what only the backward direction and attention need
        if self.cfg.bidirectional or self.cfg.attention:
            pos = torch.arange(s, device=x.device)
            real = pos[None, :] < src_len[:, None]                              # (B, S)
            if self.cfg.bidirectional:  # an involution
                rev = torch.where(real, last[:, None] - pos[None, :], pos[None, :])
        h0 = x.new_zeros(1, b, self.cfg.enc_hidden)
        gru, read = self.encoder, []  # every layer's and direction's states, in reading order
        for layer in range(self.cfg.enc_layers):
            outs = []
            for suffix in ("", "_reverse")[: 2 if self.cfg.bidirectional else 1]:
                weights = [getattr(gru, f"{w}_l{layer}{suffix}")
                           for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                inp = _gather_time(x, rev) if suffix else x
                out, _ = torch.gru(inp, h0, weights, True, 1, 0.0, self.training, False, True)
                read.append(out)
                outs.append(out)
            top = layer == self.cfg.enc_layers - 1
            if len(outs) == 2 and (not top or self.cfg.attention):  # states in reading order
                outs[1] = _gather_time(outs[1], rev)
            if not top:  # nn.GRU's dropout between layers
                # (on a contiguous copy: dropout's mask follows the memory layout)
                x = F.dropout(torch.cat(outs, -1), gru.dropout, self.training)
            elif self.cfg.attention:  # zeros past the end; only attention reads the states
                x = torch.cat(outs, -1) * real.unsqueeze(-1).to(x.dtype)
            else:  # nothing reads them
                x = None
        # Each direction's final state is at the sentence's last word in its reading order:
        # one gather for all of them, in nn.GRU's order (layer-major, forward first).
        states = torch.stack(read)                                              # (L*D, B, S, H)
        at_end = last.view(1, b, 1, 1).expand(len(read), b, 1, self.cfg.enc_hidden)
        return x, states.gather(2, at_end).squeeze(2)

    # --- the decoder step -----------------------------------------------------------------------
    def start(self, src: torch.Tensor, src_len: torch.Tensor) -> GRUState:
        """Encode a batch; the decoder's state before its first step."""
        enc_out, hidden = self.encode(src, src_len)
        if not self.cfg.attention:
            return GRUState(hidden)
        pad = None  # where attention must not look, made once for all steps
        if self.cfg.mask_padding:
            pad = torch.arange(src.size(1), device=src.device)[None, :] >= src_len[:, None]
        return GRUState(hidden, enc_out, self.att_enc(enc_out), pad)

    def attend(self, state: GRUState) -> tuple[torch.Tensor, torch.Tensor]:
        """Context (B, H*dirs) and weights (B, S) for the decoder's top-layer state."""
        u = torch.tanh(state.enc_proj + self.att_dec(_top(state.hidden)).unsqueeze(1))
        scores = u @ self.att_v
        if state.src_pad is not None:
            scores = scores.masked_fill(state.src_pad, float("-inf"))
        weights = F.softmax(scores, dim=1)
        return torch.bmm(weights.unsqueeze(1), state.enc_out).squeeze(1), weights

    def step(self, prev: torch.Tensor, state: GRUState
             ) -> tuple[torch.Tensor, GRUState, torch.Tensor | None]:
        """One decoder step from the previous tokens (B,): features (B, E) after the output
        dropout (`self.out(features)` are the logits), the new state, attention weights (B, S)
        or None."""
        x = self.tgt_emb(prev)
        weights = None
        if self.cfg.attention:
            ctx, weights = self.attend(state)
            x = self.att_combine(torch.cat([x, ctx], dim=1))
        out, hidden = self.decoder(x.unsqueeze(1), state.hidden)
        out = out.squeeze(1)  # a view: indexing [:, 0] would cost a kernel in every backward step
        if self.cfg.attention and self.cfg.att_output:
            out = torch.tanh(self.att_out(torch.cat([out, ctx], dim=1)))
        return self.out_drop(out), state._replace(hidden=hidden), weights

    # --- training's forcing loop --------------------------------------------------------------
    def features(self, state: GRUState, tgt: torch.Tensor, force: Force
                 ) -> tuple[torch.Tensor, list[torch.Tensor | None], torch.Tensor | None]:
        """Run the decoder for tgt's length: the features (B, U, E) of the U steps not
        projected on the way, in order; the logits (B, V) of the steps that were (None for the
        others, so T entries); attention weights (B, T, S). A projected step's features are
        not kept: their gradient would be a tensor of zeros added to every such step.

        force[t] says whether the input of step t+1 is tgt[:, t] (teacher forcing) rather than
        the argmax of step t. A host list lets forced steps skip their projection; a device
        tensor projects every step and picks on the device.
        """
        b, steps = tgt.shape
        bos = torch.full((b,), BOS, dtype=torch.long, device=tgt.device)
        on_host = not isinstance(force, torch.Tensor)
        if on_host and not self.cfg.attention and all(force[: steps - 1]):
            # Every input is known in advance: one GRU call over all steps.
            inputs = self.tgt_emb(torch.cat([bos[:, None], tgt[:, : steps - 1]], 1))
            dec_out, _ = self.decoder(inputs, state.hidden)
            return self.out_drop(dec_out), [None] * steps, None
        inp = bos
        feats: list[torch.Tensor] = []
        step_logits: list[torch.Tensor | None] = []
        attns: list[torch.Tensor] = []
        for t in range(steps):
            feat, state, w = self.step(inp, state)
            if w is not None:
                attns.append(w)
            if t == steps - 1 or (on_host and force[t]):
                feats.append(feat)
                step_logits.append(None)
                if t < steps - 1:
                    inp = tgt[:, t]
                continue
            # the next input may be this step's prediction: project this step now. argmax on
            # fp32: on bf16 it is 6x slower on this CPU
            lg = self.out(feat)
            step_logits.append(lg)
            pred = lg.float().argmax(-1)
            inp = pred if on_host else torch.where(force[t], tgt[:, t], pred)
        attn = torch.stack(attns, dim=1) if attns else None
        kept = feats[0].unsqueeze(1) if len(feats) == 1 else torch.stack(feats, dim=1)
        return kept, step_logits, attn

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor | None = None,
                force: Force | None = None, max_len: int | None = None,
                return_attention: bool = False):
        """Logits (B, T, V) for T = tgt's length, or max_len free-running steps (no tgt)."""
        if tgt is None:
            if max_len is None:
                raise ValueError("forward needs tgt or max_len")
            tgt = torch.full((src.size(0), max_len), PAD, dtype=torch.long, device=src.device)
            force = None
        if force is None:
            force = [False] * tgt.size(1)
        feats, step_logits, attn = self.features(self.start(src, src_len), tgt, force)
        logits = project(self.out, feats, step_logits)
        return (logits, attn) if return_attention else logits

    def loss(self, src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor, force: Force,
             pad_in_loss: bool = False, label_smoothing: float = 0.0,
             one_call: bool | None = None, per: float | None = None) -> torch.Tensor:
        """Mean cross-entropy per target token of teacher forcing by `force`
        (pipeline/models/decoder.py's sequence_loss says how, and what the options do)."""
        feats, step_logits, _ = self.features(self.start(src, src_len), tgt, force)
        return sequence_loss(self.out, feats, step_logits, tgt, pad_in_loss, label_smoothing,
                             one_call, per)
