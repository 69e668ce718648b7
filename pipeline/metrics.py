"""Evaluation metrics: the lesson's validation loss, ours, and sacreBLEU."""

from __future__ import annotations

import sacrebleu
import torch

from pipeline.data import Split
from pipeline.model import Seq2Seq
from pipeline.train import seq_loss


@torch.no_grad()
def lesson_val_loss(model: Seq2Seq, valid: Split, batch_size: int, device: torch.device) -> float:
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
