"""Serve a checkpoint over HTTP: ``python -m embedclf.serve CKPT [--host H] [--port P]``.

The checkpoint is loaded once. ``POST /predict`` takes ``{"texts": [...]}`` and answers
``{"predictions": [...]}``, one object per text, the same as ``embedclf.predict`` prints;
``GET /health``; ``GET /info`` (classes, encoder kind, vocabulary size, the training run's
metrics, the checkpoint's sha256); ``GET /`` a page to try the model in a browser.

FastAPI on uvicorn, not LitServe: LitServe runs inference in worker processes, each holding its
own copy of the model, and hands every request across a process queue, which costs more than
these models' sub-millisecond forward passes; here one process holds the model, and a small
batcher (:class:`Batcher`) gathers the texts of concurrent requests into one forward pass
(dynamic batching: up to ``--max-batch`` texts, waiting at most ``--max-wait-ms`` for more).
Bad requests get a 4xx with ``{"error": ...}`` and never stop the server: malformed JSON, no
``texts``, texts that are not strings, an empty list, more than ``--max-batch`` texts, a body
over ``--max-bytes``; beyond ``--max-connections`` at once, uvicorn answers 503. A text longer
than the model's ``maxlen`` is truncated exactly as in training. SIGTERM or Ctrl-C (uvicorn's
graceful shutdown) answers the requests in flight, then exits 0: a stop asked for.
"""

import argparse
import asyncio
import json
import signal
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from embedclf.util.cli import exit_on_user_error
from embedclf.util.download import digest_of
from embedclf.util.errors import DataError

MAX_BATCH = 256  # texts a request may hold, and texts per forward pass
MAX_BYTES = 1 << 20  # a request body's bytes
MAX_WAIT_MS = 2.0  # how long the batcher waits for more texts before a forward pass
MAX_CONNECTIONS = 64  # at most this many bodies of --max-bytes wait in memory
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class _Pending:
    texts: list[str]
    done: asyncio.Future = field(repr=False)


class Batcher:
    """Dynamic batching: the texts of requests that arrive together, in one forward pass.

    Requests queue their texts; one task takes the first waiting request, then whatever
    else arrives within ``max_wait`` seconds, up to ``max_batch`` texts in all, and scores
    them together in a worker thread (the event loop keeps accepting meanwhile). Each request
    gets its own slice of the results, in order.
    """

    def __init__(self, predict: Any, max_batch: int, max_wait: float) -> None:
        self.predict, self.max_batch, self.max_wait = predict, max_batch, max_wait
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.passes = 0  # forward passes run (a test reads it: batching happened)

    async def submit(self, texts: list[str]) -> list[dict[str, Any]]:
        done = asyncio.get_running_loop().create_future()
        await self.queue.put(_Pending(texts, done))
        return await done

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            size = len(batch[0].texts)
            deadline = loop.time() + self.max_wait
            while size < self.max_batch:
                try:
                    item = await asyncio.wait_for(self.queue.get(), deadline - loop.time())
                except TimeoutError:
                    break
                if size + len(item.texts) > self.max_batch:
                    await self._score([item])  # too big to join: its own pass, in turn
                    continue
                batch.append(item)
                size += len(item.texts)
            await self._score(batch)

    async def _score(self, batch: list[_Pending]) -> None:
        texts = [text for item in batch for text in item.texts]
        try:
            results = await asyncio.to_thread(self.predict, texts)
        except Exception as err:  # a model failure answers these requests, not the server
            for item in batch:
                if not item.done.done():
                    item.done.set_exception(err)
            return
        self.passes += 1
        start = 0
        for item in batch:
            if not item.done.done():
                item.done.set_result(results[start : start + len(item.texts)])
            start += len(item.texts)


def model_info(checkpoint_path: Path, predictor: Any) -> dict[str, Any]:
    """What ``GET /info`` reports: the model, and the run that trained it (its metrics.json
    beside the checkpoints folder, where train.py writes it)."""
    metrics_file = checkpoint_path.resolve().parent.parent / "metrics.json"
    try:
        metrics = json.loads(metrics_file.read_text())
        metrics = metrics if isinstance(metrics, dict) else None
    except (OSError, ValueError):
        metrics = None
    featurizer = predictor.featurizer
    return {
        "checkpoint": str(checkpoint_path),
        "sha256": digest_of(checkpoint_path, "sha256"),
        "classes": list(predictor.classes),
        "encoder": predictor.module.hparams.net["encoder"]["kind"],
        "vocab_size": len(featurizer.vocab),
        "maxlen": featurizer.maxlen,
        "ngrams": featurizer.ngrams,
        "metrics": metrics,
    }


def page() -> str:
    return resources.files("embedclf").joinpath("serve_page.html").read_text(encoding="utf-8")


def create_app(
    predict: Any,
    info: dict[str, Any],
    *,
    max_batch: int = MAX_BATCH,
    max_bytes: int = MAX_BYTES,
    max_wait_ms: float = MAX_WAIT_MS,
) -> Any:
    """The FastAPI app around ``predict`` (texts -> predict's dicts)."""
    # the serve extra (make install-serve), imported when a server is made: the module's own
    # classes and --help need none of it
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse

    batcher = Batcher(predict, max_batch, max_wait_ms / 1000)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()

    app = FastAPI(title="embedclf", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.batcher = batcher

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    async def model() -> dict[str, Any]:
        return info

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page()

    @app.post("/predict")
    async def predict_texts(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            return error(413, f"the body is over {max_bytes:,} bytes; send fewer or shorter texts")
        body = bytearray()
        async for chunk in request.stream():  # counted as it comes: no length header needed
            body += chunk
            if len(body) > max_bytes:
                return error(
                    413, f"the body is over {max_bytes:,} bytes; send fewer or shorter texts"
                )
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            reason = " ".join(str(err).split())[:120] or "nested too deep"
            return error(400, f'the body is not JSON ({reason}); send {{"texts": ["..."]}}')
        texts = payload.get("texts") if isinstance(payload, dict) else None
        if not isinstance(texts, list):
            return error(422, 'the body needs "texts": a list of strings')
        if not texts:
            return error(422, '"texts" is empty; send at least one text')
        if len(texts) > max_batch:
            return error(413, f'"texts" holds {len(texts)} texts; send at most {max_batch}')
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            return error(422, f"texts[{bad}] is not a string")
        try:
            predictions = await batcher.submit(texts)
        except Exception as err:
            return error(500, f"the model failed on this request ({type(err).__name__})")
        return {"predictions": predictions}

    return app


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m embedclf.serve",
        description="Serve a trained checkpoint over HTTP (POST /predict, GET /info, GET /).",
    )
    parser.add_argument("checkpoint", help="a .ckpt file written by train.py")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-batch", type=int, default=MAX_BATCH, metavar="N")
    parser.add_argument("--max-bytes", type=int, default=MAX_BYTES, metavar="N")
    parser.add_argument("--max-wait-ms", type=float, default=MAX_WAIT_MS, metavar="MS")
    parser.add_argument(
        "--max-connections",
        type=int,
        default=MAX_CONNECTIONS,
        metavar="N",
        help="connections at once; more are answered 503 (bounds the memory of waiting bodies)",
    )
    args = parser.parse_args(argv)
    if min(args.max_batch, args.max_bytes, args.max_connections) < 1 or args.max_wait_ms < 0:
        parser.error(
            "--max-batch, --max-bytes and --max-connections must be 1 or more, "
            "--max-wait-ms 0 or more"
        )
    return args


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        import uvicorn
    except ImportError:
        raise DataError("the server needs FastAPI and uvicorn: make install-serve") from None
    # torch and Lightning load with the model, once the arguments and extras are checked
    from embedclf.predict import Predictor
    from embedclf.util.startup import quick_imports

    with quick_imports():
        import embedclf.models.checkpoint  # noqa: F401
    predictor = Predictor(args.checkpoint)
    app = create_app(
        predictor.predict,
        model_info(Path(args.checkpoint), predictor),
        max_batch=args.max_batch,
        max_bytes=args.max_bytes,
        max_wait_ms=args.max_wait_ms,
    )

    class DrainingServer(uvicorn.Server):
        """uvicorn's server, but a SIGTERM or SIGINT ends it with exit status 0 once the
        requests in flight are answered (uvicorn drains them, then raises the signal again,
        which ends the process as killed): a stop that was asked for is not a failure."""

        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=30,
        limit_concurrency=args.max_connections,
    )
    print(f"serving {args.checkpoint} on http://{args.host}:{args.port}/", flush=True)
    DrainingServer(config).run()


if __name__ == "__main__":
    main()
