"""Load test of `fren-nmt serve` on the loopback: batching across requests against a maximum
batch of 1, and a check that every request gets exactly its own answers.

    python benchmarks/bench_serve.py --model models/transformer [--clients 16] [--requests 200]
    python benchmarks/bench_serve.py --model models/transformer-ct2   # a CTranslate2 export
    python benchmarks/bench_serve.py --model models/transformer --beam 5  # beam requests

Per setting, a fresh server process (`fren-nmt serve --max-batch B`, one torch thread) and
`--clients` concurrent clients that send `--requests` requests in all (1 to 4 French questions
each, drawn with a fixed seed from data/interim/questions.parquet; `--beam` in each request),
then stop. It prints
sentences per second over the whole run and the p50 and p99 request latency, and checks each
answer against the translation of its sentence decoded alone in this process: an answer lost,
swapped or changed by its batch-mates fails the run (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.data.vocab import ids_to_tokens  # noqa: E402
from pipeline.decoding.engines import open_translator  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, max_batch: int, max_wait: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen(["fren-nmt", "serve", "--model", model, "--port", str(port),
                             "--max-batch", str(max_batch), "--max-wait", str(max_wait),
                             "--max-queue", "100000", "--timeout", "600"], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"error: the server for {model} did not start within 60 s")


async def load(url: str, requests: list[list[str]], clients: int, beam: int
               ) -> tuple[list, list, float]:
    """Send every request (clients at a time); each request's sentences, answers, latency."""
    todo = list(enumerate(requests))
    answers: list = [None] * len(requests)
    latencies: list = [None] * len(requests)

    async def client(http: httpx.AsyncClient) -> None:
        while todo:
            k, sentences = todo.pop()
            start = time.perf_counter()
            r = await http.post(f"{url}/translate", json={"sentences": sentences,
                                                          "beam": beam})
            latencies[k] = time.perf_counter() - start
            answers[k] = r.json()["translations"] if r.status_code == 200 else r.text

    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=600) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return answers, latencies, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/transformer")
    ap.add_argument("--questions", default="data/interim/questions.parquet")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--max-wait", type=float, default=0.01)
    ap.add_argument("--batches", type=int, nargs="+", default=[32, 1])
    ap.add_argument("--beam", type=int, default=1, help="beam size of every request "
                    "(default 1, greedy; the server's default alpha)")
    args = ap.parse_args()

    pool = pd.read_parquet(args.questions, columns=["fr"])["fr"].tolist()
    rng = random.Random(0)
    requests = [rng.sample(pool, rng.randint(1, 4)) for _ in range(args.requests)]
    distinct = sorted({s for r in requests for s in r})
    torch.set_num_threads(1)  # the server's one thread: the same arithmetic
    tr = open_translator(args.model)  # a model directory, or a CTranslate2 export
    # each sentence's best hypothesis decoded alone, as the server shows its tokens (specials
    # such as a _bos_ the model emitted mid-sentence left out)
    alone = {s: ids_to_tokens(tr.search([s], beam_size=args.beam, scored=True)[0][0].ids,
                              tr.vocab_en) for s in distinct}
    print(f"{len(requests)} requests, {sum(map(len, requests))} sentences "
          f"({len(distinct)} distinct), {args.clients} clients, max_wait {args.max_wait} s, "
          f"beam {args.beam}, model {args.model}")
    print("| max batch | sentences/s | p50 latency | p99 latency | wrong or lost answers |")
    print("|---:|---:|---:|---:|---:|")
    failed = False
    for max_batch in args.batches:
        proc, url = start_server(args.model, max_batch, args.max_wait)
        try:
            answers, latencies, seconds = asyncio.run(load(url, requests, args.clients,
                                                           args.beam))
        finally:
            proc.terminate()
            proc.wait(30)
        wrong = 0
        for sentences, got in zip(requests, answers):
            if not isinstance(got, list) or len(got) != len(sentences):
                wrong += len(sentences)
                continue
            for s, t in zip(sentences, got):
                wrong += t["source"] != s or t["hypotheses"][0]["tokens"] != alone[s]
        failed |= wrong > 0
        q = statistics.quantiles(latencies, n=100)
        n = sum(map(len, requests))
        print(f"| {max_batch} | {n / seconds:.1f} | {1000 * q[49]:.0f} ms | "
              f"{1000 * q[98]:.0f} ms | {wrong} |", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
