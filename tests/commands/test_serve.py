"""python -m embedclf.serve: a real server on loopback answers as predict does, batches
concurrent requests, refuses bad ones with a 4xx and stays up, drains on SIGTERM; the page
works in a real headless browser."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO
from embedclf.serve import Batcher

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def checkpoint(seed_checkpoint) -> str:
    return str(seed_checkpoint)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, checkpoint: str, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "embedclf.serve", checkpoint, "--port", str(self.port), *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if self.get("/health") == (200, {"status": "ok"}):
                    return
            except OSError:
                time.sleep(0.1)
        self.process.kill()
        raise AssertionError(f"the server did not start: {self.process.communicate()}")

    def request(self, path: str, body: bytes | None = None) -> tuple[int, object]:
        request = urllib.request.Request(
            self.url + path, data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                raw, status = response.read(), response.status
        except urllib.error.HTTPError as err:
            raw, status = err.read(), err.code
        text = raw.decode()
        return status, json.loads(text) if text.lstrip().startswith(("{", "[")) else text

    def get(self, path: str) -> tuple[int, object]:
        return self.request(path)

    def post(self, texts: object) -> tuple[int, object]:
        return self.request("/predict", json.dumps(texts).encode())


@pytest.fixture(scope="module")
def server(checkpoint) -> Iterator[Server]:
    running = Server(checkpoint, "--max-batch", "8", "--max-bytes", "4096")
    yield running
    running.process.terminate()
    running.process.communicate(timeout=60)


def test_predict_answers_as_the_predict_command_and_info_describes_the_model(server, checkpoint):
    from embedclf.predict import predict_texts

    texts = ["great superb loved it", "awful boring hated", "good " * 500]  # the last > maxlen
    status, answer = server.post({"texts": texts})
    assert status == 200
    expected = predict_texts(checkpoint, texts)
    assert [p["label"] for p in answer["predictions"]] == [e["label"] for e in expected]
    for got, want in zip(answer["predictions"], expected, strict=True):
        assert got["probs"] == pytest.approx(want["probs"], abs=1e-6)
    status, info = server.get("/info")
    assert status == 200 and info["classes"] == ["neg", "pos"] and info["encoder"] == "flatten"
    assert info["sha256"] == hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()
    assert info["vocab_size"] > 10 and 0 <= info["metrics"]["test_acc"] <= 1
    status, html = server.get("/")
    assert status == 200 and "<textarea" in html


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{not json", 400, "not JSON"),
        (b"[" * 4000, 400, "not JSON"),  # nested past the recursion limit
        (b'{"text": ["a"]}', 422, '"texts": a list of strings'),
        (b'{"texts": "a"}', 422, '"texts": a list of strings'),
        (b'{"texts": ["a", 3]}', 422, "texts[1] is not a string"),
        (b'{"texts": []}', 422, "is empty"),
        (json.dumps({"texts": ["a"] * 9}).encode(), 413, "at most 8"),
        (json.dumps({"texts": ["word " * 1000]}).encode(), 413, "over 4,096 bytes"),
    ],
)
def test_bad_requests_get_a_4xx_json_error_and_the_server_stays_up(server, body, status, says):
    got, answer = server.request("/predict", body)
    assert got == status and says in answer["error"], answer
    assert server.get("/health") == (200, {"status": "ok"})
    assert server.post({"texts": ["good"]})[0] == 200


def test_concurrent_requests_are_answered_each_with_its_own_texts(server):
    texts = [f"great superb {i}" if i % 2 else f"awful boring {i}" for i in range(40)]
    results: dict[int, object] = {}

    def ask(i: int) -> None:
        results[i] = server.post({"texts": [texts[i], texts[(i + 1) % 40]]})

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    alone = {text: server.post({"texts": [text]})[1]["predictions"][0] for text in texts}
    for i, (status, answer) in results.items():
        assert status == 200
        assert answer["predictions"] == [alone[texts[i]], alone[texts[(i + 1) % 40]]]


def test_the_batcher_scores_requests_that_arrive_together_in_one_pass():
    calls: list[list[str]] = []

    def predict(texts: list[str]) -> list[str]:
        calls.append(list(texts))
        return [text.upper() for text in texts]

    async def scenario() -> list[list[str]]:
        batcher = Batcher(predict, max_batch=10, max_wait=0.2)
        task = asyncio.create_task(batcher.run())
        answers = await asyncio.gather(
            batcher.submit(["a", "b"]), batcher.submit(["c"]), batcher.submit(["d", "e", "f"])
        )
        too_many = await asyncio.gather(batcher.submit(["g"] * 6), batcher.submit(["h"] * 6))
        task.cancel()
        return [*answers, *too_many]

    answers = asyncio.run(scenario())
    assert answers[:3] == [["A", "B"], ["C"], ["D", "E", "F"]]
    assert answers[3:] == [["G"] * 6, ["H"] * 6]
    assert calls[0] == ["a", "b", "c", "d", "e", "f"]  # three requests, one forward pass
    assert [len(c) for c in calls[1:]] == [6, 6]  # 12 texts > max_batch: two passes


def test_sigterm_answers_the_request_in_flight_then_exits_0(checkpoint):
    running = Server(checkpoint, "--max-wait-ms", "1500")  # the request waits in the batcher
    answer: dict[str, object] = {}
    thread = threading.Thread(target=lambda: answer.update(r=running.post({"texts": ["good"]})))
    thread.start()
    time.sleep(0.5)
    running.process.send_signal(signal.SIGTERM)
    thread.join(timeout=60)
    _, stderr = running.process.communicate(timeout=60)
    assert running.process.returncode == 0, stderr[-2000:]
    status, body = answer["r"]
    assert status == 200 and body["predictions"][0]["label"] in ("neg", "pos")


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (make install-browser)")
def test_the_page_classifies_a_review_in_a_real_browser(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="make install-browser")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
            env={**os.environ, "HOME": str(tmp_path)},
        )
        try:
            page = browser.new_page()
            page.goto(server.url + "/")
            page.fill("#text", "A great film, superb acting, I loved it. Wonderful!")
            page.click("#classify")
            page.wait_for_function("document.getElementById('label').textContent !== ''")
            label = page.text_content("#label")
            bars = page.eval_on_selector_all(
                "#probs .row",
                "rows => rows.map(r => [r.dataset.class, r.querySelector('.bar').style.width])",
            )
        finally:
            browser.close()
    _, answer = server.post({"texts": ["A great film, superb acting, I loved it. Wonderful!"]})
    assert label == answer["predictions"][0]["label"]
    assert [name for name, _ in bars] == ["neg", "pos"]
    widths = {name: float(width.rstrip("%")) for name, width in bars}
    probs = answer["predictions"][0]["probs"]
    assert widths == {name: pytest.approx(100 * p, abs=0.06) for name, p in probs.items()}
