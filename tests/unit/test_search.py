"""Greedy and beam search driving the decoder step: against each other, on a model whose
scores are constructed, and independent of batching."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from support.models import EMB, ROOT, SRC_V, TGT_V, batch, small_cfg
from torch import nn

from pipeline.data.batches import Split
from pipeline.data.vocab import BOS, EOS
from pipeline.decoding.search import (
    Ensemble,
    OutputLimit,
    beam_search,
    greedy,
    length_penalty,
    translate_split,
)
from pipeline.models.build import build_model
from pipeline.models.gru import GRUState
from pipeline.params import variant_names

A, B, C, D = 4, 5, 6, 7
V = 8


class Scripted(nn.Module):
    """A 'model' whose next-token probabilities depend only on the previous token."""

    masks_padding = True  # it never reads the source

    def __init__(self, table: dict[int, dict[int, float]]) -> None:
        super().__init__()
        logits = torch.full((V, V), -30.0)
        for prev, nxt in table.items():
            for tok, p in nxt.items():
                logits[prev, tok] = math.log(p)
        self.out = nn.Linear(V, V, bias=False)
        self.out.weight.data = logits.T.contiguous()  # out(one_hot(prev)) = logits[prev]

    def start(self, src: torch.Tensor, src_len: torch.Tensor) -> GRUState:
        return GRUState(torch.zeros(1, src.size(0), 1))

    def step(self, prev: torch.Tensor, state: GRUState):
        return F.one_hot(prev, V).float(), state, None

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor,
                force: object = None) -> torch.Tensor:
        """Teacher forcing over all of tgt at once (what search_check scores with)."""
        prev = torch.cat([torch.full_like(tgt[:, :1], BOS), tgt[:, :-1]], 1)
        return self.out(F.one_hot(prev, V).float())


def run(model: nn.Module, rows: int = 1, max_len: int = 10, **kw):
    src = torch.full((rows, 3), A)
    lens = torch.full((rows,), 3)
    g, _ = greedy(model, src, lens, max_len)
    b = beam_search(model, src, lens, max_len, **{"alpha": 0.0, **kw})
    return g, b


def test_beam_finds_the_better_sequence_that_greedy_misses() -> None:
    model = Scripted({BOS: {A: 0.6, B: 0.4}, A: {EOS: 0.3, C: 0.36, D: 0.34},
                      C: {EOS: 1.0}, D: {EOS: 1.0}, B: {EOS: 0.9, C: 0.1}})
    g, b = run(model, rows=2, beam_size=3)
    assert g == [[A, C], [A, C]]  # 0.6 * 0.36 = 0.216
    for hyps in b:
        assert hyps[0].ids == [B]  # 0.4 * 0.9 = 0.36
        assert hyps[0].log_prob == pytest.approx(math.log(0.36), abs=1e-4)
    assert run(model, beam_size=1)[1][0][0].ids == [A, C]  # beam 1 is greedy


def test_beam_goes_on_while_a_live_hypothesis_can_still_win() -> None:
    # The best first step ends the sentence; with a length penalty, the longer hypothesis
    # (A B, lower probability) scores better. Stopping when the top hypothesis ends would
    # return the empty one.
    model = Scripted({BOS: {EOS: 0.5, A: 0.45, C: 0.05}, A: {B: 1.0}, B: {EOS: 1.0},
                      C: {EOS: 1.0}})
    _, b = run(model, beam_size=2, alpha=1.0, n_best=2)
    assert [h.ids for h in b[0]] == [[A, B], []]
    assert b[0][0].score == pytest.approx(math.log(0.45) / length_penalty(3, 1.0), abs=1e-4)
    assert b[0][1].score == pytest.approx(math.log(0.5) / length_penalty(1, 1.0), abs=1e-4)
    _, b0 = run(model, beam_size=2, alpha=0.0)
    assert b0[0][0].ids == []  # without the penalty the short one is better, and is kept


def test_hypotheses_that_never_end_finish_at_max_len() -> None:
    model = Scripted({BOS: {A: 0.9, B: 0.1}, A: {A: 0.9, B: 0.1}, B: {A: 0.9, B: 0.1}})
    g, b = run(model, max_len=4, beam_size=2, n_best=2)
    assert g == [[A] * 4]
    assert b[0][0].ids == [A] * 4 and len(b[0][1].ids) == 4


def test_each_row_stops_at_its_own_limit() -> None:
    model = Scripted({BOS: {A: 0.9, B: 0.1}, A: {A: 0.9, B: 0.1}, B: {A: 0.9, B: 0.1}})
    src, lens = torch.full((3, 3), A), torch.full((3,), 3)
    g, _ = greedy(model, src, lens, [2, 5, 3])
    assert g == [[A] * 2, [A] * 5, [A] * 3]
    b = beam_search(model, src, lens, [2, 5, 3], beam_size=2, alpha=0.0, n_best=2)
    assert [[len(h.ids) for h in row] for row in b] == [[2, 2], [5, 5], [3, 3]]
    assert [row[0].ids for row in b] == g


def test_the_output_limit_is_relative_to_the_source_with_a_cap() -> None:
    limit = OutputLimit(1.5, 5, 20)
    assert limit([1, 4, 10, 40]) == [6, 11, 20, 20]
    assert OutputLimit(0.0, 0, 9)([3]) == [1]  # never zero steps


def test_bad_beam_arguments() -> None:
    model = Scripted({BOS: {EOS: 1.0}})
    with pytest.raises(ValueError, match="n_best"):
        run(model, beam_size=2, n_best=3)


def eos_prone(variant: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model(small_cfg(variant), SRC_V, TGT_V, EMB).eval()
    with torch.no_grad():
        model.out.bias[EOS] += 1.5  # so that hypotheses end at different steps
    return model


@pytest.mark.parametrize("variant", variant_names())
def test_beam_of_one_is_greedy(variant: str) -> None:
    for seed in range(3):
        model = eos_prone(variant, seed)
        src, lens, _ = batch(6, 7, 1, seed=seed)
        for max_len in (9, OutputLimit(1.0, 2, 9)(lens.tolist())):  # one limit, or per row
            g, _ = greedy(model, src, lens, max_len)
            b = beam_search(model, src, lens, max_len, beam_size=1, alpha=0.0)
            assert [h[0].ids for h in b] == g


@pytest.mark.parametrize("variant", ["basic", "all"])
@pytest.mark.parametrize("beam", [1, 4])
def test_output_does_not_depend_on_the_batch(variant: str, beam: int) -> None:
    import numpy as np
    import pandas as pd

    model = eos_prone(variant, 0)
    rng = np.random.default_rng(0)
    fr = [list(rng.integers(4, SRC_V, rng.integers(1, 9))) + [EOS] for _ in range(11)]
    split = Split(pd.DataFrame({"fr_ids": fr, "en_ids": [[EOS]] * 11, "line": range(11)}))
    cpu = torch.device("cpu")
    limit = OutputLimit(1.0, 3, 10)  # each row its own limit: its length + 3
    alone = translate_split(model, split, 1, limit, cpu, beam, 0.6)
    for size in (3, 11):
        assert translate_split(model, split, size, limit, cpu, beam, 0.6) == alone
    # and greedy's attention rows are a distribution over the real source words only
    if model.attends:
        src, lens, _ = batch(3, 6, 1)
        hyps, attn = greedy(model, src, lens, 5)
        assert torch.allclose(attn.sum(-1), torch.ones(attn.shape[:2]))


# --- ensembles ------------------------------------------------------------------------------
def test_an_ensemble_picks_what_neither_model_picks_alone() -> None:
    """After _bos_, one model says A (0.5) or B (0.4), the other C (0.5) or B (0.4): the
    average of their log-probabilities is highest for B (log 0.4 against log sqrt(0.05))."""
    left = Scripted({BOS: {A: 0.5, B: 0.4, C: 0.1}, A: {EOS: 1.0}, B: {EOS: 1.0},
                     C: {EOS: 1.0}})
    right = Scripted({BOS: {C: 0.5, B: 0.4, A: 0.1}, A: {EOS: 1.0}, B: {EOS: 1.0},
                      C: {EOS: 1.0}})
    assert run(left, beam_size=1)[0] == [[A]] and run(right, beam_size=1)[0] == [[C]]
    g, b = run(Ensemble([left, right]), beam_size=3)
    assert g == [[B]] and b[0][0].ids == [B]


@pytest.mark.parametrize("variant", ["basic", "all"])
def test_an_ensemble_of_one_model_or_of_a_model_with_itself_is_that_model(variant: str) -> None:
    model = eos_prone(variant, 1)
    src, lens, _ = batch(6, 7, 1, seed=1)
    limit = OutputLimit(1.0, 2, 9)(lens.tolist())
    g, attn = greedy(model, src, lens, limit)
    b = beam_search(model, src, lens, limit, beam_size=3, alpha=0.6, n_best=2)
    for ens in (Ensemble([model]), Ensemble([model, model])):
        eg, eattn = greedy(ens, src, lens, limit)
        assert eg == g
        if attn is not None:
            assert torch.equal(eattn, attn)
        eb = beam_search(ens, src, lens, limit, beam_size=3, alpha=0.6, n_best=2)
        assert [[h.ids for h in row] for row in eb] == [[h.ids for h in row] for row in b]
        for row, erow in zip(b, eb):
            for h, eh in zip(row, erow):
                assert eh.score == pytest.approx(h.score, abs=1e-4)


# --- the searches checked against the model (the metrics gate's search_check) ----------------
def check_split(n: int = 13):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    fr = [list(rng.integers(4, SRC_V, rng.integers(1, 9))) + [EOS] for _ in range(n)]
    return Split(pd.DataFrame({"fr_ids": fr, "en_ids": [[EOS]] * n, "line": range(n)}))


def run_check(model: nn.Module) -> dict[str, float]:
    from pipeline.evaluation.search_check import search_check

    return search_check(model, check_split(), 5, OutputLimit(1.0, 3, 10),
                        torch.device("cpu"), 4, 0.6)


# Beam and greedy differ, hypotheses end by _eos_ after 1 and 2 words, and the best one
# leaves the beam from its second slot (B then _eos_, 0.36): what the beam's bookkeeping and
# length penalty must get right.
BRANCHING = Scripted({BOS: {A: 0.6, B: 0.4}, A: {EOS: 0.3, C: 0.36, D: 0.34}, C: {EOS: 1.0},
                      D: {EOS: 1.0}, B: {EOS: 0.9, C: 0.1}})


def talker(variant: str) -> nn.Module:
    """A model whose hypotheses run to their limits (5-10 tokens on check_split's sources)."""
    torch.manual_seed(0)
    return build_model(small_cfg(variant), SRC_V, TGT_V, EMB).eval()


@pytest.mark.parametrize("variant", variant_names())
def test_the_searches_agree_with_the_models_forced_forward(variant: str) -> None:
    # hypotheses cut at their limits, and (eos_prone) ended by _eos_ at once
    for model in (talker(variant), eos_prone(variant, 0), BRANCHING):
        found = run_check(model)
        assert found["sentences"] == 13
        assert {k: found[k] for k in ("greedy_not_argmax", "beam1_not_greedy",
                                      "beam_scores_off", "padding_moves_scores")} == {
            "greedy_not_argmax": 0, "beam1_not_greedy": 0, "beam_scores_off": 0,
            "padding_moves_scores": 0}
        assert found["largest_gap"] < 1e-4


def test_the_padding_check_is_left_out_where_the_encoder_reads_the_padding() -> None:
    """model.mask_padding false (the lesson's encoder runs on through the padding): more of
    it changes the scores by design, so that count is not made."""
    torch.manual_seed(0)
    model = build_model(small_cfg("all", mask_padding=False), SRC_V, TGT_V, EMB).eval()
    found = run_check(model)
    assert "padding_moves_scores" not in found and found["beam_scores_off"] == 0


@pytest.mark.parametrize("mutation", ["search-beam-length-penalty-multiplies",
                                      "search-beam-finished-from-wrong-origin",
                                      "search-greedy-feeds-bos-at-every-step"])
def test_the_search_check_catches_the_battery_s_search_bugs(
        mutation: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each search mutation of the gate's battery (ci/mutations/), applied to a copy of
    pipeline/decoding/search.py, shows in search_check's counts: the beam ones are what the gate's
    training noise hides."""
    import importlib.util
    import shutil
    import subprocess

    import pipeline.evaluation.search_check as checker

    module = Path("pipeline/decoding/search.py")
    (tmp_path / module.parent).mkdir(parents=True)
    shutil.copy(ROOT / module, tmp_path / module)
    subprocess.run(["git", "apply", str(ROOT / "ci" / "mutations" / f"{mutation}.patch")],
                   cwd=tmp_path, check=True)
    spec = importlib.util.spec_from_file_location("mutated_search",
                                                  tmp_path / module)
    mutated = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "mutated_search", mutated)  # for its dataclasses
    spec.loader.exec_module(mutated)
    assert run_check(BRANCHING)["beam_scores_off"] == 0  # the real search first
    monkeypatch.setattr(checker, "beam_search", mutated.beam_search)
    monkeypatch.setattr(checker, "greedy", mutated.greedy)
    found = run_check(BRANCHING)
    assert found["beam_scores_off"] + found["greedy_not_argmax"] > 0


def test_the_search_check_catches_an_encoder_that_reads_the_padding(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The battery's bidirectional-encoder mutation (its backward pass starts in the padding),
    applied to a copy of pipeline/models/gru.py: the padding check counts nearly every
    sentence, where the batches sorted by length hid it from the other counts."""
    import importlib.util
    import subprocess

    module = Path("pipeline/models/gru.py")
    (tmp_path / module.parent).mkdir(parents=True)
    (tmp_path / module).write_text((ROOT / module).read_text())
    subprocess.run(["git", "apply", str(ROOT / "ci" / "mutations" /
                                        "gru-bidir-backward-reads-padding-first.patch")],
                   cwd=tmp_path, check=True)
    spec = importlib.util.spec_from_file_location("mutated_gru", tmp_path / module)
    mutated = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "mutated_gru", mutated)  # for its dataclasses
    spec.loader.exec_module(mutated)
    for make, want_caught in ((build_model, False), (mutated.Seq2Seq, True)):
        torch.manual_seed(0)
        found = run_check(make(small_cfg("bidir"), SRC_V, TGT_V, EMB).eval())
        assert (found["padding_moves_scores"] >= 10) is want_caught, found  # of 13
        assert found["padding_moves_scores"] == 0 or want_caught
