"""fren-nmt serve: the API's answers are the translator's, batching never mixes requests up,
and every bad request gets its 4xx (or 503, 504) with a JSON message naming the limit or
field, without disturbing the requests in flight."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.decoding.translate import Translator
from pipeline.serve import Batcher, HTTPProblem, Options, ServeLimits, create_app, decode

SENTENCES = ["Où est la gare ?", "Qui a fait ça ?", "Pourquoi pas ?", "Quand vient-il ?"]


@pytest.fixture(scope="module")
def translator(model_dir: Path) -> Translator:
    return Translator(model_dir)


def client(model_dir: Path, translator: Translator, **limits: float) -> TestClient:
    return TestClient(create_app(model_dir, limits=ServeLimits(**limits), translator=translator))


def test_answers_are_the_translators_in_order_with_nbest_and_attention(
        model_dir: Path, translator: Translator) -> None:
    with client(model_dir, translator) as c:
        r = c.post("/translate", json={"sentences": SENTENCES + [""], "beam": 4, "nbest": 3,
                                       "alpha": 0.6, "attention": True})
    assert r.status_code == 200, r.text
    got = r.json()["translations"]
    assert [t["source"] for t in got] == SENTENCES + [""]
    expected = translator.search(SENTENCES, beam_size=4, alpha=0.6, n_best=3)
    for t, hyps in zip(got, expected):
        assert len(t["hypotheses"]) == 3
        assert [h["tokens"] for h in t["hypotheses"]] == [
            [translator.vocab_en[i] for i in h.ids] for h in hyps]
        assert [h["score"] for h in t["hypotheses"]] == pytest.approx([h.score for h in hyps])
        scores = [h["score"] for h in t["hypotheses"]]
        assert scores == sorted(scores, reverse=True)
        att = t["attention"]  # of the best hypothesis: a row per output token and the end
        assert att["output"] == t["hypotheses"][0]["tokens"] + ["_eos_"]
        assert att["source"][-1] == "_eos_" and len(att["weights"]) == len(att["output"])
        for row in att["weights"]:
            assert len(row) == len(att["source"]) and sum(row) == pytest.approx(1, abs=1e-5)
    assert got[-1]["hypotheses"] == [] and got[-1]["attention"]["weights"] == []
    assert any(not t["hypotheses"][0]["tokens"] for t in got[:-1])  # an empty best: one row


def test_greedy_answer_is_the_translate_commands_text(model_dir: Path,
                                                      translator: Translator) -> None:
    with client(model_dir, translator) as c:
        r = c.post("/translate", json={"sentences": SENTENCES})
    texts = [t["hypotheses"][0]["text"] for t in r.json()["translations"]]
    assert texts == translator.translate(SENTENCES)  # beam 1 scored = greedy's output


def test_attention_weights_are_the_searchs_own(translator: Translator) -> None:
    """Forced decoding of the found hypothesis gives the weights greedy search saw."""
    import torch

    from pipeline.data.batches import pad
    from pipeline.data.vocab import BOS, EOS
    from pipeline.decoding.search import forced_attention, greedy

    src, src_len = pad([translator.encode(s) for s in SENTENCES])
    hyps, _ = greedy(translator.model, src, src_len, 8)  # some reach 8: no _eos_
    weights = forced_attention(translator.model, src, src_len, hyps)
    state = translator.model.start(src, src_len)  # redo greedy by hand, keeping the weights
    prev = torch.full((len(SENTENCES),), BOS, dtype=torch.long)
    for t in range(max(len(h) for h in hyps) + 1):
        feat, state, w = translator.model.step(prev, state)
        prev = translator.model.out(feat).argmax(-1)
        for r, h in enumerate(hyps):
            if t <= len(h):  # its tokens, then the step that chose _eos_ (or hit the limit)
                assert prev[r].item() == (h[t] if t < len(h) else EOS) or len(h) == 8
                assert torch.allclose(weights[r][t], w[r, :src_len[r]], atol=1e-6)


def test_health_and_models(model_dir: Path, translator: Translator) -> None:
    with client(model_dir, translator) as c:
        assert c.get("/health").json()["status"] == "ok"
        info = c.get("/models").json()
        page = c.get("/")
    m = info["models"][0]
    assert info["attends"] is True and info["ensemble"] is False
    assert (m["name"], m["kind"]) == ("model", "gru")
    assert (m["vocab_fr"], m["vocab_en"]) == (len(translator.vocab_fr), len(translator.vocab_en))
    assert m["params"]["attention"] is True and info["limits"]["max_batch"] == 32
    assert page.status_code == 200 and "<textarea" in page.text


@pytest.mark.parametrize("body,status,field", [
    (b"\xff\xfe not utf-8", 400, None),
    (b'{"sentences": ["a"', 400, None),
    (b'["a"]', 422, None),
    (json.dumps({"sentences": "Où ?"}).encode(), 422, "sentences"),
    (json.dumps({"sentences": [1]}).encode(), 422, "sentences"),
    (json.dumps({"sentences": ["a"] * 5}).encode(), 413, "sentences"),
    (json.dumps({"sentences": ["a" * 21]}).encode(), 413, "sentences"),
    (json.dumps({"sentences": ["a"], "beam": 0}).encode(), 422, "beam"),
    (json.dumps({"sentences": ["a"], "beam": 5}).encode(), 422, "beam"),
    (json.dumps({"sentences": ["a"], "beam": 2.5}).encode(), 422, "beam"),
    (json.dumps({"sentences": ["a"], "beam": True}).encode(), 422, "beam"),
    (json.dumps({"sentences": ["a"], "beam": 2, "nbest": 3}).encode(), 422, "nbest"),
    (json.dumps({"sentences": ["a"], "alpha": -1}).encode(), 422, "alpha"),
    (json.dumps({"sentences": ["a"], "attention": "yes"}).encode(), 422, "attention"),
    (json.dumps({"sentences": ["a"], "beams": 2}).encode(), 422, "beams"),
])
def test_bad_requests_get_4xx_naming_the_limit_or_field(model_dir: Path, translator: Translator,
                                                        body: bytes, status: int,
                                                        field: str | None) -> None:
    with client(model_dir, translator, max_sentences=4, max_chars=20, max_beam=4) as c:
        r = c.post("/translate", content=body, headers={"Content-Type": "application/json"})
        assert (r.status_code, r.json()["field"]) == (status, field), r.text
        assert r.json()["error"]
        if field:
            assert r.json()["error"].startswith(field)
        assert c.post("/translate", json={"sentences": ["Où ?"]}).status_code == 200


def test_attention_from_a_model_without_it_is_422(model_dir: Path,
                                                  translator: Translator) -> None:
    no_attention = Translator(model_dir)
    no_attention.attends = False
    with TestClient(create_app(model_dir, translator=no_attention)) as c:
        r = c.post("/translate", json={"sentences": ["Où ?"], "attention": True})
        assert (r.status_code, r.json()["field"]) == (422, "attention")
        assert c.get("/models").json()["attends"] is False


def slow_decode(translator: Translator, seconds: float):  # noqa: ANN201
    def run(sentences: list[str], opts: Options) -> list[dict]:
        time.sleep(seconds)
        return decode(translator, sentences, opts)
    return run


def test_concurrent_requests_are_batched_and_each_gets_its_own_answers(
        model_dir: Path, translator: Translator) -> None:
    """Eight clients at once, each its own sentences and settings: fewer batches than
    requests, and every answer is the one its sentence gets alone."""
    alone = {(s, b): translator.search([s], beam_size=b, alpha=0.6, scored=True)[0][0].ids
             for s in SENTENCES for b in (1, 2)}
    app = create_app(model_dir, limits=ServeLimits(max_batch=32, max_wait=0.2),
                     translator=translator)
    results: dict[int, list] = {}
    with TestClient(app) as c:
        def ask(k: int) -> None:
            mine = [SENTENCES[(k + j) % 4] for j in range(1 + k % 3)]
            r = c.post("/translate", json={"sentences": mine, "beam": 1 + k % 2})
            results[k] = [(s, 1 + k % 2, t) for s, t in zip(mine, r.json()["translations"])]
        threads = [threading.Thread(target=ask, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        batches = app.state.batcher.batches
    assert sorted(results) == list(range(8))
    vocab = translator.vocab_en
    for answers in results.values():
        for s, beam, t in answers:
            assert t["source"] == s
            assert t["hypotheses"][0]["tokens"] == [vocab[i] for i in alone[(s, beam)]]
    assert sum(batches) == sum(len(a) for a in results.values())
    assert len(batches) < 8  # batched across requests (two settings: at least two batches)


def test_a_full_queue_is_503_with_retry_after_and_a_slow_request_504(
        model_dir: Path, translator: Translator) -> None:
    app = create_app(model_dir, limits=ServeLimits(max_queue=2, timeout=0.3, max_wait=0),
                     translator=translator)
    with TestClient(app) as c:
        app.state.batcher.decode_batch = slow_decode(translator, 0.8)
        out: dict = {}
        first = threading.Thread(target=lambda: out.update(a=c.post(
            "/translate", json={"sentences": ["Où ?"]})))
        first.start()
        time.sleep(0.1)  # the first is decoding; two more fill the queue
        second = threading.Thread(target=lambda: out.update(b=c.post(
            "/translate", json={"sentences": ["Qui ?", "Quand ?"]})))
        second.start()
        time.sleep(0.1)
        full = c.post("/translate", json={"sentences": ["Pourquoi ?"]})
        first.join()
        second.join()
        app.state.batcher.decode_batch = slow_decode(translator, 0)
        time.sleep(0.5)  # the slow batch ends
        after = c.post("/translate", json={"sentences": ["Où ?"]})
    assert full.status_code == 503 and full.headers["Retry-After"] == "1"
    assert "max_queue" in full.json()["error"]
    assert out["a"].status_code == 504 and "timeout" in out["a"].json()["error"]
    assert out["b"].status_code == 504
    assert after.status_code == 200  # the server is fine afterwards


def test_timed_out_sentences_are_never_decoded() -> None:
    """A request that gave up leaves the queue: the worker skips its cancelled sentences."""
    decoded: list[list[str]] = []

    async def main() -> None:
        b = Batcher(lambda s, o: decoded.append(s) or [{} for _ in s],
                    ServeLimits(max_wait=0.05))
        b.start()
        gone = b.submit(["a", "b"], Options())
        kept = b.submit(["c"], Options())
        for f in gone:
            f.cancel()
        await asyncio.gather(*kept)
        await b.stop()

    asyncio.run(main())
    assert decoded == [["c"]]


def test_cancelled_sentences_do_not_fill_the_queue() -> None:
    async def main() -> None:
        b = Batcher(lambda s, o: [{} for _ in s], ServeLimits(max_queue=2))  # never started
        for f in b.submit(["a", "b"], Options()):
            f.cancel()
        assert len(b.submit(["c", "d"], Options())) == 2  # room again
        try:
            b.submit(["e"], Options())
        except HTTPProblem as e:
            assert e.status == 503 and e.headers == {"Retry-After": "1"}
        else:
            raise AssertionError("a full queue took more")

    asyncio.run(main())


def test_batches_share_settings_and_keep_order() -> None:
    decoded: list[tuple[list[str], Options]] = []

    async def main() -> list:
        b = Batcher(lambda s, o: decoded.append((s, o)) or [x + "!" for x in s],
                    ServeLimits(max_wait=0.05, max_batch=3))
        b.start()
        beam2 = Options(beam=2)
        fs = [b.submit(["a", "b"], Options()), b.submit(["c"], beam2),
              b.submit(["d", "e"], Options())]
        out = [await asyncio.gather(*f) for f in fs]
        await b.stop()
        return out

    assert asyncio.run(main()) == [["a!", "b!"], ["c!"], ["d!", "e!"]]
    assert decoded == [(["a", "b", "d"], Options()), (["c"], Options(beam=2)),
                       (["e"], Options())]

