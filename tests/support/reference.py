"""The yardstick: the same model computed the way the lesson wrote it.

A Python loop over decoder steps, the output layer and the argmax at every step, fp32, and
the default Adam. It runs on a `pipeline.models.gru.Seq2Seq`'s own modules and parameters, so the
benchmark compares two ways of computing one model, and the tests check that the project's
way gives the same outputs and gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from pipeline.data.vocab import BOS
from pipeline.models.gru import Seq2Seq


def reference_encode(m: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder the usual way: one nn.GRU call, on a packed batch when padding is masked."""
    emb = m.emb_drop(m.src_emb(src))
    if m.cfg.mask_padding:
        packed = pack_padded_sequence(emb, src_len.cpu(), batch_first=True,
                                      enforce_sorted=False)
        out, h = m.encoder(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
    else:
        out, h = m.encoder(emb)
    if m.cfg.bidirectional:
        layers, b = m.cfg.enc_layers, src.size(0)
        h = h.view(layers, 2, b, -1).permute(0, 2, 1, 3).reshape(layers, b, -1)
    return out, m.bridge(h)


def reference_forward(m: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor,
                      force: list[bool]) -> torch.Tensor:
    """Logits (B, T, V), one decoder step and one output projection at a time."""
    enc_out, h = reference_encode(m, src, src_len)
    mask = None
    if m.cfg.mask_padding:
        mask = torch.arange(src.size(1), device=src.device)[None, :] < src_len[:, None]
    enc_proj = m.att_enc(enc_out) if m.cfg.attention else None
    dec_inp = torch.full((src.size(0),), BOS, dtype=torch.long, device=src.device)
    res = []
    for i in range(tgt.size(1)):
        x = m.tgt_emb(dec_inp)
        if m.cfg.attention:
            u = torch.tanh(enc_proj + m.att_dec(h[-1]).unsqueeze(1))
            scores = u @ m.att_v
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            a = F.softmax(scores, dim=1)
            ctx = (a.unsqueeze(2) * enc_out).sum(1)
            x = m.att_combine(torch.cat([x, ctx], 1))
        outp, h = m.decoder(x.unsqueeze(1), h)
        outp = outp[:, 0]
        if m.cfg.attention and m.cfg.att_output:
            outp = torch.tanh(m.att_out(torch.cat([outp, ctx], 1)))
        outp = m.out(m.out_drop(outp))
        res.append(outp)
        dec_inp = outp.data.max(1)[1]
        if force[i]:
            dec_inp = tgt[:, i]
    return torch.stack(res, dim=1)


def reference_loss(m: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor,
                   force: list[bool]) -> torch.Tensor:
    logits = reference_forward(m, src, src_len, tgt, force)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt.reshape(-1), ignore_index=1)


def reference_step(m: Seq2Seq, opt: torch.optim.Optimizer, src: torch.Tensor,
                   src_len: torch.Tensor, tgt: torch.Tensor, force: list[bool]) -> float:
    loss = reference_loss(m, src, src_len, tgt, force)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()
