"""Shared fixtures: tarballs the tests write themselves, the shared Tatoeba tarball, and a
small model directory (tests/support holds the builders)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from support.corpus import SHARED_TARBALL, make_tarball


@pytest.fixture
def tarball(tmp_path: Path) -> Path:
    return make_tarball(tmp_path / "small.tar")


@pytest.fixture
def shared_tarball() -> Path:
    if not SHARED_TARBALL.exists():
        message = f"shared tarball not found at {SHARED_TARBALL} (set FREN_NMT_TARBALL)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI always has it: a missing file is a broken setup
        pytest.skip(message)
    return SHARED_TARBALL


# The tiny model's vocabularies: the special tokens, then a few words of each language.
FR_WORDS = "où est la gare qui a fait ça pourquoi pas quand vient-il ?".split()
EN_WORDS = "where is the station who did that why not when does he come ?".split()


def _vocab(words: list[str]) -> list[str]:
    from pipeline.data.vocab import SPECIALS

    return SPECIALS + words


FR_VOCAB, EN_VOCAB = _vocab(FR_WORDS), _vocab(EN_WORDS)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random attention model with its vocabularies, as train@VARIANT writes it."""
    from pipeline.models.build import build_model
    from pipeline.models.modeldir import model_config, save_model_dir
    from pipeline.params import ModelConfig, TokenizeParams

    torch.manual_seed(1)  # a seed whose outputs differ from sentence to sentence
    cfg = ModelConfig(enc_hidden=8, att_hidden=8, bidirectional=True, attention=True,
                      emb_std=1.0)
    model = build_model(cfg, len(FR_VOCAB), len(EN_VOCAB), 10)
    path = tmp_path_factory.mktemp("m") / "model"
    save_model_dir(path, model, model_config(cfg, TokenizeParams(), 10, 12, 8), FR_VOCAB,
                   EN_VOCAB)
    return path
