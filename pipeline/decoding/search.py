"""Search: greedy and beam search, driving the model's decoder step from outside.

Both take any `Decoder` (pipeline/models/decoder.py): `start(src, src_len) -> state`, `step(prev,
state) -> (features, state, attention)` and `out(features) -> logits`, so they work the same
for the GRU variants and the Transformer, and tests can drive them with a model whose scores
they construct, or an `Ensemble` of models. Hypotheses are lists of target ids, without _eos_.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pipeline.data.batches import Batch, Split, to_device
from pipeline.data.vocab import BOS, EOS
from pipeline.models.decoder import Decoder, DecoderState, select_state
from pipeline.params import EvaluateParams


class Ensemble(torch.nn.Module):
    """Several models decoding as one: at each step their log-probabilities are averaged,
    and greedy and beam search drive the ensemble exactly as they drive one model (its
    `step` returns the average as the features, and `out` passes them on). The models must
    share their vocabularies (pipeline/decoding/translate.py checks); the attention weights
    shown are the first model's."""

    def __init__(self, models: list[Decoder]) -> None:
        super().__init__()
        self.models = torch.nn.ModuleList(models)
        self.out = torch.nn.Identity()

    def start(self, src: torch.Tensor, src_len: torch.Tensor) -> list:
        return [m.start(src, src_len) for m in self.models]

    def step(self, prev: torch.Tensor, state: list
             ) -> tuple[torch.Tensor, list, torch.Tensor | None]:
        logps, states, weights = [], [], []
        for m, s in zip(self.models, state):
            feat, s, w = m.step(prev, s)
            logps.append(F.log_softmax(m.out(feat).float(), dim=-1))
            states.append(s)
            weights.append(w)
        return torch.stack(logps).mean(0), states, weights[0]


CHECK_EVERY = 8  # greedy reads "all finished?" back from the device once every 8 steps


@dataclass(frozen=True)
class OutputLimit:
    """How many steps a row may decode: a * source length + b, at most `cap` (fairseq's
    --max-len-a / --max-len-b). The source length counts the source's ids (its _eos_ too).
    No defaults here: evaluate.max_len_* (pipeline/params.py) are the defaults of evaluate,
    translate and serve alike (`of`)."""

    a: float
    b: int
    cap: int

    @classmethod
    def of(cls, evaluate: EvaluateParams) -> OutputLimit:
        return cls(evaluate.max_len_a, evaluate.max_len_b, evaluate.max_len_cap)

    def __call__(self, src_len: Sequence[int]) -> list[int]:
        return [max(1, min(self.cap, int(self.a * n + self.b))) for n in src_len]


def _limits(max_len: int | Sequence[int], b: int) -> list[int]:
    return [max_len] * b if isinstance(max_len, int) else list(max_len)


@torch.no_grad()
def greedy(model: Decoder, src: torch.Tensor, src_len: torch.Tensor,
           max_len: int | Sequence[int]) -> tuple[list[list[int]], torch.Tensor | None]:
    """The argmax at every step until every row has ended: by _eos_ or at its own limit
    (`max_len`: one for all rows, or one per row).

    Returns the hypotheses and the attention weights (B, steps, S) (None without attention).
    """
    model.eval()
    b = src.size(0)
    limits = _limits(max_len, b)
    state = model.start(src, src_len)
    inp = torch.full((b,), BOS, dtype=torch.long, device=src.device)
    done = torch.zeros(b, dtype=torch.bool, device=src.device)
    ends = to_device(limits, src.device) if len(set(limits)) > 1 else None
    preds, attns = [], []
    for t in range(max(limits)):
        feat, state, w = model.step(inp, state)
        inp = model.out(feat).float().argmax(-1)
        preds.append(inp)
        if w is not None:
            attns.append(w)
        done |= inp == EOS
        if ends is not None:
            done |= ends <= t + 1
        if (t + 1) % CHECK_EVERY == 0 and bool(done.all()):  # one host read per 8 steps
            break
    rows = torch.stack(preds, 1).tolist()
    attn = torch.stack(attns, 1) if attns else None
    rows = [row[:n] for row, n in zip(rows, limits)]
    return [row[: row.index(EOS)] if EOS in row else row for row in rows], attn


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's lp(Y) = ((5 + |Y|) / 6) ** alpha (Wu et al., 2016); alpha 0 = no penalty."""
    return ((5 + length) / 6) ** alpha


@dataclass
class Hypothesis:
    ids: list[int]    # target ids, without _eos_
    score: float      # sum of log-probabilities (of _eos_ too, where it ended) / lp(length)
    log_prob: float   # the sum alone


def _first_beams(model: Decoder, src: torch.Tensor, src_len: torch.Tensor, k: int
                 ) -> tuple[DecoderState, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The state tiled to B*K rows, the scores (B, K), the empty sequences and _bos_ inputs.
    Only each row's first hypothesis is live at first, so the K first ones differ."""
    b, dev = src.size(0), src.device
    rows = torch.arange(b, device=dev).repeat_interleave(k)
    state = select_state(model.start(src, src_len), rows)  # (B*K, ...)
    scores = torch.full((b, k), float("-inf"), device=dev)
    scores[:, 0] = 0.0
    seqs = torch.full((b * k, 0), BOS, dtype=torch.long, device=dev)
    return state, scores, seqs, torch.full((b * k,), BOS, dtype=torch.long, device=dev)


def _extend(scores: torch.Tensor, logp: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
    """The 2K best extensions of each row's K hypotheses (scores, origins, which are _eos_),
    and the best K that are not _eos_ (scores, origins, tokens): those live on."""
    vocab = logp.size(-1)
    cand = (scores.view(-1, 1) + logp).view(scores.size(0), k * vocab)
    cand_scores, cand_ids = cand.topk(2 * k, dim=1)  # sorted, best first
    origin, token = cand_ids // vocab, cand_ids % vocab
    is_eos = token == EOS
    live_scores, pick = cand_scores.masked_fill(is_eos, float("-inf")).topk(k, dim=1)
    return cand_scores, origin, is_eos, live_scores, origin.gather(1, pick), token.gather(1, pick)


@torch.no_grad()
def beam_search(model: Decoder, src: torch.Tensor, src_len: torch.Tensor,
                max_len: int | Sequence[int], beam_size: int, alpha: float,
                n_best: int = 1) -> list[list[Hypothesis]]:
    """Batched beam search; the `n_best` best hypotheses of each row, best first. `alpha`
    (GNMT's length penalty) has no default here: each caller says which it uses.

    Each step takes the 2K best extensions of the K live hypotheses: an extension by _eos_
    among the best K finishes a hypothesis (it leaves the beam), and the best K others live on,
    so the beam always holds K live ones. A hypothesis is scored by its log-probability over
    GNMT's length penalty, its length counting the _eos_. A row stops once its n_best-th
    finished hypothesis cannot be beaten by any live one: a live score can only fall, and its
    best possible normalized score is its score now over lp(max_len) (lp grows with length,
    and log-probabilities are negative). Live hypotheses still there after max_len steps (one
    limit for all rows, or one per row) finish as they are.
    """
    if beam_size < 1 or n_best < 1 or n_best > beam_size:
        raise ValueError(f"beam_size {beam_size} and n_best {n_best}: need 1 <= n_best <= "
                         "beam_size")
    model.eval()
    b, k, dev = src.size(0), beam_size, src.device
    state, scores, seqs, inp = _first_beams(model, src, src_len, k)
    active = list(range(b))  # the original row of each row still searched
    finished: list[list[Hypothesis]] = [[] for _ in range(b)]
    limits = _limits(max_len, b)
    bound_lp = [length_penalty(n, alpha) for n in limits]
    for t in range(max(limits)):
        feat, state, _ = model.step(inp, state)
        logp = F.log_softmax(model.out(feat).float(), dim=-1)
        extended = _extend(scores, logp, k)
        cand_scores, origin, is_eos, live_scores, live_origin, live_token = extended
        base = torch.arange(len(active), device=dev)[:, None] * k
        select = (base + live_origin).view(-1)
        new_seqs = torch.cat([seqs[select], live_token.view(-1, 1)], 1)

        c_scores, c_eos = cand_scores.tolist(), is_eos.tolist()
        c_origin = origin.tolist()
        l_scores = live_scores.tolist()
        lp_now = length_penalty(t + 1, alpha)
        keep = []
        for r, row in enumerate(active):
            hyps = finished[row]
            last = t == limits[row] - 1
            for j in range(k):  # _eos_ among the best K finishes a hypothesis
                if c_eos[r][j] and c_scores[r][j] > float("-inf"):
                    ids = seqs[r * k + c_origin[r][j]].tolist()
                    hyps.append(Hypothesis(ids, c_scores[r][j] / lp_now, c_scores[r][j]))
            if last:
                for j in range(k):
                    if l_scores[r][j] > float("-inf"):
                        ids = new_seqs[r * k + j].tolist()
                        hyps.append(Hypothesis(ids, l_scores[r][j] / lp_now, l_scores[r][j]))
            hyps.sort(key=lambda h: -h.score)
            del hyps[n_best:]
            best_live = l_scores[r][0] / bound_lp[row]
            if not last and (len(hyps) < n_best or hyps[-1].score < best_live):
                keep.append(r)
        if not keep:
            break
        keep_t = to_device(keep, dev)
        flat = (keep_t[:, None] * k + torch.arange(k, device=dev)[None, :]).view(-1)
        active = [active[r] for r in keep]
        scores = live_scores.index_select(0, keep_t)
        seqs = new_seqs.index_select(0, flat)
        state = select_state(state, select.index_select(0, flat))
        inp = seqs[:, -1]
    return finished


@torch.no_grad()
def forced_attention(model: Decoder, src: torch.Tensor, src_len: torch.Tensor,
                     hyps: Sequence[Sequence[int]]) -> list[torch.Tensor] | None:
    """The attention over the source (len(hyp) + 1, src_len) behind each token of each
    hypothesis and the step after it (where the search chose _eos_): the hypothesis fed back
    to the decoder, so that the weights are those of the search's own steps whichever search
    found it (greedy, beam, n-best). None for a model without attention."""
    model.eval()
    steps = max((len(h) for h in hyps), default=0) + 1
    prev = torch.full((src.size(0), steps), BOS, dtype=torch.long)
    for r, h in enumerate(hyps):
        prev[r, 1:len(h) + 1] = torch.as_tensor(list(h), dtype=torch.long)
    prev = to_device(prev, src.device)
    state = model.start(src, src_len)
    weights = []
    for t in range(steps):
        _, state, w = model.step(prev[:, t], state)
        if w is None:
            return None
        weights.append(w.float())
    attn = torch.stack(weights, 1).cpu()  # (B, steps, S)
    lengths = src_len.tolist()
    return [attn[r, :len(h) + 1, :lengths[r]] for r, h in enumerate(hyps)]


def translate_batches(model: Decoder, batches: Iterator[Batch], n: int,
                      limit: OutputLimit, device: torch.device, beam_size: int,
                      alpha: float) -> list[list[int]]:
    """The best hypothesis of every row (by each batch's `index`), greedy for beam_size 1
    (which reads no `alpha`)."""
    hyps: list[list[int]] = [[] for _ in range(n)]
    for batch in batches:
        max_len = limit(batch.src_len.tolist())  # lengths from the host's copy: no sync
        b = batch.to(device)
        if beam_size == 1:
            out, _ = greedy(model, b.src, b.src_len, max_len)
        else:
            out = [h[0].ids for h in beam_search(model, b.src, b.src_len, max_len, beam_size,
                                                 alpha)]
        for i, h in zip(batch.index, out):
            hyps[int(i)] = h
    return hyps


def translate_split(model: Decoder, split: Split, batch_size: int,
                    limit: OutputLimit, device: torch.device, beam_size: int,
                    alpha: float) -> list[list[int]]:
    """The best hypothesis for every row of the split, in the split's order."""
    return translate_batches(model, split.sorted(batch_size), len(split), limit, device,
                             beam_size, alpha)
