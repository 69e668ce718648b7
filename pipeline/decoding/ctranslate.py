"""Translating with CTranslate2: the same text in and out as `Translator`, on an exported
Transformer (pipeline/models/export.py).

The units and the printed text are the PyTorch path's own (`Translator`'s units, words or
pieces: pipeline/data/units.py); only the search runs in CTranslate2. What differs, said
plainly:
- Greedy search is the same search: each batch decodes to its longest row's output limit and
  every row is cut at its own (a greedy row's first tokens do not depend on how far it goes).
- Beam search is CTranslate2's. It ranks hypotheses by their log-probability alone
  (length_penalty 0), and the K it returns are ranked by those log-probabilities over GNMT's
  length penalty, as the PyTorch beam search ranks them; a hypothesis stopped at the output
  limit is scored again by the model (score_batch), as CTranslate2 scores its last step
  otherwise. (Scoring every hypothesis again ranked the same on all 896 validation sentences
  and took longer than the search.) The two searches keep different hypotheses along the
  way, so a beam's output can differ where the PyTorch one would finish another hypothesis
  first. Each row decodes to its own output limit, as in PyTorch: a call holds rows of one
  limit.
- The attention is CTranslate2's of the last layer, averaged over every head (the export asks
  for all heads), the hypothesis forced as a target prefix: the weights `step` would give.
"""

from __future__ import annotations

import math
import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path

from pipeline.cpu import cpu_fields
from pipeline.data.vocab import ids_to_tokens
from pipeline.decoding.search import Hypothesis, OutputLimit, length_penalty
from pipeline.decoding.translate import DEFAULTS, LIMIT, Translator
from pipeline.errors import PipelineError
from pipeline.files import read_json
from pipeline.models.export import EOS_NAME, QUANTIZATIONS, UNK_NAME, read_export
from pipeline.runtime import pick_device

COMPUTE_TYPES = ("default", *QUANTIZATIONS)  # "default": the type the export was written in
# oneDNN's instruction-set caps (its ONEDNN_MAX_CPU_ISA) that leave out VNNI
ONEDNN_WITHOUT_VNNI = ("SSE41", "AVX", "AVX2", "AVX512_CORE")


def int8_saturates(cpuinfo: str | None = None, env: Mapping[str, str] = os.environ) -> bool:
    """Whether CTranslate2's int8 products lose precision on this CPU. CTranslate2 multiplies
    int8 with Intel MKL on Intel CPUs and with oneDNN on the others (CT2_USE_MKL chooses);
    without VNNI (AVX2-only CPUs, such as AMD EPYCs before Zen 4), oneDNN's u8 x s8 kernel
    adds pairs of products in 16 bits, saturating. Measured (BENCHMARKS.md, "int8 without
    VNNI"): the quick model's int8 greedy output equalled PyTorch's on 799 of 850 test
    sentences against 833 with VNNI, BLEU -0.4; MKL avoids it but ran int8 7x slower on an
    AMD CPU. Known on x86-64 Linux only (/proc/cpuinfo); elsewhere False."""
    if cpuinfo is None and (sys.platform != "linux" or platform.machine() != "x86_64"):
        return False
    fields = cpu_fields(cpuinfo)
    use_mkl = env.get("CT2_USE_MKL", "")
    if (use_mkl.lower() in ("1", "true", "on", "yes") if use_mkl
            else fields.get("vendor_id") == "GenuineIntel"):
        return False
    flags = fields.get("flags", "").split()
    capped = env.get("ONEDNN_MAX_CPU_ISA", "").upper() in ONEDNN_WITHOUT_VNNI
    return capped or not {"avx512_vnni", "avx_vnni"} & set(flags)


class CT2Translator(Translator):
    """An exported Transformer in CTranslate2, behind Translator's interface (search,
    translate, attention), so that `translate` and `serve` take either engine."""

    def __init__(self, path: str | Path, device: str = "cpu", compute_type: str = "default",
                 threads: int = 0) -> None:
        import ctranslate2

        path = Path(path)
        info = read_export(path)
        if compute_type not in COMPUTE_TYPES:
            raise PipelineError(f"compute type {compute_type!r}: not one of "
                                f"{', '.join(COMPUTE_TYPES)}")
        self.device = pick_device(device, "--device")
        self.config, self.positions = info, int(info["positions"])
        self.vocab_fr, self.vocab_en = (read_json(path / f"vocab_{x}.json") for x in ("fr", "en"))
        self.read_text_path(path)
        self.stoi_en = {w: i for i, w in enumerate(self.vocab_en)}
        self.known_fr = set(self.vocab_fr)  # a word, or a piece of a character never seen
        self.attends, self.model = True, None
        # one translation at a time (one client's batches come one by one), on OMP_NUM_THREADS
        # threads, or else one: on 2 cores one thread was the fastest, for single sentences
        # and batches of 32 alike (BENCHMARKS.md, "CTranslate2")
        threads = threads or int(os.environ.get("OMP_NUM_THREADS") or 0) or 1
        try:
            self.engine = ctranslate2.Translator(
                str(path), device=self.device.type, compute_type=compute_type,
                inter_threads=1, intra_threads=threads)
        except (RuntimeError, ValueError) as e:
            raise PipelineError(f"{path}: CTranslate2 cannot load it "
                                f"({str(e).splitlines()[0]})") from None
        resolved = str(info.get("quantization", "")) if compute_type == "default" else compute_type
        if resolved.startswith("int8") and self.device.type == "cpu" and int8_saturates():
            print(f"warning: {path}: int8 on this CPU (no VNNI) runs on oneDNN's saturating "
                  "kernel and prints a little less well than float32 (BENCHMARKS.md, "
                  "\"int8 without VNNI\")", file=sys.stderr)

    def source_tokens(self, sentence: str) -> list[str]:
        """The sentence's tokens as the model's vocabulary has them, with the end mark."""
        out = [t if t in self.known_fr else UNK_NAME
               for t in self.units.source_tokens(sentence)] + [EOS_NAME]
        if len(out) > self.positions:
            raise PipelineError(f"a sentence of {len(out)} tokens: the CTranslate2 export reads "
                                f"at most {self.positions} (its position table)")
        return out

    def search(self, sentences: list[str], batch_size: int = 64, beam_size: int = 1,
               alpha: float = DEFAULTS.alpha, n_best: int = 1, limit: OutputLimit = LIMIT,
               scored: bool = False) -> list[list[Hypothesis]]:
        out: list[list[Hypothesis]] = [[] for _ in sentences]
        todo = [(i, self.source_tokens(s)) for i, s in enumerate(sentences) if s.strip()]
        todo.sort(key=lambda item: -len(item[1]))
        # a greedy row's first tokens do not depend on how far it may go, scored or not
        # (the server asks for scores): any rows share a call, as they do in PyTorch
        greedy = beam_size == 1 and n_best == 1 and not scored
        limits = limit([len(toks) for _, toks in todo])
        for batch in batches(limits, batch_size, greedy=beam_size == 1):
            most = max(limits[j] for j in batch)
            sources = [todo[j][1] for j in batch]
            results = self.engine.translate_batch(
                sources, beam_size=beam_size, num_hypotheses=beam_size,
                length_penalty=0.0, return_scores=not greedy, max_decoding_length=most,
                max_input_length=0)
            found = [cut(result.hypotheses, limits[j], most) for j, result in zip(batch, results)]
            hyps = ([[Hypothesis([self.stoi_en[t] for t in tokens], math.nan, math.nan)
                      for tokens, _ in row] for row in found] if greedy
                    else self._ranked(sources, found, results, alpha))
            for j, row in zip(batch, hyps):
                out[todo[j][0]] = row[:n_best]
        return out

    def _ranked(self, sources: list[list[str]], found: list[list[tuple[list[str], bool]]],
                results: list, alpha: float) -> list[list[Hypothesis]]:
        """Each source's beam hypotheses (tokens, ended) as Hypothesis objects, ranked as the
        PyTorch beam ranks them: their log-probability over GNMT's length penalty. A finished
        hypothesis takes the log-probability CTranslate2's search found (length_penalty 0:
        the plain sum, its _eos_ included); one stopped at the output limit is scored again
        by the model (score_batch, all of a batch's in one call), because CTranslate2's
        search scores its last step otherwise. On the full run's 896 validation sentences
        this ranks exactly as rescoring every hypothesis did, in a third of the time
        (BENCHMARKS.md, issue 54)."""
        unfinished = [(src, tokens) for src, row in zip(sources, found)
                      for tokens, ended in row if not ended]
        rescored = iter(self.engine.score_batch([src for src, _ in unfinished],
                                                [tokens for _, tokens in unfinished])
                        if unfinished else [])
        out = []
        for row, result in zip(found, results):
            hyps = []
            for (tokens, ended), log_prob in zip(row, result.scores):
                if not ended:  # score_batch scores an _eos_ after the tokens: not this one's
                    log_prob = float(sum(next(rescored).log_probs[:-1]))
                steps = len(tokens) + (1 if ended else 0)
                hyps.append(Hypothesis([self.stoi_en[t] for t in tokens],
                                       log_prob / length_penalty(steps, alpha), log_prob))
            out.append(sorted(hyps, key=lambda h: -h.score))
        return out

    def attention(self, sentences: list[str], hyps: list[list[int]], batch_size: int = 64
                  ) -> list[tuple[list[str], list[str], list[list[float]]]]:
        """As Translator.attention: for each sentence and a hypothesis of it (ids), the source
        and output tokens with their _eos_, and a row of weights per output token."""
        out: list = []
        for k in range(0, len(sentences), batch_size):
            chunk = list(range(k, min(k + batch_size, len(sentences))))
            sources = [self.source_tokens(sentences[i]) for i in chunk]
            prefixes = [[self.vocab_en[t] for t in hyps[i]] for i in chunk]
            results = self.engine.translate_batch(
                sources, target_prefix=prefixes, beam_size=1, return_attention=True,
                return_end_token=True,
                max_decoding_length=max(len(p) for p in prefixes) + 1)
            for i, src, prefix, result in zip(chunk, sources, prefixes, results):
                words = self.units.source_tokens(sentences[i]) + [EOS_NAME]
                weights = [list(map(float, row[:len(src)]))
                           for row in result.attention[0][:len(prefix) + 1]]
                out.append((words, ids_to_tokens(hyps[i], self.vocab_en) + [EOS_NAME], weights))
        return out


def batches(limits: list[int], batch_size: int, greedy: bool) -> list[list[int]]:
    """The translate_batch calls, as lists of rows (sorted by length, longest first, so equal
    limits are neighbours). Greedy: batch_size rows a call, each decoding to the call's
    longest limit and cut at its own (a greedy row's first tokens do not depend on how far it
    goes). A beam: rows of one limit a call, batch_size at most (a beam's hypotheses depend on
    how far it may go), so a call per limit, not per limit in every batch."""
    if greedy:
        return [list(range(k, min(k + batch_size, len(limits))))
                for k in range(0, len(limits), batch_size)]
    out: list[list[int]] = []
    for j, n in enumerate(limits):
        if not out or limits[out[-1][0]] != n or len(out[-1]) == batch_size:
            out.append([])
        out[-1].append(j)
    return out


def cut(hypotheses: list[list[str]], row_limit: int, decoded: int
        ) -> list[tuple[list[str], bool]]:
    """CTranslate2's hypotheses of a row decoded up to `decoded` tokens, cut at the row's own
    limit, each with whether it ended (CTranslate2 stopped at _eos_ before the limit)."""
    found = []
    for tokens in hypotheses:
        ended = len(tokens) < decoded
        if len(tokens) >= row_limit:  # at or past this row's own limit: unfinished
            tokens, ended = tokens[:row_limit], False
        found.append((tokens, ended))
    return found
