"""The model's variants, masking, schedules, losses, BLEU, and resuming a killed run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from support.models import EMB, SRC_V, TGT_V, batch, small_cfg

from pipeline.data.batches import Split
from pipeline.data.vocab import EOS, PAD
from pipeline.errors import PipelineError
from pipeline.evaluation.metrics import bleu, seq_loss
from pipeline.models.build import build_model
from pipeline.params import TrainConfig, from_dict, variant_names
from pipeline.training.checkpoints import load_checkpoint
from pipeline.training.optimizer import one_cycle_lr, pr_force
from pipeline.training.train import Checkpointing, TrainingRun, fit, kept_epoch, stops_early


@pytest.mark.parametrize("variant", variant_names())
@pytest.mark.parametrize("b,s,t", [(1, 1, 1), (3, 7, 5), (5, 2, 9)])
def test_shapes_of_every_variant(variant: str, b: int, s: int, t: int) -> None:
    model = build_model(small_cfg(variant), SRC_V, TGT_V, EMB)
    src, lens, tgt = batch(b, s, t)
    for force in (None, [True] * t, [i % 2 == 0 for i in range(t)]):
        assert model(src, lens, tgt, force=force).shape == (b, t, TGT_V)
    logits, att = model(src, lens, max_len=4, return_attention=True)
    assert logits.shape == (b, 4, TGT_V)
    if model.attends:
        assert att.shape == (b, 4, s)
        assert torch.allclose(att.sum(-1), torch.ones(b, 4))
    else:
        assert att is None


@pytest.mark.parametrize("variant", ["attention", "all"])
def test_attention_never_looks_at_padding(variant: str) -> None:
    model = build_model(small_cfg(variant), SRC_V, TGT_V, EMB).eval()
    src, lens, tgt = batch(4, 6, 5)
    _, att = model(src, lens, max_len=5, return_attention=True)
    pad_mask = torch.arange(6)[None, :] >= lens[:, None]
    assert (att.masked_select(pad_mask[:, None, :].expand_as(att)) == 0).all()


@pytest.mark.parametrize("variant", variant_names())
def test_extra_padding_changes_nothing(variant: str) -> None:
    # A sentence must translate the same whatever length its batch is padded to.
    model = build_model(small_cfg(variant), SRC_V, TGT_V, EMB).eval()
    src, lens, tgt = batch(3, 5, 4)
    wider = torch.cat([src, torch.full((3, 4), PAD)], dim=1)
    with torch.no_grad():
        a = model(src, lens, tgt, force=[True] * 4)
        b = model(wider, lens, tgt, force=[True] * 4)
    assert torch.allclose(a, b, atol=1e-5)


def test_lesson_mode_lets_padding_in() -> None:
    model = build_model(small_cfg("attention", mask_padding=False), SRC_V, TGT_V, EMB).eval()
    src, lens, _ = batch(3, 5, 4)
    _, att = model(src, lens, max_len=3, return_attention=True)
    pad_mask = torch.arange(5)[None, :] >= lens[:, None]
    assert (att.masked_select(pad_mask[:, None, :].expand_as(att)) > 0).any()


def test_fast_paths_equal_the_step_by_step_decoder() -> None:
    # All-forced decoding takes the one-GRU-call path; forcing every step but the last
    # through the step loop must give the same logits and gradients.
    torch.manual_seed(0)
    model = build_model(small_cfg("teacher_forcing"), SRC_V, TGT_V, EMB).eval()
    src, lens, tgt = batch(4, 6, 7)
    fast = model(src, lens, tgt, force=[True] * 7)
    slow = model(src, lens, tgt, force=[True] * 5 + [False, True])
    assert torch.allclose(fast[:, :6], slow[:, :6], atol=1e-5)


def test_embeddings_from_vectors_scaled_and_missing_rows_random() -> None:
    vectors = torch.zeros(SRC_V, EMB)
    vectors[5:] = torch.randn(SRC_V - 5, EMB) * 0.3
    cfg = small_cfg("basic")
    model = build_model(cfg, SRC_V, TGT_V, EMB, src_vectors=vectors)
    w = model.src_emb.weight.detach()
    ratio = w[5:] / vectors[5:]
    assert torch.allclose(ratio, ratio[0, 0].expand_as(ratio), rtol=1e-4)  # one scale factor
    assert w[5:].std().item() == pytest.approx(cfg.emb_std, rel=0.3)
    assert (w[4] != 0).any() and (w[PAD] == 0).all()


# --- schedules and losses -----------------------------------------------------------------
def test_one_cycle_is_the_lessons_clr() -> None:
    total, lr = 1000, 2e-3
    assert one_cycle_lr(0, total, lr, 20, 10) == pytest.approx(lr / 20)
    assert one_cycle_lr(100, total, lr, 20, 10) == pytest.approx(lr)
    assert one_cycle_lr(50, total, lr, 20, 10) == pytest.approx(lr / 20 * (1 + 0.5 * 19))
    assert one_cycle_lr(1000, total, lr, 20, 10) == pytest.approx(lr / 20)
    assert one_cycle_lr(550, total, lr, 20, 10) == pytest.approx(lr / 20 * (1 + 0.5 * 19))


def test_teacher_forcing_schedule() -> None:
    lesson = TrainConfig(teacher_forcing=True, pr_force_start=1.0, pr_force_end=0.0,
                         pr_force_epochs=10)
    assert [round(pr_force(e, lesson), 6) for e in (0, 1, 9, 10, 14)] == [1, 0.9, 0.1, 0, 0]
    assert pr_force(3, TrainConfig(teacher_forcing=False)) == 0.0
    assert pr_force(7, TrainConfig(teacher_forcing=True)) == 1.0  # our default: always


def test_losses_on_hand_made_examples() -> None:
    tgt = torch.tensor([[5, EOS, PAD]])
    logits = torch.full((1, 3, 8), -1e4)
    logits[0, 0, 5] = logits[0, 1, EOS] = 0.0  # perfectly sure and right on the real tokens
    logits[0, 2, :] = 0.0  # uniform over 8 classes where the target is padding
    assert seq_loss(logits, tgt).item() == pytest.approx(0.0, abs=1e-6)
    assert seq_loss(logits, tgt, pad_in_loss=True).item() == pytest.approx(math.log(8) / 3)
    # the lesson pads short outputs with zero logits (uniform) and cuts long ones
    short = logits[:, :2]
    assert seq_loss(short, tgt, pad_in_loss=True).item() == pytest.approx(math.log(8) / 3)
    long = torch.cat([logits, torch.zeros(1, 2, 8)], dim=1)
    assert seq_loss(long, tgt, pad_in_loss=True).item() == pytest.approx(math.log(8) / 3)


def test_bleu_on_hand_made_examples() -> None:
    score, sig = bleu(["what is this ?"], ["what is this ?"], tokenized=True)
    assert score == pytest.approx(100.0)
    assert "tok:none" in sig
    assert bleu(["a b c d"], ["w x y z"], tokenized=True)[0] == pytest.approx(0.0)
    # tokens are taken as they are: "this?" is not "this ?"
    assert bleu(["what is this?"], ["what is this ?"], tokenized=True)[0] < 100
    # the standard BLEU tokenizes text with 13a and keeps case: "this?" is "this ?", "What"
    # is not "what"
    score, sig = bleu(["What is this?"], ["What is this ?"])
    assert score == pytest.approx(100.0) and "tok:13a" in sig and "case:mixed" in sig
    assert bleu(["what is this?"], ["What is this?"])[0] < 100


# --- resume ---------------------------------------------------------------------------------
def toy_split(n: int, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    fr = [list(rng.integers(4, SRC_V, rng.integers(1, 6))) + [EOS] for _ in range(n)]
    en = [[4 + (x % (TGT_V - 4)) for x in s[:-1]] + [EOS] for s in fr]
    return Split(pd.DataFrame({"fr_ids": fr, "en_ids": en, "line": range(n)}))


def test_killed_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    cfg = TrainConfig(epochs=4, batch_size=8, lr=3e-3, teacher_forcing=True,
                      pr_force_start=1.0, pr_force_end=0.0, pr_force_epochs=4, keep="val_loss")
    train, valid = toy_split(40, 1), toy_split(10, 2)

    def run(stop_after: int | None, ckpt: Path, state=None):
        torch.manual_seed(0)
        model = build_model(small_cfg("all"), SRC_V, TGT_V, EMB)
        r = fit(TrainingRun(model, train, valid, cfg, torch.device("cpu")),
                Checkpointing(ckpt, "fp", state), pause_after=stop_after)
        return model, r

    whole, r_whole = run(None, tmp_path / "a.pt")
    run(2, tmp_path / "b.pt")  # "killed" after epoch 2; its checkpoint stays
    state = load_checkpoint(tmp_path / "b.pt", "fp")
    assert state["epoch"] == 2
    resumed, r_resumed = run(None, tmp_path / "b.pt", state)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert [h["val_loss"] for h in r_whole["history"]] == \
        [h["val_loss"] for h in r_resumed["history"]]
    assert load_checkpoint(tmp_path / "b.pt", "other params") is None


def test_the_kept_epoch_and_when_patience_runs_out() -> None:
    history = [{"epoch": e, "val_loss": loss, "val_bleu": b, "val_chrf": c}
               for e, loss, b, c in [(1, 3.0, 10.0, 30.0), (2, 2.5, 12.0, 29.0),
                                     (3, 2.6, 12.0, 31.0), (4, 2.7, 11.0, 30.5)]]
    assert kept_epoch(history, "val_bleu") == 2  # the earliest of the two 12s
    assert kept_epoch(history, "val_chrf") == 3
    assert kept_epoch(history, "val_loss") == 2  # the lowest loss
    assert kept_epoch(history, "last") == 4
    assert stops_early(history, TrainConfig(keep="val_bleu", patience=2))
    assert not stops_early(history, TrainConfig(keep="val_bleu", patience=3))
    assert not stops_early(history, TrainConfig(keep="val_chrf", patience=2))
    assert not stops_early(history, TrainConfig(keep="val_bleu", patience=0))
    assert not stops_early(history, TrainConfig(keep="last", patience=1))


class ScriptedScores:
    """A stand-in for the validation scores: the next value of a script at every call, and
    a copy of the weights it was asked to score."""

    def __init__(self, bleus: list[float], start: int = 0) -> None:
        self.bleus, self.calls, self.weights = bleus, start, {}

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        self.calls += 1
        self.weights[self.calls] = {k: v.clone() for k, v in model.state_dict().items()}
        return {"val_bleu": self.bleus[self.calls - 1], "val_chrf": 0.0}


def test_fit_keeps_the_best_epoch_stops_with_patience_and_resumes(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    cfg = TrainConfig(epochs=6, batch_size=8, lr=3e-3, keep="val_bleu", patience=2)
    train, valid = toy_split(40, 1), toy_split(10, 2)
    bleus = [1.0, 5.0, 3.0, 4.0, 9.0, 9.0]  # best at 2, then 2 epochs without a better one

    def run(ckpt: Path, scores: ScriptedScores, state=None, stop_after=None):
        torch.manual_seed(0)
        model = build_model(small_cfg("basic"), SRC_V, TGT_V, EMB)
        r = fit(TrainingRun(model, train, valid, cfg, torch.device("cpu")),
                Checkpointing(ckpt, "fp", state), scores, pause_after=stop_after)
        return model, r

    scores = ScriptedScores(bleus)
    model, r = run(tmp_path / "a.pt", scores)
    assert (r["epochs"], r["best_epoch"], r["stopped_early"]) == (4, 2, True)
    assert scores.calls == 4 and [h["val_bleu"] for h in r["history"]] == bleus[:4]
    assert all(h["score_seconds"] >= 0 for h in r["history"])
    for name, w in model.state_dict().items():  # epoch 2's weights, not epoch 4's
        assert torch.equal(w, scores.weights[2][name]), name
    assert any(not torch.equal(w, scores.weights[4][k]) for k, w in scores.weights[2].items())

    # killed after epoch 3: the best weights so far travel in the checkpoint
    run(tmp_path / "b.pt", ScriptedScores(bleus), stop_after=3)
    state = load_checkpoint(tmp_path / "b.pt", "fp")
    assert state["epoch"] == 3 and "best" in state
    resumed, r2 = run(tmp_path / "b.pt", ScriptedScores(bleus, start=3), state)
    assert (r2["epochs"], r2["best_epoch"], r2["stopped_early"]) == (4, 2, True)
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name

    # killed right after the epoch that decided to stop: resuming trains nothing more
    run(tmp_path / "c.pt", ScriptedScores(bleus), stop_after=4)
    again = ScriptedScores(bleus, start=4)
    resumed, r3 = run(tmp_path / "c.pt", again, load_checkpoint(tmp_path / "c.pt", "fp"))
    assert again.calls == 4 and r3["epochs"] == 4 and r3["best_epoch"] == 2
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_without_patience_every_epoch_trains_and_the_best_is_kept(tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=3, batch_size=8, keep="val_chrf")
    model = build_model(small_cfg("basic"), SRC_V, TGT_V, EMB)
    chrfs = iter([2.0, 7.0, 1.0])
    snapshots = []

    def score(m: torch.nn.Module) -> dict[str, float]:
        snapshots.append({k: v.clone() for k, v in m.state_dict().items()})
        return {"val_bleu": 0.0, "val_chrf": next(chrfs)}

    r = fit(TrainingRun(model, toy_split(24, 1), toy_split(8, 2), cfg, torch.device("cpu")),
            Checkpointing(tmp_path / "c.pt", "fp"), score)
    assert (r["epochs"], r["best_epoch"], r["stopped_early"]) == (3, 2, False)
    for name, w in model.state_dict().items():
        assert torch.equal(w, snapshots[1][name]), name


def test_the_average_of_the_last_epochs_is_kept_only_when_it_scores_better(
        tmp_path: Path) -> None:
    """train.average: the last N epochs' weights averaged after training, scored like an
    epoch, and kept if train.keep rates it above the kept epoch; a resumed run averages the
    same epochs (they travel in the checkpoint)."""
    torch.set_num_threads(1)
    cfg = TrainConfig(epochs=4, batch_size=8, lr=3e-3, keep="val_bleu", average=3)
    train, valid = toy_split(40, 1), toy_split(10, 2)

    def run(bleus: list[float], ckpt: str, state=None, stop_after=None):
        torch.manual_seed(0)
        model = build_model(small_cfg("basic"), SRC_V, TGT_V, EMB)
        scores = ScriptedScores(bleus, start=state["epoch"] if state else 0)
        r = fit(TrainingRun(model, train, valid, cfg, torch.device("cpu")),
                Checkpointing(tmp_path / ckpt, "fp", state), scores, pause_after=stop_after)
        return model, r, scores

    # the average (scored fifth) beats epoch 3, the best epoch: the model holds the mean of
    # epochs 2-4
    model, r, scores = run([1.0, 2.0, 5.0, 4.0, 6.0], "a.pt")
    assert r["best_epoch"] == 3 and r["average"]["kept"] and r["average"]["epochs"] == 3
    assert r["average"]["val_bleu"] == 6.0 and math.isfinite(r["average"]["val_loss"])
    for name, w in model.state_dict().items():
        if w.is_floating_point():
            mean = torch.stack([scores.weights[e][name] for e in (2, 3, 4)]).mean(0)
            assert torch.allclose(w, mean), name
    averaged = {k: v.clone() for k, v in model.state_dict().items()}
    # the same average scoring below epoch 3: the model keeps epoch 3's weights
    model, r, scores = run([1.0, 2.0, 5.0, 4.0, 4.5], "b.pt")
    assert not r["average"]["kept"]
    for name, w in model.state_dict().items():
        assert torch.equal(w, scores.weights[3][name]), name
    # killed after epoch 2 and resumed: the same average
    run([1.0, 2.0, 5.0, 4.0, 6.0], "c.pt", stop_after=2)
    state = load_checkpoint(tmp_path / "c.pt", "fp")
    assert len(state["recent"]) == 2
    model, r, _ = run([1.0, 2.0, 5.0, 4.0, 6.0], "c.pt", state)
    for name, w in model.state_dict().items():
        assert torch.equal(w, averaged[name]), name
    with pytest.raises(PipelineError, match=r"train.average: 3 needs train.keep to name a"):
        from_dict(TrainConfig, {"average": 3, "keep": "last"}, "train")


def test_keeping_by_a_score_needs_the_scores(tmp_path: Path) -> None:
    model = build_model(small_cfg("basic"), SRC_V, TGT_V, EMB)
    with pytest.raises(PipelineError, match="train.keep: val_bleu needs the validation scores"):
        fit(TrainingRun(model, toy_split(8, 1), toy_split(4, 2), TrainConfig(epochs=1),
                        torch.device("cpu")), Checkpointing(tmp_path / "d.pt", "fp"))


@pytest.mark.parametrize("field,value,message", [
    ("precision", "fp16", r"train\.precision: 'fp16' is not one of fp32, bf16$"),
    ("label_smoothing", 1.0,
     r"train\.label_smoothing: 1\.0 is out of range \(must be in \[0, 1\)\)"),
    ("keep", "bleu", r"train\.keep: 'bleu' is not one of val_bleu, val_chrf, val_loss, last$"),
    ("patience", -1, r"train\.patience: -1 is out of range \(must be >= 0\)"),
    ("epochs", 0, r"train\.epochs: 0 is out of range \(must be > 0\)"),
])
def test_bad_train_params_name_the_param(field: str, value: object, message: str) -> None:
    from pipeline.params import from_dict

    with pytest.raises(PipelineError, match=message):
        from_dict(TrainConfig, {field: value}, "train")


def test_a_bad_device_names_the_param() -> None:
    from pipeline.params import RuntimeConfig, from_dict

    with pytest.raises(PipelineError,
                       match=r"runtime\.device: 'tpu' is not one of auto, cpu, cuda"):
        from_dict(RuntimeConfig, {"device": "tpu"}, "runtime")
