"""The yardstick: the same model computed the way the lesson wrote it.

A Python loop over decoder steps, the output layer and the argmax at every step, fp32, and
the default Adam. It runs on a `pipeline.model.Seq2Seq`'s own modules and parameters, so the
benchmark compares two ways of computing one model, and the tests check that the project's
way gives the same outputs and gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.model import Seq2Seq
from pipeline.vocab import BOS


def reference_forward(m: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor,
                      force: list[bool]) -> torch.Tensor:
    """Logits (B, T, V), one decoder step and one output projection at a time."""
    enc_out, h = m.encode(src, src_len)
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


def reference_step(m: Seq2Seq, opt: torch.optim.Optimizer, src: torch.Tensor,
                   src_len: torch.Tensor, tgt: torch.Tensor, force: list[bool]) -> float:
    logits = reference_forward(m, src, src_len, tgt, force)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt.reshape(-1), ignore_index=1)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()
