"""What stage train@VARIANT does: train one variant, resuming from its checkpoint if a run
was killed, on one process or several (pipeline/training/distributed.py), logging each epoch
to dvclive, and write the model directory evaluate and translate read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from dvclive import Live

from pipeline.data.batches import Split, max_lengths, sample_pieces, swap_names, whole_set
from pipeline.data.units import Pieces, Words, training_units
from pipeline.decoding.search import OutputLimit
from pipeline.evaluation.metrics import greedy_scores
from pipeline.models.decoder import Model
from pipeline.models.modeldir import max_len, model_config, save_model_dir
from pipeline.params import (
    EvaluateParams,
    RuntimeConfig,
    SubwordsParams,
    TokenizeParams,
    TrainConfig,
    section,
    variant_runtime,
)
from pipeline.runtime import pick_device, set_threads
from pipeline.training import distributed
from pipeline.training.checkpoints import fingerprint, load_checkpoint
from pipeline.training.prepare import prepare
from pipeline.training.train import Checkpointing, TrainingRun, fit


@dataclass(frozen=True)
class TrainPaths:
    """Where the stage reads and writes (stages/train.py names them)."""

    processed: str     # the vocab and embeddings stages' outputs
    tokens: str        # the whole validation sentences, for the scores after every epoch
    questions: str     # and their original English
    models: Path       # models/VARIANT
    checkpoints: Path  # not a DVC output: it must survive a killed run
    dvclive: Path      # dvclive/VARIANT: the curves


def run_variant(variant: str, params: dict, paths: TrainPaths, command: list[str]) -> None:
    """Train `variant`. With runtime.processes > 1 and not started by a launcher, start
    `command` (this stage again) on that many processes under PyTorch's elastic launcher and
    wait; started by one (that one or torchrun), be one of them: only the first one writes."""
    runtime = variant_runtime(params, variant)
    if runtime.processes > 1 and not distributed.in_worker():
        # this process only starts the others and waits: they are this script again
        distributed.launch(runtime.processes, command, f"train@{variant}")
        return
    world, device = distributed.init(pick_device(runtime.device, "runtime.device"),
                                     runtime.timeout, runtime.first_gpu)
    with distributed.process_group(world):
        train_variant(params, variant, world, device, runtime, paths)


def epoch_changes(cfg: TrainConfig, units: Words | Pieces, train: Split, pool: Split | None
                  ) -> Callable[[Split, int], Split] | None:
    """What changes an epoch's pairs before it trains, if anything: made-up names
    (cfg.name_swaps), then new segmentations (cfg.sampling), both seeded by the seed and the
    epoch, so that a resumed run draws what an uninterrupted one did. Neither makes a pair
    longer than the longest of `train` and `pool` (the captured CUDA steps' shapes)."""
    if not (cfg.sampling or cfg.name_swaps):  # TrainConfig.check: pieces only
        return None
    longest = max_lengths(train, pool)

    def change(pairs: Split, epoch: int) -> Split:
        seed = cfg.seed * 1_000_003 + epoch
        if cfg.name_swaps:
            pairs = swap_names(pairs, units, cfg.name_swaps, seed, longest)
        if cfg.sampling:
            pairs = sample_pieces(pairs, units, cfg.sampling, seed, longest)
        return pairs
    return change


def train_variant(params: dict, variant: str, world: distributed.World,
                  device: torch.device, runtime: RuntimeConfig, paths: TrainPaths) -> None:
    ready = prepare(params, variant, paths.processed)
    model, valid, vocab_en = ready.model, ready.valid, ready.vocab_en
    evaluate: EvaluateParams = section(params, "evaluate", EvaluateParams)
    # val_bleu and val_chrf after every epoch, as the evaluate stage scores them (fit calls
    # this in the first process only and hands the scores to the others)
    tokenize = section(params, "tokenize", TokenizeParams)
    units, files = training_units(ready.train_cfg.units, ready.units_dir, tokenize,
                                  ready.vocab_fr, asdict(section(params, "subwords",
                                                                 SubwordsParams)))
    whole = whole_set(valid, pd.read_parquet(paths.tokens).set_index("line"),
                      pd.read_parquet(paths.questions).set_index("line"), ready.vocab_fr, units)
    limit = OutputLimit.of(evaluate)

    def score(m: Model) -> dict[str, float]:
        return greedy_scores(m, whole, vocab_en, units, evaluate.batch_size, limit, device)
    if world.size > 1 and runtime.threads == 0 and device.type == "cpu":
        set_threads(distributed.threads_per_process(world))
    # the runtime section may change on a resume; the scores' definition decides which epoch
    # is kept, so it may not
    tag = fingerprint(ready.model_cfg, ready.train_cfg, ready.data_digest,
                      {k: getattr(evaluate, k) for k in ("max_len_a", "max_len_b", "max_len_cap")})
    path = paths.checkpoints / f"{variant}.pt"
    # the first process reads the checkpoint and hands it to the others
    state = distributed.from_main(load_checkpoint(path, tag) if world.main else None, world)
    checkpoint = Checkpointing(path, tag, state)
    cfg = ready.train_cfg
    resample = epoch_changes(cfg, units, ready.train, ready.pool)
    run = TrainingRun(model, ready.train, valid, ready.train_cfg, device, runtime, world,
                      ready.pool, resample)
    distributed.main_print(
        world, f"train@{variant}: {sum(p.numel() for p in model.parameters()):,} parameters, "
        f"{cfg.units}, {len(ready.train):,} train / {len(valid):,} valid pairs"
        + (f" (x{cfg.question_repeats})" if cfg.question_repeats > 1 else "")
        + (f", {min(cfg.pool, len(ready.pool)):,} of {len(ready.pool):,} pool pairs an epoch"
           if ready.pool is not None else "")
        + (f", sampling {cfg.sampling}" if cfg.sampling else "")
        + (f", names swapped in {cfg.name_swaps:.0%} of pairs" if cfg.name_swaps else "")
        + (f", averaging the last {cfg.average} epochs" if cfg.average > 1 else "")
        + f", device {device.type}"
        + (f", {world.size} processes" if world.size > 1 else ""))
    if not world.main:  # only the first process writes
        fit(run, checkpoint, score)
        return
    with Live(str(paths.dvclive / variant), resume=state is not None, dvcyaml=None, report=None,
              save_dvc_exp=False) as live:
        if state is not None:  # one step per epoch: go on from the epochs already logged
            live.step = state["epoch"]
        def log(values: dict) -> None:
            for key in ("train_loss", "val_loss", "val_bleu", "val_chrf", "pr_force", "lr"):
                live.log_metric(key, values[key])
            live.next_step()

        result = fit(run, checkpoint, score, log)
    config = model_config(ready.model_cfg, tokenize, model.tgt_emb.embedding_dim,
                          max_len(ready.train.src + valid.src),
                          max_len(ready.train.tgt + valid.tgt))
    if units.kind == "pieces":
        config["units"] = units.record()
    save_model_dir(paths.models / variant, model, config, ready.vocab_fr, vocab_en,
                   extra={"train.json": result}, files=files)
    path.unlink(missing_ok=True)  # finished: the next run starts fresh
