"""fren-nmt serve: trained models behind HTTP (FastAPI + uvicorn), and a page to try them.

    POST /translate  {"sentences": [...], "beam": 1, "nbest": 1, "alpha": ALPHA,
                      "attention": false}   (ALPHA: evaluate.alpha's default)
                     -> {"translations": [{"source", "hypotheses": [{"text", "tokens",
                         "score", "log_prob"}], "attention": {"source", "output", "weights"}}]}
    GET /health, GET /models, GET / (the page, pipeline/static/index.html)

Requests that arrive together are decoded together: each sentence joins a queue, and one
worker takes up to `max_batch` sentences with the same search settings once the oldest has
waited `max_wait` seconds (or the batch is full), decodes them in one batch off the event loop
and hands every request its own answers. A sentence's translation does not depend on its
batch-mates (Translator.search sorts and pads per batch;
tests/integration/test_translate.py checks it), so batching changes speed, never answers.
"""

import asyncio
import collections
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.files import read_json
from pipeline.params import MAX_ALPHA, EvaluateParams, valid_alpha

if TYPE_CHECKING:  # torch loads only when a server starts, not for `fren-nmt --help`
    from pipeline.decoding.translate import Translator

STATIC = Path(__file__).with_name("static")


@dataclass(frozen=True)
class ServeLimits:
    """What one server accepts; `fren-nmt serve --help` documents each."""

    max_sentences: int = 64   # sentences in one request
    max_chars: int = 500      # characters in one sentence
    max_beam: int = 16        # beam size (and so n-best)
    max_batch: int = 32       # sentences decoded together
    max_wait: float = 0.01    # seconds the oldest queued sentence waits for batch-mates
    max_queue: int = 1024     # sentences waiting; past it, 503 with Retry-After
    timeout: float = 30.0     # seconds a request may take; past it, 504


class HTTPProblem(Exception):
    """An answer other than 200: its status, a message and the field it is about."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers


@dataclass(frozen=True)
class Options:
    """The search settings a batch shares."""

    beam: int = 1
    nbest: int = 1
    alpha: float = EvaluateParams.alpha
    attention: bool = False


def parse_request(body: bytes, limits: "ServeLimits", attends: bool
                  ) -> tuple[list[str], Options]:
    """The sentences and search settings of a /translate body, or the HTTPProblem saying
    which limit or field it breaks: 400 for bytes that are not UTF-8 JSON, 413 for too many
    or too long sentences, 422 for a bad field."""
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise HTTPProblem(400, f"body is not UTF-8 ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise HTTPProblem(400, f"body is not JSON ({e.msg} at line {e.lineno} column "
                          f"{e.colno})") from None
    if not isinstance(data, dict):
        raise HTTPProblem(422, "body must be a JSON object with a \"sentences\" list")
    unknown = sorted(set(data) - {"sentences", "beam", "nbest", "alpha", "attention"})
    if unknown:
        raise HTTPProblem(422, f"{unknown[0]}: unknown field (known: sentences, beam, nbest, "
                          "alpha, attention)", unknown[0])
    sentences = data.get("sentences")
    if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
        raise HTTPProblem(422, "sentences: must be a list of strings", "sentences")
    if len(sentences) > limits.max_sentences:
        raise HTTPProblem(413, f"sentences: {len(sentences)} sentences, at most "
                          f"{limits.max_sentences} a request (max_sentences)", "sentences")
    for i, s in enumerate(sentences):
        if len(s) > limits.max_chars:
            raise HTTPProblem(413, f"sentences[{i}]: {len(s)} characters, at most "
                              f"{limits.max_chars} (max_chars)", "sentences")

    def whole(name: str, default: int, top: int) -> int:
        value = data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise HTTPProblem(422, f"{name}: {value!r} is not a whole number from 1 to {top}",
                              name)
        return value

    beam = whole("beam", 1, limits.max_beam)
    nbest = whole("nbest", 1, beam)
    alpha = data.get("alpha", Options.alpha)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not valid_alpha(alpha):
        raise HTTPProblem(422, f"alpha: {alpha!r} is not a number from 0 to {MAX_ALPHA:g}",
                          "alpha")
    attention = data.get("attention", False)
    if not isinstance(attention, bool):
        raise HTTPProblem(422, f"attention: {attention!r} is not true or false", "attention")
    if attention and not attends:
        raise HTTPProblem(422, "attention: this model has no attention to show (serve an "
                          "attention, all or transformer model)", "attention")
    return sentences, Options(beam, nbest, float(alpha), attention)


def decode(translator: "Translator", sentences: list[str], opts: Options) -> list[dict]:
    """Each sentence's answer: its n-best hypotheses (text, tokens, scores), and the attention
    behind the best one when asked."""
    from pipeline.data.vocab import ids_to_tokens

    found = translator.search(sentences, len(sentences) or 1, opts.beam, opts.alpha, opts.nbest,
                      scored=True)
    answers = []
    for source, hyps in zip(sentences, found):
        out = []
        for h in hyps:
            tokens = ids_to_tokens(h.ids, translator.vocab_en)
            out.append({"text": translator.units.text(tokens), "tokens": tokens,
                        "score": h.score, "log_prob": h.log_prob})
        answers.append({"source": source, "hypotheses": out})
    if opts.attention:
        shown = [i for i, hyps in enumerate(found) if hyps]
        weights = translator.attention([sentences[i] for i in shown],
                                       [found[i][0].ids for i in shown])
        for i, (src, tgt, w) in zip(shown, weights or []):
            answers[i]["attention"] = {"source": src, "output": tgt, "weights": w}
        for i in set(range(len(sentences))) - set(shown):
            answers[i]["attention"] = {"source": [], "output": [], "weights": []}
    return answers


@dataclass
class _Item:
    sentence: str
    opts: Options
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


class Batcher:
    """The queue of sentences and the one worker that decodes them in batches."""

    def __init__(self, decode_batch, limits: ServeLimits) -> None:  # noqa: ANN001
        self.decode_batch = decode_batch  # (sentences, Options) -> list of answers
        self.limits = limits
        self.pending: collections.deque[_Item] = collections.deque()
        self.wake = asyncio.Event()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="decode")
        # the sizes of the last 1,000 batches (tests read them; bounded for a long-lived
        # server) and how many were decoded in all (/health)
        self.batches: collections.deque[int] = collections.deque(maxlen=1000)
        self.decoded = 0
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.executor.shutdown(wait=False, cancel_futures=True)

    def submit(self, sentences: list[str], opts: Options) -> list[asyncio.Future]:
        """One future per sentence; a 503 HTTPProblem if the queue cannot take them all."""
        if len(self.pending) + len(sentences) > self.limits.max_queue:
            # requests that timed out leave their sentences behind, cancelled: they don't count
            self.pending = collections.deque(i for i in self.pending if not i.future.done())
        if len(self.pending) + len(sentences) > self.limits.max_queue:
            raise HTTPProblem(503, f"the queue is full ({len(self.pending)} sentences waiting, "
                              f"at most {self.limits.max_queue}: max_queue); retry shortly",
                              headers={"Retry-After": "1"})
        loop = asyncio.get_running_loop()
        futures = []
        for s in sentences:
            item = _Item(s, opts, loop.create_future())
            self.pending.append(item)
            futures.append(item.future)
        self.wake.set()
        return futures

    def _take(self) -> list[_Item]:
        """Up to max_batch live sentences sharing the oldest one's settings, in order."""
        while self.pending and self.pending[0].future.done():  # cancelled: timed out
            self.pending.popleft()
        if not self.pending:
            return []
        opts = self.pending[0].opts
        batch, rest = [], collections.deque()
        while self.pending and len(batch) < self.limits.max_batch:
            item = self.pending.popleft()
            if item.future.done():
                continue
            (batch if item.opts == opts else rest).append(item)
        self.pending.extendleft(reversed(rest))
        return batch

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.pending:
                self.wake.clear()
                await self.wake.wait()
                continue
            # wait for batch-mates until the oldest has waited max_wait or the batch is full
            left = self.limits.max_wait - (time.monotonic() - self.pending[0].arrived)
            if left > 0 and len(self.pending) < self.limits.max_batch:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), left)
                except TimeoutError:
                    pass
                continue
            batch = self._take()
            if not batch:
                continue
            self.batches.append(len(batch))
            self.decoded += 1
            try:
                answers = await loop.run_in_executor(
                    self.executor, self.decode_batch, [i.sentence for i in batch],
                    batch[0].opts)
            except Exception as e:  # a bug, not bad input: the batch's requests get a 500
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(e)
                continue
            for item, answer in zip(batch, answers):
                if not item.future.done():
                    item.future.set_result(answer)


def model_info(paths: list[Path], translator: "Translator") -> dict:
    """What GET /models shows: each model's name, kind, vocabularies, options, kept epoch."""
    models = []
    for p in paths:
        if translator.model is None:  # a CTranslate2 export (one directory): its record
            info = translator.config
            models.append({"name": p.name, "path": str(p), "kind": "transformer",
                           "engine": "ctranslate2", "quantization": info["quantization"],
                           "exported_from": info["exported_from"],
                           "vocab_fr": len(translator.vocab_fr),
                           "vocab_en": len(translator.vocab_en)})
            continue
        config = read_json(p / "config.json")
        trained = read_json(p / "train.json") if (p / "train.json").is_file() else {}
        models.append({
            "name": p.name, "path": str(p), "kind": config["model"].get("kind", "gru"),
            "engine": "ctranslate2" if translator.model is None else "pytorch",
            "vocab_fr": len(read_json(p / "vocab_fr.json")),
            "vocab_en": len(read_json(p / "vocab_en.json")),
            "params": config["model"],
            "best_epoch": trained.get("best_epoch"), "keep": trained.get("keep"),
            "epochs": trained.get("epochs"),
        })
    return {"ensemble": len(paths) > 1, "attends": translator.attends, "models": models}


def create_app(model: str | Path | list, device: str = "cpu",
               limits: ServeLimits | None = None, translator: "Translator | None" = None):  # noqa: ANN201 - a FastAPI app
    """The FastAPI app serving these model directories (several: an ensemble)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import FileResponse, JSONResponse

    from pipeline.decoding.engines import open_translator

    paths = [Path(p) for p in (model if isinstance(model, list) else [model])]
    limits = limits or ServeLimits()
    translator = translator or open_translator(paths, device=device)
    info = model_info(paths, translator)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        app.state.batcher = Batcher(lambda s, o: decode(translator, s, o), limits)
        app.state.batcher.start()
        yield
        await app.state.batcher.stop()

    app = FastAPI(title="fren-nmt", lifespan=lifespan,
                  description="French questions in, English out.")

    def problem(e: HTTPProblem) -> JSONResponse:
        return JSONResponse({"error": e.message, "field": e.field}, e.status, e.headers)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/health")
    async def health() -> dict:
        b = app.state.batcher
        return {"status": "ok", "queued": len(b.pending), "batches": b.decoded}

    @app.get("/models")
    async def models() -> dict:
        return {**info, "limits": asdict(limits)}

    @app.post("/translate")
    async def translate(request: Request) -> JSONResponse:
        try:
            sentences, opts = parse_request(await request.body(), limits, translator.attends)
            futures = app.state.batcher.submit(sentences, opts)
        except HTTPProblem as e:
            return problem(e)
        try:
            answers = await asyncio.wait_for(asyncio.gather(*futures), limits.timeout)
        except TimeoutError:  # gather cancelled the futures: the batcher skips them
            return problem(HTTPProblem(504, f"not translated within {limits.timeout} s "
                                       "(timeout); the server is busy, retry later"))
        return JSONResponse({"translations": answers})

    return app


def serve(models: list[str], host: str, port: int, device: str, limits: ServeLimits,
          engine: str = "auto") -> None:
    import uvicorn

    from pipeline.decoding.engines import open_translator

    app = create_app(models, device, limits, open_translator(models, device, engine))
    print(f"serving {', '.join(models)} on http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
