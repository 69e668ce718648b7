"""Evaluation metrics: the lesson's validation loss, ours, and sacreBLEU's BLEU and chrF.

BLEU and chrF come two ways. The primary figures score the text a user reads (what
`fren-nmt translate` prints: detokenized, truecased) against the original English sentences
with sacreBLEU's defaults (13a tokenization, cased), the BLEU everyone else reports. The
lesson-faithful figures (`*_tok`) score the lowercased model tokens against the tokenized
references, sacreBLEU with tokenize='none', as the lesson's BLEU on tokens did.
"""

from __future__ import annotations

from dataclasses import dataclass

import sacrebleu
import torch
import torch.nn.functional as F

from pipeline.data import Split, WholeSet
from pipeline.decoder import Model
from pipeline.search import OutputLimit, beam_search, greedy, length_penalty, translate_split
from pipeline.train import seq_loss
from pipeline.translate import to_text
from pipeline.vocab import EOS, PAD, ids_to_tokens


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


def bleu(hypotheses: list[str], references: list[str], tokenized: bool = False
         ) -> tuple[float, str]:
    """Corpus BLEU and sacreBLEU's signature: of text with sacreBLEU's defaults (13a, cased),
    or of space-joined tokens as they are (tokenized: tokenize='none')."""
    metric = sacrebleu.BLEU(tokenize="none") if tokenized else sacrebleu.BLEU()
    score = metric.corpus_score(hypotheses, [references])
    return float(score.score), str(metric.get_signature())


def chrf(hypotheses: list[str], references: list[str]) -> tuple[float, str]:
    """Corpus chrF (sacreBLEU's defaults: character 6-grams, beta 2), and its signature. It
    scores characters, so it is steadier than BLEU on short sentences (JoeyNMT and Marian
    offer it for that)."""
    metric = sacrebleu.CHRF()
    score = metric.corpus_score(hypotheses, [references])
    return float(score.score), str(metric.get_signature())


def translate_tokens(model: Model, whole: Split, vocab_en: list[str], batch_size: int,
                     limit: OutputLimit, device: torch.device, beam_size: int = 1,
                     alpha: float = 0.0) -> list[list[str]]:
    """Every source of the split translated (greedy, or beam search), as output tokens."""
    ids = translate_split(model, whole, batch_size, limit, device, beam_size, alpha)
    return [ids_to_tokens(h, vocab_en) for h in ids]


@dataclass
class Outputs:
    """One search's translations of a set: the tokens joined (the lesson's BLEU) and the text
    translate prints (standard BLEU)."""

    tokens: list[str]
    text: list[str]


def outputs_of(hypotheses: list[list[str]], tc) -> Outputs:  # noqa: ANN001 - MosesTruecaser
    return Outputs([" ".join(h) for h in hypotheses], [to_text(h, tc) for h in hypotheses])


def scores(out: Outputs, whole: WholeSet, suffix: str = ""
           ) -> tuple[dict[str, float], dict[str, str]]:
    """bleu, chrf (the text against the original English) and bleu_tok, chrf_tok (the tokens
    against the tokenized references), with `suffix` after each name ("_beam"); and
    sacreBLEU's signature of each kind of figure, from the same scoring (a metric holds its
    signature once it has scored)."""
    b, b_sig = bleu(out.text, whole.text_refs)
    c, c_sig = chrf(out.text, whole.text_refs)
    bt, bt_sig = bleu(out.tokens, whole.token_refs, tokenized=True)
    values = {f"bleu{suffix}": b, f"chrf{suffix}": c, f"bleu_tok{suffix}": bt,
              f"chrf_tok{suffix}": chrf(out.tokens, whole.token_refs)[0]}
    return values, {"bleu_signature": b_sig, "chrf_signature": c_sig,
                    "bleu_tok_signature": bt_sig}


def greedy_scores(model: Model, whole: WholeSet, vocab_en: list[str], tc,  # noqa: ANN001
                  batch_size: int, limit: OutputLimit, device: torch.device
                  ) -> dict[str, float]:
    """val_bleu and val_chrf as the evaluate stage defines them (greedy search over the whole
    validation sources, standard BLEU on the printed text): what train.keep reads after every
    epoch."""
    hyps = translate_tokens(model, whole.split, vocab_en, batch_size, limit, device)
    s, _ = scores(outputs_of(hyps, tc), whole)
    return {"val_bleu": s["bleu"], "val_chrf": s["chrf"]}


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


# The search decodes one step at a time on B*K rows; the teacher-forced forward runs all steps
# at once on B rows (the training path). Their kernels round differently, by about 1e-6 per
# token here (metrics/VARIANT.json's search_check.largest_gap says how far on each run); a
# search bug moves a hypothesis' log-probability by tenths or more.
SEARCH_TOLERANCE = 1e-3


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
    width 1 (no length penalty) finds greedy's output; and each best beam hypothesis carries
    the log-probability the forced forward gives its tokens, and that over its length
    penalty as its score. None depends on how well the model learned, so the metrics gate
    requires every count to be 0: a search bug that moves BLEU by less than the training
    noise shows here."""
    counts = {"sentences": 0, "greedy_not_argmax": 0, "beam1_not_greedy": 0,
              "beam_scores_off": 0}
    gap = 0.0
    for batch in split.sorted(batch_size):
        max_len = limit(batch.src_len.tolist())
        b = batch.to(device)
        greedy_out, _ = greedy(model, b.src, b.src_len, max_len)
        ones = beam_search(model, b.src, b.src_len, max_len, 1)
        bests = [h[0] for h in beam_search(model, b.src, b.src_len, max_len, beam_size, alpha)]
        forced_g = forced_log_probs(model, b.src, b.src_len, greedy_out,
                                    [len(h) < n for h, n in zip(greedy_out, max_len)])
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
