"""The searches checked against the model they drive: what greedy and beam search report
about their hypotheses must be what the model's teacher-forced forward (the training path, all
steps at once) says of the same tokens. None of it depends on how well the model learned, so
the metrics gate requires it exactly where BLEU has the seeds' noise (pipeline/evaluation/gate/).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.data.batches import Split
from pipeline.data.vocab import EOS, PAD
from pipeline.decoding.search import OutputLimit, beam_search, greedy, length_penalty
from pipeline.models.decoder import Model

# The search decodes one step at a time on B*K rows; the teacher-forced forward runs all steps
# at once on B rows (the training path). Their kernels round differently, by about 1e-6 per
# token here (metrics/VARIANT.json's search_check.largest_gap says how far on each run); a
# search bug moves a hypothesis' log-probability by tenths or more.
SEARCH_TOLERANCE = 1e-3
# A model that masks the source padding (model.masks_padding) scores a sentence the same with
# more padding after it. The batches are sorted by length, so most sentences carry little
# padding of their own: a few columns more make an encoder that reads the padding (a bidirectional
# one starting its backward pass in it, say) show on nearly every sentence.
EXTRA_PADDING = 3


@torch.no_grad()
def forced_log_probs(model: Model, src: torch.Tensor, src_len: torch.Tensor,
                     hyps: list[list[int]], ended: list[bool]
                     ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each hypothesis (and its _eos_ where it `ended`), fed to the model's teacher-forced
    forward: the log-probability of each of its tokens, and the best log-probability at each
    of those steps."""
    model.eval()
    steps = [len(h) + int(e) for h, e in zip(hyps, ended)]
    tgt = torch.full((len(hyps), max(steps)), PAD, dtype=torch.long)
    for r, (h, e) in enumerate(zip(hyps, ended)):
        tgt[r, :len(h)] = torch.as_tensor(h, dtype=torch.long)
        if e:
            tgt[r, len(h)] = EOS
    tgt = tgt.to(src.device)
    logp = F.log_softmax(model(src, src_len, tgt=tgt, force=[True] * tgt.size(1)).float(), -1)
    chosen = logp.gather(2, tgt[:, :, None]).squeeze(2).cpu()
    best = logp.max(-1).values.cpu()
    return [(chosen[r, :n], best[r, :n]) for r, n in enumerate(steps)]


@torch.no_grad()
def search_check(model: Model, split: Split, batch_size: int, limit: OutputLimit,
                 device: torch.device, beam_size: int, alpha: float) -> dict[str, float]:
    """What greedy and beam search claim, checked against the model itself on every source
    of `split`: each greedy token is the forced forward's argmax at its step; beam search of
    width 1 (no length penalty) finds greedy's output; each best beam hypothesis carries
    the log-probability the forced forward gives its tokens, and that over its length
    penalty as its score; and, where the model masks the source padding, the forced forward
    gives greedy's tokens the same log-probabilities with EXTRA_PADDING more columns of it.
    None depends on how well the model learned, so the metrics gate requires every count to
    be 0: a search or masking bug that moves BLEU by less than the training noise shows
    here."""
    counts = {"sentences": 0, "greedy_not_argmax": 0, "beam1_not_greedy": 0,
              "beam_scores_off": 0}
    if model.masks_padding:
        counts["padding_moves_scores"] = 0
    gap = 0.0
    for batch in split.sorted(batch_size):
        max_len = limit(batch.src_len.tolist())
        b = batch.to(device)
        greedy_out, _ = greedy(model, b.src, b.src_len, max_len)
        ones = beam_search(model, b.src, b.src_len, max_len, 1, alpha=0.0)
        bests = [h[0] for h in beam_search(model, b.src, b.src_len, max_len, beam_size, alpha)]
        ended = [len(h) < n for h, n in zip(greedy_out, max_len)]
        forced_g = forced_log_probs(model, b.src, b.src_len, greedy_out, ended)
        if model.masks_padding:
            padded = F.pad(b.src, (0, EXTRA_PADDING), value=PAD)
            for (chosen, _), (again, _) in zip(forced_g, forced_log_probs(
                    model, padded, b.src_len, greedy_out, ended)):
                moved = float((chosen - again).abs().max()) if len(chosen) else 0.0
                counts["padding_moves_scores"] += moved > SEARCH_TOLERANCE
                gap = max(gap, moved)
        forced_b = forced_log_probs(model, b.src, b.src_len, [h.ids for h in bests],
                                    [len(h.ids) < n for h, n in zip(bests, max_len)])
        for g, one, best, (chosen, top), (logps, _) in zip(greedy_out, ones, bests, forced_g,
                                                           forced_b):
            counts["sentences"] += 1
            counts["greedy_not_argmax"] += bool((chosen < top - SEARCH_TOLERANCE).any())
            counts["beam1_not_greedy"] += one[0].ids != g
            total = float(logps.sum())
            off = max(abs(best.log_prob - total),
                      abs(best.score - total / length_penalty(len(logps), alpha)))
            counts["beam_scores_off"] += off > SEARCH_TOLERANCE
            gap = max(gap, off, float((top - chosen).max()))
    return {**counts, "largest_gap": gap}
