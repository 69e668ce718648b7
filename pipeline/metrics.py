"""Evaluation metrics: the lesson's validation loss, ours, and sacreBLEU's BLEU and chrF."""

from __future__ import annotations

import sacrebleu
import torch

from pipeline.data import Split
from pipeline.decoder import Model
from pipeline.search import OutputLimit, translate_split
from pipeline.train import seq_loss
from pipeline.vocab import ids_to_tokens


@torch.no_grad()
def lesson_val_loss(model: Model, valid: Split, batch_size: int, device: torch.device) -> float:
    """The lesson's validation loss: free-running decoding for the target's length, and
    cross-entropy over every target position, padding included, averaged over batches."""
    model.eval()
    total, batches = torch.zeros((), device=device), 0
    for batch in valid.sorted(batch_size):
        b = batch.to(device)
        logits = model(b.src, b.src_len, max_len=b.tgt.size(1))
        total += seq_loss(logits, b.tgt, pad_in_loss=True)
        batches += 1
    return (total / batches).item()  # one read from the device, at the end


def bleu(hypotheses: list[str], references: list[str]) -> tuple[float, str]:
    """Corpus BLEU of space-joined tokens (tokenize='none'), and sacreBLEU's signature."""
    metric = sacrebleu.BLEU(tokenize="none")
    score = metric.corpus_score(hypotheses, [references])
    return float(score.score), str(metric.get_signature())


def chrf(hypotheses: list[str], references: list[str]) -> tuple[float, str]:
    """Corpus chrF (sacreBLEU's defaults: character 6-grams, beta 2), and its signature. It
    scores characters, so it is steadier than BLEU on short sentences (JoeyNMT and Marian
    offer it for that)."""
    metric = sacrebleu.CHRF()
    score = metric.corpus_score(hypotheses, [references])
    return float(score.score), str(metric.get_signature())


def translate_text(model: Model, whole: Split, vocab_en: list[str], batch_size: int,
                   limit: OutputLimit, device: torch.device, beam_size: int = 1,
                   alpha: float = 0.0) -> list[str]:
    """Every source of the split translated (greedy, or beam search), as space-joined tokens."""
    ids = translate_split(model, whole, batch_size, limit, device, beam_size, alpha)
    return [" ".join(ids_to_tokens(h, vocab_en)) for h in ids]


def greedy_scores(model: Model, whole: Split, refs: list[str], vocab_en: list[str],
                  batch_size: int, limit: OutputLimit, device: torch.device
                  ) -> dict[str, float]:
    """val_bleu and val_chrf as the evaluate stage defines them (greedy search over the whole
    validation sources, data.whole_validation): what train.keep reads after every epoch."""
    hyps = translate_text(model, whole, vocab_en, batch_size, limit, device)
    return {"val_bleu": bleu(hyps, refs)[0], "val_chrf": chrf(hyps, refs)[0]}


LENGTH_BUCKETS = ((1, 5), (6, 10), (11, 15), (16, 20), (21, 30), (31, 10**9))


def bleu_by_length(src_lengths: list[int], outputs: dict[str, list[str]],
                   references: list[str]) -> dict[str, dict]:
    """BLEU of each search's outputs on the sentences whose source has 1-5, 6-10, ... tokens
    (buckets with no sentence left out): how quality falls with length."""
    out = {}
    for lo, hi in LENGTH_BUCKETS:
        rows = [i for i, n in enumerate(src_lengths) if lo <= n <= hi]
        if not rows:
            continue
        name = f"{lo}-{hi}" if hi < 10**9 else f"{lo}+"
        out[name] = {"sentences": len(rows), **{
            search: round(bleu([hyps[i] for i in rows], [references[i] for i in rows])[0], 2)
            for search, hyps in outputs.items()}}
    return out
