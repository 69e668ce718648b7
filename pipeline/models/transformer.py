"""A small Transformer encoder-decoder (Vaswani et al., 2017), the sixth variant: the
architecture that followed Bahdanau attention, on the same data, decoder step and search.

- Pre-norm (each sublayer reads a LayerNorm of its input and adds to the residual stream;
  a final LayerNorm on each side): it trains stably from the first step without the careful
  warm-up post-norm needs, which matters on 7.7k pairs and few epochs (Xiong et al., 2020;
  JoeyNMT's and fairseq's `normalize_before`).
- Sinusoidal positions: they have no maximum, so whole sentences of any length translate,
  as with the GRU variants; a learned table would stop at the longest training sentence.
- The model size is the embedding size (fastText's 300), so the vectors initialize both
  embeddings as for the GRU variants, and the target embedding is the output layer (tied).

It implements pipeline/models/decoder.py's protocol: `start` encodes and precomputes every decoder
layer's keys and values of the source; `step` runs one position, caching its own keys and
values per layer in the state, so a step attends over the cached prefix and never recomputes
it; `select` reorders all of it for beam search. Training runs the whole target at once under a
causal mask (teacher forcing is what a Transformer trains with): `force` is accepted for the
training loop's sake and ignored. tests/unit/test_transformer.py holds the step against the full
forward.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.data.vocab import BOS, PAD
from pipeline.errors import PipelineError
from pipeline.models.decoder import sequence_loss
from pipeline.params import ModelConfig


class TransformerState(NamedTuple):
    """The decoder's state: per decoder layer (dim 0), the keys and values of the steps so
    far (t of them) and of the source; batch rows on dim 1 (dim 0 for the mask)."""

    self_k: torch.Tensor    # (L, B, H, t, D/H)
    self_v: torch.Tensor
    cross_k: torch.Tensor   # (L, B, H, S, D/H)
    cross_v: torch.Tensor
    src_mask: torch.Tensor  # (B, S) True on real source tokens

    def select(self, index: torch.Tensor) -> TransformerState:
        return TransformerState(*(t.index_select(1, index) for t in self[:4]),
                      self.src_mask.index_select(0, index))


def positions(start: int, length: int, dim: int, device: torch.device) -> torch.Tensor:
    """Sinusoidal position encodings (length, dim) for positions start, start+1, ..."""
    pos = torch.arange(start, start + length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32)
                     * (-math.log(10000.0) / dim))
    enc = torch.zeros(length, dim, device=device)
    enc[:, 0::2] = torch.sin(pos * freq)
    enc[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return enc


class MultiHead(nn.Module):
    """Multi-head scaled dot-product attention, written out so that it also returns the
    weights (the heatmaps) and takes keys and values computed earlier (the cache)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.o = nn.Linear(dim, dim)

    def split(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, H, T, D/H)
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.split(k), self.split(v)

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, D) attends over k, v (B, H, S, D/H) where `mask` (broadcast to
        (B, H, T, S)) is True; the output (B, T, D) and the weights (B, H, T, S)."""
        q = self.split(self.q(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = F.softmax(scores, dim=-1)
        out = F.dropout(weights, self.dropout, self.training) @ v
        return self.o(out.transpose(1, 2).flatten(2)), weights


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, dim))


class EncoderLayer(nn.Module):
    def __init__(self, dim: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.att = MultiHead(dim, cfg.heads, cfg.dropout)
        self.ff = FeedForward(dim, cfg.ff_size, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.att(h, *self.att.keys_values(h), mask)[0])
        return x + self.drop(self.ff(self.norm2(x)))


class DecoderLayer(nn.Module):
    def __init__(self, dim: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(dim) for _ in range(3))
        self.self_att = MultiHead(dim, cfg.heads, cfg.dropout)
        self.cross_att = MultiHead(dim, cfg.heads, cfg.dropout)
        self.ff = FeedForward(dim, cfg.ff_size, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None,
                self_mask: torch.Tensor | None, cross_k: torch.Tensor, cross_v: torch.Tensor,
                src_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, T, D) attends over the keys and values of `past` (cached steps, or None)
        followed by its own; returns x, the cross-attention weights, and the keys and values
        of every position so far (the new cache)."""
        h = self.norm1(x)  # once: it feeds both the queries and this layer's keys and values
        k, v = self.self_att.keys_values(h)
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        x = x + self.drop(self.self_att(h, k, v, self_mask)[0])
        ctx, weights = self.cross_att(self.norm2(x), cross_k, cross_v, src_mask)
        x = x + self.drop(ctx)
        return x + self.drop(self.ff(self.norm3(x))), weights, k, v


class Transformer(nn.Module):
    attends = True  # `step` returns the last layer's attention weights over the source
    masks_padding = True  # attention masks the source padding, the loss the target's

    def __init__(self, cfg: ModelConfig, src_vocab: int, tgt_vocab: int, emb_dim: int) -> None:
        super().__init__()
        if emb_dim % cfg.heads:
            raise PipelineError(f"model.heads: {cfg.heads} does not divide the model size "
                                f"{emb_dim} (the embedding size, embeddings.dim)")
        self.cfg, self.dim = cfg, emb_dim
        self.src_emb = nn.Embedding(src_vocab, emb_dim, padding_idx=PAD)
        if cfg.share_embeddings:  # a piece is one vector on both sides, so a name or number
            # the encoder reads is the very row the output layer scores: copying is learnable
            if src_vocab != tgt_vocab:
                raise PipelineError(
                    f"model.share_embeddings: the vocabularies differ ({src_vocab:,} and "
                    f"{tgt_vocab:,} units); it needs one joint vocabulary (train.units: pieces "
                    "with subwords.joint: true)")
            self.tgt_emb = self.src_emb
        else:
            self.tgt_emb = nn.Embedding(tgt_vocab, emb_dim, padding_idx=PAD)
        self.emb_drop = nn.Dropout(cfg.emb_dropout)
        self.enc_layers = nn.ModuleList(EncoderLayer(emb_dim, cfg)
                                        for _ in range(cfg.enc_layers))
        self.dec_layers = nn.ModuleList(DecoderLayer(emb_dim, cfg)
                                        for _ in range(cfg.dec_layers))
        self.enc_norm, self.dec_norm = nn.LayerNorm(emb_dim), nn.LayerNorm(emb_dim)
        self.out = nn.Linear(emb_dim, tgt_vocab)
        if cfg.tie_output:
            self.out.weight = self.tgt_emb.weight
        with torch.no_grad():
            self.src_emb.weight.normal_(0, cfg.emb_std)
            self.tgt_emb.weight.normal_(0, cfg.emb_std)
            self.src_emb.weight[PAD] = 0
            self.tgt_emb.weight[PAD] = 0

    def embed(self, emb: nn.Embedding, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Embeddings scaled by sqrt(D) (Vaswani et al.) plus the positions from `start`."""
        pos = positions(start, ids.size(1), self.dim, ids.device)
        return self.emb_drop(emb(ids) * math.sqrt(self.dim) + pos)

    def start(self, src: torch.Tensor, src_len: torch.Tensor) -> TransformerState:
        """Encode; each decoder layer's keys and values of the source, and an empty cache."""
        mask = torch.arange(src.size(1), device=src.device)[None, :] < src_len[:, None]
        x = self.embed(self.src_emb, src)
        for layer in self.enc_layers:
            x = layer(x, mask[:, None, None, :])
        memory = self.enc_norm(x)
        kv = [layer.cross_att.keys_values(memory) for layer in self.dec_layers]
        cross_k, cross_v = torch.stack([k for k, _ in kv]), torch.stack([v for _, v in kv])
        empty = cross_k[:, :, :, :0]
        return TransformerState(empty, empty, cross_k, cross_v, mask)

    def step(self, prev: torch.Tensor, state: TransformerState
             ) -> tuple[torch.Tensor, TransformerState, torch.Tensor]:
        """One position from the previous tokens (B,): features (B, D), the state with this
        position's keys and values cached, and the last layer's attention over the source
        (B, S), averaged over its heads."""
        x = self.embed(self.tgt_emb, prev[:, None], start=state.self_k.size(3))
        src_mask = state.src_mask[:, None, None, :]
        ks, vs = [], []
        for i, layer in enumerate(self.dec_layers):
            x, weights, k, v = layer(x, (state.self_k[i], state.self_v[i]), None,
                                     state.cross_k[i], state.cross_v[i], src_mask)
            ks.append(k)
            vs.append(v)
        new = state._replace(self_k=torch.stack(ks), self_v=torch.stack(vs))
        return self.dec_norm(x)[:, 0], new, weights.mean(1)[:, 0]

    def decode(self, state: TransformerState, tgt: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing over the whole target at once: the features (B, T, D) of every
        step, each seeing the true previous words only (a causal mask), and the last layer's
        attention (B, T, S)."""
        b, steps = tgt.shape
        bos = torch.full((b, 1), BOS, dtype=torch.long, device=tgt.device)
        x = self.embed(self.tgt_emb, torch.cat([bos, tgt[:, : steps - 1]], 1))
        causal = torch.ones(steps, steps, dtype=torch.bool, device=tgt.device).tril()
        src_mask = state.src_mask[:, None, None, :]
        for i, layer in enumerate(self.dec_layers):
            x, weights, _, _ = layer(x, None, causal, state.cross_k[i], state.cross_v[i],
                                     src_mask)
        return self.dec_norm(x), weights.mean(1)

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor | None = None,
                force: object = None, max_len: int | None = None,
                return_attention: bool = False):
        """Logits (B, T, V): teacher-forced over tgt, or max_len free-running (greedy) steps
        without tgt (the lesson's validation loss). `force` is ignored (always forced)."""
        state = self.start(src, src_len)
        if tgt is not None:
            feats, attn = self.decode(state, tgt)
            logits = self.out(feats)
        else:
            if max_len is None:
                raise ValueError("forward needs tgt or max_len")
            inp = torch.full((src.size(0),), BOS, dtype=torch.long, device=src.device)
            steps, attns = [], []
            for _ in range(max_len):
                feat, state, w = self.step(inp, state)
                steps.append(self.out(feat))
                attns.append(w)
                inp = steps[-1].float().argmax(-1)
            logits, attn = torch.stack(steps, 1), torch.stack(attns, 1)
        return (logits, attn) if return_attention else logits

    def loss(self, src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor, force: object,
             pad_in_loss: bool = False, label_smoothing: float = 0.0,
             one_call: bool | None = None, per: float | None = None) -> torch.Tensor:
        """Mean cross-entropy per target token, teacher-forced whatever `force` says
        (pipeline/models/decoder.py's sequence_loss: how, and what the options do)."""
        feats, _ = self.decode(self.start(src, src_len), tgt)
        return sequence_loss(self.out, feats, [None] * tgt.size(1), tgt, pad_in_loss,
                             label_smoothing, one_call, per)
