"""``make bench ONLY=serve``: the prediction server and the torch-free runtime, beside
in-process prediction on the same texts.

For seed_learned and ngram (IMDB) and sentence_cnn (SST-2 through data=table, GloVe 6B 50-d),
trained here:
- the server (``python -m embedclf.serve``) driven on loopback by a short asyncio client
  (keep-alive HTTP/1.1, ``CLIENTS`` concurrent clients, ``REQUESTS`` requests of one text):
  texts/s and p50/p99 latency, beside ``predict_texts`` in-process on the same texts
  (texts/s in batches of 1,024, and the latency of one text alone);
- the exported model (``export --format onnx``) in ``embedclf.runtime``: a whole command on one
  text against ``python -m embedclf.predict``, and in-process texts/s and one-text latency
  against the checkpoint's ``Predictor``.

Prints figures and ratios; nothing is asserted.
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIENTS = 16
REQUESTS = 2000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _client(port: int, bodies: list[bytes], latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for body in bodies:
        started = time.perf_counter()
        writer.write(
            b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"the server answered {head[:40]!r}")
        length = next(
            int(h.split(b":")[1])
            for h in head.split(b"\r\n")
            if h.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
    writer.close()


def drive(port: int, texts: list[str]) -> tuple[float, list[float]]:
    """Throughput (texts/s) and each request's latency, CLIENTS clients at once."""
    bodies = [json.dumps({"texts": [text]}).encode() for text in texts]
    latencies: list[float] = []

    async def all_clients() -> None:
        await asyncio.gather(
            *(_client(port, bodies[i::CLIENTS], latencies) for i in range(CLIENTS))
        )

    started = time.perf_counter()
    asyncio.run(all_clients())
    return len(texts) / (time.perf_counter() - started), latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def serve_and_drive(checkpoint: str, texts: list[str], env: dict[str, str]) -> dict[str, float]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "embedclf.serve", checkpoint, "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"the server did not start: {server.stderr.read()}") from None
                time.sleep(0.1)
        drive(port, texts[:200])  # warm-up: first batches, allocator, caches
        rate, latencies = drive(port, texts)
    finally:
        server.terminate()
        server.wait(timeout=60)
    return {
        "rate": rate,
        "p50": percentile(latencies, 0.5) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
    }


def in_process(predict, texts: list[str]) -> dict[str, float]:
    """texts/s in batches of 1,024, and the median latency of one text alone (ms)."""
    predict(texts[:64])
    started = time.perf_counter()
    for start in range(0, len(texts), 1024):
        predict(texts[start : start + 1024])
    rate = len(texts) / (time.perf_counter() - started)
    singles = []
    for text in texts[:300]:
        started = time.perf_counter()
        predict([text])
        singles.append(time.perf_counter() - started)
    return {"rate": rate, "one": statistics.median(singles) * 1000}


def wall(command: list[str], env: dict[str, str]) -> float:
    """Median wall seconds of a whole command over three runs."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_serve(models: dict[str, tuple[str, list[str]]], env: dict[str, str], tmp: Path) -> None:
    """``models``: name -> (checkpoint, texts to classify)."""
    from embedclf import export
    from embedclf.predict import Predictor
    from embedclf.runtime import Runtime

    print(f"== serve: {CLIENTS} concurrent clients, {REQUESTS} requests of one text each")
    for name, (checkpoint, texts) in models.items():
        texts = texts[:REQUESTS]
        served = serve_and_drive(checkpoint, texts, env)
        alone = in_process(Predictor(checkpoint).predict, texts)
        print(
            f"  {name:14s} server {served['rate']:7,.0f} texts/s, p50 {served['p50']:6.1f} ms, "
            f"p99 {served['p99']:6.1f} ms | predict_texts in-process {alone['rate']:7,.0f} "
            f"texts/s, one text {alone['one']:5.2f} ms"
        )
        share = served["rate"] / alone["rate"]
        print(f"  ratio {name} server texts/s / in-process batches: {share:.2f}")
    print("== runtime: the ONNX export without torch, against the checkpoint")
    lines = tmp / "one-review.txt"
    for name, (checkpoint, texts) in models.items():
        folder = tmp / f"onnx-{name}"
        export.export_onnx(checkpoint, folder, force=True)
        lines.write_text(texts[0].replace("\n", " ") + "\n")
        runtime_wall = wall(
            [sys.executable, "-m", "embedclf.runtime", str(folder), str(lines)], env
        )
        predict_wall = wall([sys.executable, "-m", "embedclf.predict", checkpoint, str(lines)], env)
        ours = in_process(Runtime(folder).predict, texts)
        theirs = in_process(Predictor(checkpoint).predict, texts)
        print(
            f"  {name:14s} one text, whole command: runtime {runtime_wall:.2f} s, predict "
            f"{predict_wall:.2f} s (ratio {runtime_wall / predict_wall:.2f}) | in-process: "
            f"runtime {ours['rate']:7,.0f} texts/s, one text {ours['one']:5.2f} ms; Predictor "
            f"{theirs['rate']:7,.0f} texts/s, one text {theirs['one']:5.2f} ms"
        )
        slim = tmp / f"{name}-inference.ckpt"
        export.export_checkpoint(checkpoint, slim, force=True)
        pruned = tmp / f"onnx-{name}-pruned"
        export.export_onnx(checkpoint, pruned, force=True, prune=True)
        full_labels = Runtime(folder).probabilities(texts).argmax(1)
        agree = (Runtime(pruned).probabilities(texts).argmax(1) == full_labels).mean()

        def mb(path: Path) -> str:
            return f"{path.stat().st_size / 1e6:.1f} MB"

        print(
            f"  {name:14s} sizes: checkpoint {mb(Path(checkpoint))}, inference checkpoint "
            f"{mb(slim)}, model.onnx {mb(folder / 'model.onnx')}, pruned "
            f"{mb(pruned / 'model.onnx')} (its labels agree with the full model's on "
            f"{agree:.2%} of the texts)"
        )
