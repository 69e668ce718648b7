"""Evaluation metrics: the lesson's validation loss, ours, and sacreBLEU's BLEU and chrF.

BLEU and chrF come two ways. The primary figures score the text a user reads (what
`fren-nmt translate` prints: detokenized, truecased) against the original English sentences
with sacreBLEU's defaults (13a tokenization, cased), the BLEU everyone else reports. The
lesson-faithful figures (`*_tok`) score the lowercased model tokens against the tokenized
references, sacreBLEU with tokenize='none', as the lesson's BLEU on tokens did.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sacrebleu
import torch
import torch.nn.functional as F

from pipeline.data.batches import Split, WholeSet
from pipeline.data.units import Pieces, Words
from pipeline.data.vocab import PAD, ids_to_tokens
from pipeline.decoding.search import OutputLimit, translate_split
from pipeline.models.decoder import Model
from pipeline.runtime import autocast

# Which way each metric improves: the gate's verdicts (WORSE or BETTER) and train.keep's
# choice of epoch read these.
HIGHER_IS_BETTER = {f"{s}_{m}{b}" for s in ("val", "test", "outside") for m in ("bleu", "chrf")
                    for b in ("", "_beam")} | {"val_bleu_tok", "val_bleu_tok_beam"}
LOWER_IS_BETTER = {"val_loss", "val_loss_lesson", "test_loss"}


def seq_loss(logits: torch.Tensor, tgt: torch.Tensor, pad_in_loss: bool = False) -> torch.Tensor:
    """Cross-entropy per target token. pad_in_loss=True is the lesson's loss: logits are padded
    with zeros or cut to the target's length and every position counts, padding included."""
    t = tgt.size(1)
    if logits.size(1) < t:
        logits = F.pad(logits, (0, 0, 0, t - logits.size(1)))
    logits = logits[:, :t]
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), tgt.reshape(-1),
                           ignore_index=-100 if pad_in_loss else PAD)


@torch.no_grad()
def loss_sums(model: Model, valid: Split, batch_size: int, device: torch.device,
              precision: str = "fp32", rank: int = 0, size: int = 1) -> torch.Tensor:
    """The teacher-forced cross-entropy summed over the real target tokens, and their count
    (a tensor of two, on the device): of every `size`-th batch from the `rank`-th, so that
    processes sharing the work add their sums (pipeline/training/train.py)."""
    model.eval()
    total = torch.zeros((), device=device)
    tokens = torch.zeros((), device=device)
    for i, batch in enumerate(valid.sorted(batch_size)):
        if i % size != rank:
            continue
        batch = batch.to(device)
        with autocast(device, precision):
            loss = model.loss(batch.src, batch.src_len, batch.tgt, [True] * batch.tgt.size(1))
        n = (batch.tgt != PAD).sum()
        total += loss.float() * n
        tokens += n
    return torch.stack([total, tokens.float()])


def validation_loss(model: Model, valid: Split, batch_size: int, device: torch.device,
                    precision: str = "fp32") -> float:
    """Teacher-forced cross-entropy per target token, padding ignored (one host read)."""
    total, tokens = loss_sums(model, valid, batch_size, device, precision)
    return (total / tokens).item()


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
                     limit: OutputLimit, device: torch.device, beam_size: int,
                     alpha: float) -> tuple[list[list[str]], dict]:
    """Every source of the split translated (greedy for beam_size 1, or beam search with
    length penalty `alpha`), as output tokens; and the settings this search ran with, which
    evaluate records beside its figures (so the record is what ran, whatever params say)."""
    ids = translate_split(model, whole, batch_size, limit, device, beam_size, alpha)
    ran = {"beam_size": beam_size, **({"alpha": alpha} if beam_size > 1 else {}),
           "max_len_a": limit.a, "max_len_b": limit.b, "max_len_cap": limit.cap}
    return [ids_to_tokens(h, vocab_en) for h in ids], ran


@dataclass
class Outputs:
    """One search's translations of a set: the tokens joined (the lesson's BLEU) and the text
    translate prints (standard BLEU)."""

    tokens: list[str]
    text: list[str]


def outputs_of(hypotheses: list[list[str]], units: Words | Pieces) -> Outputs:
    return Outputs([" ".join(h) for h in hypotheses], [units.text(h) for h in hypotheses])


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


def greedy_scores(model: Model, whole: WholeSet, vocab_en: list[str], units: Words | Pieces,
                  batch_size: int, limit: OutputLimit, device: torch.device
                  ) -> dict[str, float]:
    """val_bleu and val_chrf as the evaluate stage defines them (greedy search over the whole
    validation sources, standard BLEU on the printed text): what train.keep reads after every
    epoch."""
    hyps, _ = translate_tokens(model, whole.split, vocab_en, batch_size, limit, device,
                               beam_size=1, alpha=0.0)  # greedy reads no alpha
    s, _ = scores(outputs_of(hyps, units), whole)
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


_WORD = re.compile(r"\w+(?:-\w+)*")  # words, hyphenated names whole ("Clermont-Ferrand")


def copy_words(source: str, reference: str) -> set[str]:
    """The source's words that the translation should carry through unchanged: those written
    with a capital or a digit (names, numbers, dates) that the reference also has, verbatim
    ("Kabylie", "2019"; not "Quel", nor "Londres", which the reference turns into "London")."""
    ref = set(_WORD.findall(reference))
    return {w for w in _WORD.findall(source)
            if (w[0].isupper() or any(c.isdigit() for c in w)) and w in ref}


def copy_rate(sources: list[str], references: list[str], hypotheses: list[str]
              ) -> tuple[float, int]:
    """The share (%) of the sentences with words to carry through (copy_words) whose every
    such word reaches the output unchanged, and how many sentences that share is of."""
    hits = n = 0
    for src, ref, hyp in zip(sources, references, hypotheses, strict=True):
        words = copy_words(src, ref)
        if words:
            n += 1
            hits += words <= set(_WORD.findall(hyp))
    return (100.0 * hits / n if n else float("nan")), n
