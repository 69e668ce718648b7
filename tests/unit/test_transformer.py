"""The Transformer variant: its cached decoder step against its full causal forward, the
causal mask, padding, and the variant's params."""

from __future__ import annotations

import pytest
import torch
from support.models import EMB, ROOT, SRC_V, TGT_V, batch, small_cfg

from pipeline.data.vocab import BOS, PAD
from pipeline.decoding.search import beam_search, greedy
from pipeline.errors import PipelineError
from pipeline.models.build import build_model
from pipeline.models.decoder import select_state
from pipeline.models.transformer import Transformer
from pipeline.params import load_params, variant_configs


def model(seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    m = build_model(small_cfg("transformer", heads=3, ff_size=20), SRC_V, TGT_V, EMB).eval()
    assert isinstance(m, Transformer)
    return m


def stepwise(m: Transformer, src: torch.Tensor, lens: torch.Tensor, tgt: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (B, T, D) and attention (B, T, S) from the cached step, fed the true words."""
    state = m.start(src, lens)
    inp = torch.full((src.size(0),), BOS, dtype=torch.long)
    feats, attns = [], []
    for t in range(tgt.size(1)):
        f, state, w = m.step(inp, state)
        feats.append(f)
        attns.append(w)
        inp = tgt[:, t]
    return torch.stack(feats, 1), torch.stack(attns, 1)


@torch.no_grad()
def test_the_cached_step_equals_the_causal_forward_at_every_position() -> None:
    m = model()
    src, lens, tgt = batch(5, 7, 9)
    tgt[2, 6:] = PAD  # a padded target row too
    full, full_att = m.decode(m.start(src, lens), tgt)
    step, step_att = stepwise(m, src, lens, tgt)
    assert torch.allclose(step, full, atol=1e-5)
    assert torch.allclose(step_att, full_att, atol=1e-6)
    # the cache holds one key per step and layer, and beam search's reordering keeps it whole
    state = m.start(src, lens)
    _, state, _ = m.step(torch.full((5,), BOS), state)
    again = select_state(state, torch.tensor([4, 0, 0]))
    assert again.self_k.shape[1:4] == (3, 3, 1) and torch.equal(again.self_k[:, 1],
                                                                  state.self_k[:, 0])


@torch.no_grad()
def test_the_causal_mask_holds() -> None:
    m = model(1)
    src, lens, tgt = batch(3, 6, 8)
    before = m(src, lens, tgt)
    for t in (0, 3, 6):
        changed = tgt.clone()
        changed[:, t] = (changed[:, t] - 4 + 1) % (TGT_V - 4) + 4  # another real word
        after = m(src, lens, changed)
        # step t + 1 is the first whose input is tgt[:, t]
        assert torch.equal(after[:, : t + 1], before[:, : t + 1])
        assert not torch.allclose(after[:, t + 1], before[:, t + 1])


@torch.no_grad()
def test_padding_changes_nothing() -> None:
    """A sentence alone and inside a padded batch (source and target padded) give the same
    features, and attention never looks at the source's padding."""
    m = model(2)
    src, lens, tgt = batch(4, 8, 6)
    tgt[1:, 4:] = PAD
    feats, att = m.decode(m.start(src, lens), tgt)
    for i in range(4):
        n, tn = int(lens[i]), 4 if i else 6
        alone, _ = m.decode(m.start(src[i:i + 1, :n], lens[i:i + 1]), tgt[i:i + 1, :tn])
        assert torch.allclose(alone[0], feats[i, :tn], atol=1e-5)
    pad = torch.arange(8)[None, :] >= lens[:, None]
    assert (att.masked_select(pad[:, None, :].expand_as(att)) == 0).all()
    assert torch.allclose(att.sum(-1), torch.ones(4, 6))


def test_beam_of_one_is_greedy_and_rows_do_not_depend_on_their_neighbours() -> None:
    m = model(3)
    with torch.no_grad():
        m.out.bias[2] += 1.0  # _eos_ likelier, so that rows end at different steps
    src, lens, _ = batch(6, 7, 1, seed=3)
    g, attn = greedy(m, src, lens, 9)
    assert attn.shape[0] == 6 and attn.shape[2] == 7
    assert [h[0].ids for h in beam_search(m, src, lens, 9, beam_size=1, alpha=0.0)] == g
    for i in range(6):
        n = int(lens[i])
        assert greedy(m, src[i:i + 1, :n], lens[i:i + 1], 9)[0][0] == g[i]
        alone = beam_search(m, src[i:i + 1, :n], lens[i:i + 1], 9, beam_size=3, alpha=0.6)
        together = beam_search(m, src, lens, 9, beam_size=3, alpha=0.6)
        assert alone[0][0].ids == together[i][0].ids


def test_it_trains() -> None:
    """A few Adam steps on one batch lower its loss, and the loss ignores `force`."""
    m = model(4).train()
    src, lens, tgt = batch(8, 6, 5, seed=4)
    torch.manual_seed(0)
    a = m.loss(src, lens, tgt, [True] * 5)
    torch.manual_seed(0)
    assert torch.equal(m.loss(src, lens, tgt, [False] * 5), a)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        m.loss(src, lens, tgt, None).backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        assert m.loss(src, lens, tgt, None) < 0.5 * a.detach()


def test_the_variant_from_params_and_its_refusals() -> None:
    params = load_params(ROOT / "params.yaml")
    model_cfg, train_cfg = variant_configs(params, "transformer")
    assert model_cfg.kind == "transformer" and train_cfg.teacher_forcing
    m = build_model(model_cfg, 50, 40, 300)
    assert isinstance(m, Transformer) and m.out.weight is m.tgt_emb.weight
    with pytest.raises(PipelineError, match=r"model.heads: 7 does not divide the model size 300"):
        build_model(small_cfg("transformer", heads=7), 50, 40, 300)
    # its padding is masked everywhere, so the CUDA step may be captured (a pure decision)
    from pipeline.training.cuda_graphs import uses_graphs
    cuda = torch.device("cuda")
    assert m.masks_padding and uses_graphs(m, train_cfg, cuda)
    assert not uses_graphs(m, train_cfg, torch.device("cpu"))
    assert not uses_graphs(build_model(small_cfg("basic", mask_padding=False), 50, 40, 300),
                           train_cfg, cuda)
    params["variants"]["transformer"]["train"]["teacher_forcing"] = False
    with pytest.raises(PipelineError, match=r"variants.transformer.train: a transformer trains"):
        variant_configs(params, "transformer")
    params["model"]["kind"] = "lstm"
    with pytest.raises(PipelineError, match=r"model.kind: 'lstm' is not one of gru, transformer"):
        variant_configs(params, "basic")


def test_an_ensemble_of_a_transformer_and_a_gru_variant_decodes() -> None:
    from pipeline.decoding.search import Ensemble

    torch.manual_seed(5)
    gru = build_model(small_cfg("all"), SRC_V, TGT_V, EMB).eval()
    ens = Ensemble([model(5), gru])
    src, lens, _ = batch(4, 6, 1, seed=5)
    g, attn = greedy(ens, src, lens, 8)
    assert attn is not None and attn.shape[0] == 4  # the first model's weights
    assert [h[0].ids for h in beam_search(ens, src, lens, 8, beam_size=1, alpha=0.0)] == g


def test_shared_embeddings_are_one_matrix_and_survive_a_model_directory(tmp_path) -> None:
    """model.share_embeddings: the source, target and output rows are one tensor (a joint
    vocabulary), trained as one, saved and loaded as one; unequal vocabularies are refused."""
    from pipeline.models.modeldir import load_model_dir, model_config, save_model_dir
    from pipeline.params import TokenizeParams

    torch.manual_seed(0)
    cfg = small_cfg("transformer", heads=3, ff_size=20, share_embeddings=True)
    vectors = torch.randn(SRC_V, EMB)
    m = build_model(cfg, SRC_V, SRC_V, EMB, vectors, torch.randn(SRC_V, EMB))
    assert m.src_emb is m.tgt_emb and m.out.weight is m.src_emb.weight
    found = vectors.abs().sum(1) > 0  # the shared rows start from the source's vectors
    assert torch.allclose(m.src_emb.weight[found][5] / vectors[found][5],
                          m.src_emb.weight[found][6] / vectors[found][6])
    plain = build_model(small_cfg("transformer", heads=3, ff_size=20), SRC_V, SRC_V, EMB)
    shared_n = sum(p.numel() for p in m.parameters())
    assert sum(p.numel() for p in plain.parameters()) - shared_n == SRC_V * EMB
    src, lens, tgt = batch(3, 5, 4)
    m.train()
    m.loss(src, lens, tgt, None).backward()
    assert m.src_emb.weight.grad is not None  # both sides' gradients reach the one matrix
    save_model_dir(tmp_path / "m", m, model_config(cfg, TokenizeParams(), EMB, 9, 9),
                   [f"w{i}" for i in range(SRC_V)], [f"w{i}" for i in range(SRC_V)])
    loaded, *_ = load_model_dir(tmp_path / "m", torch.device("cpu"))
    assert loaded.src_emb is loaded.tgt_emb
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(src, lens, tgt), loaded(src, lens, tgt))
    with pytest.raises(PipelineError, match=r"model.share_embeddings: the vocabularies differ "
                                            r"\(37 and 29 units\)"):
        build_model(cfg, SRC_V, TGT_V, EMB)
