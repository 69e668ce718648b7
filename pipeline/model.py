"""One GRU encoder-decoder whose options make the lesson's five variants.

- basic:            the lesson's seq2seq; the decoder feeds back its own argmax
- bidir:            bidirectional encoder; both directions' final states feed the decoder
- teacher_forcing:  the true previous word replaces the prediction with probability pr_force
- attention:        additive (Bahdanau) attention over the encoder states at every step
- all:              bidirectional + attention + teacher forcing

Tensors are batch-first: src (B, S), tgt (B, T), logits (B, T, V).

The decoder is computed the fast way wherever the result is the same: when every step's input
is the true previous word, the non-attention decoder runs as one GRU call over all steps; steps
whose input is known are projected to the vocabulary together, not one by one; the training
loss is taken a slice of steps at a time. Only a free-running step (its argmax is the next
input) is projected on its own, as it happens. tests/test_fast_path.py holds this against the
lesson's step-by-step loop (benchmarks/reference.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from pipeline.files import PipelineError
from pipeline.params import ModelConfig
from pipeline.vocab import BOS, EOS, PAD

LOSS_ROWS = 256  # target tokens per output projection in Seq2Seq.loss (fastest measured)


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

    # ----------------------------------------------------------------------------------------
    def encode(self, src: torch.Tensor, src_len: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder states (B, S, H*dirs) and the decoder's initial state (layers, B, E)."""
        emb = self.emb_drop(self.src_emb(src))
        if self.cfg.mask_padding:  # the final state is taken at each sentence's true end
            packed = pack_padded_sequence(emb, src_len.cpu(), batch_first=True,
                                          enforce_sorted=False)
            out, h = self.encoder(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        else:  # the lesson: the GRU runs on through the padding
            out, h = self.encoder(emb)
        if self.cfg.bidirectional:  # (layers*2, B, H) -> (layers, B, 2H)
            layers, b = self.cfg.enc_layers, src.size(0)
            h = h.view(layers, 2, b, -1).permute(0, 2, 1, 3).reshape(layers, b, -1)
        return out, self.bridge(h)

    def attend(self, enc_proj: torch.Tensor, enc_out: torch.Tensor, src_mask: torch.Tensor | None,
               h_top: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Context (B, H*dirs) and weights (B, S) for the decoder's top-layer state h_top."""
        u = torch.tanh(enc_proj + self.att_dec(h_top).unsqueeze(1))
        scores = u @ self.att_v
        if src_mask is not None:
            scores = scores.masked_fill(~src_mask, float("-inf"))
        weights = F.softmax(scores, dim=1)
        return torch.bmm(weights.unsqueeze(1), enc_out).squeeze(1), weights

    # ----------------------------------------------------------------------------------------
    def decode(self, src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor | None = None,
               force: list[bool] | None = None, max_len: int | None = None,
               stop_at_eos: bool = False):
        """Decoder features after output dropout (B, T, E), the logits (B, V) of the steps that
        were projected on the way (None for the others), and attention weights (B, T, S).

        force[t] says whether the input of step t+1 is tgt[:, t] (teacher forcing) rather than
        the argmax of step t. Without tgt every step feeds back its own argmax.
        """
        b = src.size(0)
        steps = tgt.size(1) if tgt is not None else max_len
        if steps is None:
            raise ValueError("decode needs tgt or max_len")
        if force is None or tgt is None:
            force = [False] * steps
        enc_out, h = self.encode(src, src_len)
        src_mask = None
        if self.cfg.mask_padding:
            src_mask = torch.arange(src.size(1), device=src.device)[None, :] < src_len[:, None]
        bos = torch.full((b, 1), BOS, dtype=torch.long, device=src.device)

        if not self.cfg.attention and tgt is not None and all(force[: steps - 1]):
            # Every input is known in advance: one GRU call over all steps.
            dec_out, _ = self.decoder(self.tgt_emb(torch.cat([bos, tgt[:, : steps - 1]], 1)), h)
            return self.out_drop(dec_out), [None] * steps, None

        enc_proj = self.att_enc(enc_out) if self.cfg.attention else None
        inp = bos[:, 0]
        feats: list[torch.Tensor] = []
        step_logits: list[torch.Tensor | None] = []
        attns: list[torch.Tensor] = []
        done = torch.zeros(b, dtype=torch.bool, device=src.device)
        for t in range(steps):
            x = self.tgt_emb(inp)
            if self.cfg.attention:
                ctx, w = self.attend(enc_proj, enc_out, src_mask, h[-1])
                x = self.att_combine(torch.cat([x, ctx], dim=1))
                attns.append(w)
            out, h = self.decoder(x.unsqueeze(1), h)
            out = out[:, 0]
            if self.cfg.attention and self.cfg.att_output:
                out = torch.tanh(self.att_out(torch.cat([out, ctx], dim=1)))
            feats.append(self.out_drop(out))
            if t == steps - 1 or (tgt is not None and force[t]):
                step_logits.append(None)
                if t < steps - 1:
                    inp = tgt[:, t]
                continue
            # the next input is this step's prediction: project this step now. argmax on fp32:
            # on bf16 it is 6x slower on this CPU
            lg = self.out(feats[-1])
            step_logits.append(lg)
            inp = lg.float().argmax(-1)
            if stop_at_eos:
                done |= inp == EOS
                if bool(done.all()):
                    break
        attn = torch.stack(attns, dim=1) if attns else None
        return torch.stack(feats, dim=1), step_logits, attn

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor | None = None,
                force: list[bool] | None = None, max_len: int | None = None,
                return_attention: bool = False, stop_at_eos: bool = False):
        """Logits (B, T, V) for T = tgt's length (or max_len, or fewer with stop_at_eos);
        the arguments are decode's."""
        feats, step_logits, attn = self.decode(src, src_len, tgt, force, max_len, stop_at_eos)
        todo = [t for t, lg in enumerate(step_logits) if lg is None]
        if len(todo) == len(step_logits):
            logits = self.out(feats)  # one projection for all steps
        else:  # project the steps not projected yet, then put every step in its place
            rest = iter(self.out(feats[:, todo]).unbind(1) if todo else ())
            logits = torch.stack([lg if lg is not None else next(rest) for lg in step_logits], 1)
        return (logits, attn) if return_attention else logits

    def loss(self, src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor,
             force: list[bool], pad_in_loss: bool = False, label_smoothing: float = 0.0
             ) -> torch.Tensor:
        """Mean cross-entropy per target token (pad_in_loss: the lesson's, padding counted).

        Computed a few steps at a time, so the (B, T, V) logits never exist at once: the
        softmax and its gradient stay in cache, about twice as fast on a CPU (BENCHMARKS.md).
        """
        feats, step_logits, _ = self.decode(src, src_len, tgt, force)
        ignore = -100 if pad_in_loss else PAD
        rows = max(1, LOSS_ROWS // tgt.size(0))  # steps per projection
        total = feats.new_zeros((), dtype=torch.float32)
        t, steps = 0, tgt.size(1)
        while t < steps:
            if step_logits[t] is not None:
                lg, end = step_logits[t], t + 1
            else:
                end = t + 1
                while end < min(steps, t + rows) and step_logits[end] is None:
                    end += 1
                lg = self.out(feats[:, t:end]).flatten(0, 1)
            total = total + F.cross_entropy(lg.float(), tgt[:, t:end].reshape(-1),
                                            ignore_index=ignore, reduction="sum",
                                            label_smoothing=label_smoothing)
            t = end
        return total / (tgt.numel() if pad_in_loss else (tgt != PAD).sum())


def build_model(cfg: ModelConfig, src_vocab: int, tgt_vocab: int, emb_dim: int,
                src_vectors: torch.Tensor | None = None, tgt_vectors: torch.Tensor | None = None,
                ) -> Seq2Seq:
    """The model, with embedding rows taken from pretrained vectors where they have one.

    Vectors are scaled so that their spread matches the random init's (model.emb_std), as the
    lesson did with its x3 on fastText vectors; rows of zeros (no vector) keep the random init.
    """
    model = Seq2Seq(cfg, src_vocab, tgt_vocab, emb_dim)
    for emb, vectors in ((model.src_emb, src_vectors), (model.tgt_emb, tgt_vectors)):
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
