"""fetch() against a real HTTP server on the loopback interface."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from embedclf.util.download import digest_of, fetch
from embedclf.util.errors import DownloadError
from loopback import LoopbackServer, serve_bytes

SIZE = 300_000


@pytest.fixture
def data() -> bytes:
    return os.urandom(SIZE)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def get(urls: list[str], dest: Path, sha256: str | None, **kwargs: object) -> Path:
    """fetch() with settings for tests: no waiting between retries, no progress bar."""
    return fetch(urls, dest, sha256, backoff=0, timeout=5, progress=False, **kwargs)


def part_of(dest: Path) -> Path:
    return dest.parent / (dest.name + ".part")


def test_normal_download(server: LoopbackServer, data: bytes, tmp_path: Path) -> None:
    server.routes["/f.bin"] = serve_bytes(data)
    dest = tmp_path / "sub" / "f.bin"

    assert get([server.url("/f.bin")], dest, sha(data), size=SIZE) == dest

    assert dest.read_bytes() == data
    assert digest_of(dest, "sha256") == sha(data)
    assert not part_of(dest).exists()
    assert server.ranges() == [None]
    # an existing file is returned as it is, with no request
    assert get([server.url("/f.bin")], dest, sha(data)) == dest
    assert len(server.requests) == 1


def test_dropped_connection_resumes_with_range(
    server: LoopbackServer, data: bytes, tmp_path: Path
) -> None:
    server.routes["/f.bin"] = serve_bytes(data, drops=1)
    dest = tmp_path / "f.bin"

    get([server.url("/f.bin")], dest, sha(data), size=SIZE)

    assert dest.read_bytes() == data
    assert not part_of(dest).exists()
    # the first answer sent half the bytes; the retry asked for the rest, not for all of it
    assert server.ranges() == [None, f"bytes={SIZE // 2}-"]


def test_dropped_connection_restarts_when_range_is_ignored(
    server: LoopbackServer, data: bytes, tmp_path: Path
) -> None:
    server.routes["/f.bin"] = serve_bytes(data, drops=1, honour_range=False)
    dest = tmp_path / "f.bin"

    get([server.url("/f.bin")], dest, sha(data), size=SIZE)

    assert dest.read_bytes() == data  # the half from the first try was not kept
    assert len(server.requests) == 2
    assert server.ranges()[1] is not None


def test_connection_dropped_every_time(server: LoopbackServer, data: bytes, tmp_path: Path) -> None:
    server.routes["/f.bin"] = serve_bytes(data, drops=100)
    dest = tmp_path / "f.bin"

    with pytest.raises(DownloadError) as caught:
        get([server.url("/f.bin")], dest, sha(data), retries=2)

    message = str(caught.value)
    assert "\n" not in message
    assert "connection dropped 3 times" in message
    assert len(server.requests) == 3
    assert not dest.exists()
    assert part_of(dest).exists()  # kept for the next run to resume


def test_server_error_is_retried(server: LoopbackServer, data: bytes, tmp_path: Path) -> None:
    server.routes["/f.bin"] = serve_bytes(data, fail_status=503)
    dest = tmp_path / "f.bin"

    get([server.url("/f.bin")], dest, sha(data))

    assert dest.read_bytes() == data
    assert len(server.requests) == 2


def test_checksum_mismatch(server: LoopbackServer, data: bytes, tmp_path: Path) -> None:
    server.routes["/f.bin"] = serve_bytes(data)
    dest = tmp_path / "f.bin"
    expected = sha(b"something else")

    with pytest.raises(DownloadError) as caught:
        get([server.url("/f.bin")], dest, expected)

    message = str(caught.value)
    assert "\n" not in message
    assert f"sha256 mismatch: got {sha(data)}, expected {expected}" in message
    assert not dest.exists()
    assert not part_of(dest).exists()
    assert len(server.requests) == 1


def test_size_mismatch(server: LoopbackServer, data: bytes, tmp_path: Path) -> None:
    server.routes["/f.bin"] = serve_bytes(data)
    dest = tmp_path / "f.bin"

    with pytest.raises(DownloadError, match="size mismatch"):
        get([server.url("/f.bin")], dest, None, size=SIZE + 1)

    assert not dest.exists()
    assert not part_of(dest).exists()


def test_404_names_url_and_offline_fix(server: LoopbackServer, tmp_path: Path) -> None:
    url = server.url("/missing.bin")
    dest = tmp_path / "data" / "f.bin"

    with pytest.raises(DownloadError) as caught:
        get([url], dest, None)

    message = str(caught.value)
    assert "\n" not in message
    assert f"{url} (HTTP 404)" in message
    assert message.endswith(f"download f.bin by hand and place it in {dest.parent}")
    assert len(server.requests) == 1  # not retried
    assert not dest.exists()


def test_html_page_is_not_the_file(server: LoopbackServer, tmp_path: Path) -> None:
    page = b"<html><body>Please log in</body></html>"
    server.routes["/f.bin"] = serve_bytes(page, content_type="text/html; charset=utf-8")
    dest = tmp_path / "f.bin"

    with pytest.raises(DownloadError) as caught:
        get([server.url("/f.bin")], dest, None)

    assert "\n" not in str(caught.value)
    assert "got an HTML page" in str(caught.value)
    assert not dest.exists()
    assert not part_of(dest).exists()
    assert len(server.requests) == 1


def test_mirrors_are_tried_in_order(server: LoopbackServer, data: bytes, tmp_path: Path) -> None:
    server.routes["/mirror2/f.bin"] = serve_bytes(data)
    dest = tmp_path / "f.bin"

    get([server.url("/mirror1/f.bin"), server.url("/mirror2/f.bin")], dest, sha(data))

    assert dest.read_bytes() == data
    assert server.paths() == ["/mirror1/f.bin", "/mirror2/f.bin"]


def test_part_from_earlier_run_is_resumed(
    server: LoopbackServer, data: bytes, tmp_path: Path
) -> None:
    server.routes["/f.bin"] = serve_bytes(data)
    dest = tmp_path / "f.bin"
    part_of(dest).write_bytes(data[:100_000])

    get([server.url("/f.bin")], dest, sha(data), size=SIZE)

    assert dest.read_bytes() == data
    assert not part_of(dest).exists()
    assert server.ranges() == ["bytes=100000-"]


def test_complete_part_is_verified_not_downloaded(
    server: LoopbackServer, data: bytes, tmp_path: Path
) -> None:
    server.routes["/f.bin"] = serve_bytes(data)
    dest = tmp_path / "f.bin"
    part_of(dest).write_bytes(data)

    get([server.url("/f.bin")], dest, sha(data))

    assert dest.read_bytes() == data
    assert server.ranges() == [f"bytes={SIZE}-"]  # answered 416, no body


def test_bogus_part_is_discarded(server: LoopbackServer, data: bytes, tmp_path: Path) -> None:
    server.routes["/f.bin"] = serve_bytes(data)
    dest = tmp_path / "f.bin"
    part_of(dest).write_bytes(b"x" * (SIZE + 10))

    get([server.url("/f.bin")], dest, sha(data))

    assert dest.read_bytes() == data
    assert server.ranges() == [f"bytes={SIZE + 10}-", None]


def test_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    with pytest.raises(DownloadError, match="EMBEDCLF_DATA_DIR") as caught:
        get(["http://127.0.0.1:9/f.bin"], blocker / "data" / "f.bin", None)

    assert str(blocker / "data") in str(caught.value)


def stalling(data: bytes, seconds: float):
    """A route that announces `data`, sends half, then stalls for `seconds` (a hung mirror)."""
    import time as _time

    def handle(handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data[: len(data) // 2])
        handler.wfile.flush()
        _time.sleep(seconds)

    return handle


def test_a_stalled_mirror_times_out_and_the_next_one_serves(
    server: LoopbackServer, data: bytes, tmp_path: Path
) -> None:
    import time

    server.routes["/hung.bin"] = stalling(data, seconds=3)
    server.routes["/f.bin"] = serve_bytes(data)
    dest = tmp_path / "f.bin"
    started = time.monotonic()

    fetch(
        [server.url("/hung.bin"), server.url("/f.bin")],
        dest,
        sha(data),
        backoff=0,
        timeout=0.3,
        retries=1,
        progress=False,
    )

    assert dest.read_bytes() == data
    assert time.monotonic() - started < 2.5  # gave up on the hung mirror, did not wait it out
    assert server.paths().count("/hung.bin") == 2  # tried, then retried once
    # the retry resumed from what the hung mirror had sent
    first, resumed = server.ranges()[:2]
    assert first is None and 0 < int(resumed.removeprefix("bytes=").rstrip("-")) <= len(data) // 2


def test_every_mirror_timing_out_is_one_line(server: LoopbackServer, data: bytes, tmp_path: Path):
    server.routes["/hung.bin"] = stalling(data, seconds=2)
    with pytest.raises(DownloadError) as caught:
        fetch(
            [server.url("/hung.bin")],
            tmp_path / "f.bin",
            sha(data),
            backoff=0,
            timeout=0.3,
            retries=0,
            progress=False,
        )
    message = str(caught.value)
    assert "\n" not in message and "/hung.bin" in message and "by hand" in message


def test_bad_content_range_is_refused(server: LoopbackServer, data: bytes, tmp_path: Path) -> None:
    def wrong_range(handler) -> None:
        # answers a resume from byte N with bytes from 0, labelled as such
        body = data
        handler.send_response(206)
        handler.send_header("Content-Range", f"bytes 0-{len(body) - 1}/{len(body)}")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    server.routes["/f.bin"] = wrong_range
    dest = tmp_path / "f.bin"
    part_of(dest).write_bytes(data[:1000])  # an earlier run's partial download

    with pytest.raises(DownloadError, match=r"bad Content-Range 'bytes 0-.*' .* from byte 1000"):
        get([server.url("/f.bin")], dest, sha(data))

    assert not dest.exists()
    # the partial download is not corrupted by bytes appended at the wrong offset
    assert part_of(dest).read_bytes() == data[:1000]


def test_parallel_jobs_download_a_file_once_and_wait_for_it(
    server: LoopbackServer, data: bytes, tmp_path: Path
) -> None:
    """A sweep's jobs started on an empty data dir: one downloads, the others wait for the
    finished file instead of appending to the same .part (which mixed their bytes)."""
    import threading
    import time

    route = serve_bytes(data)

    def slow(handler) -> None:
        time.sleep(0.3)  # long enough for every job to be waiting
        route(handler)

    server.routes["/f.bin"] = slow
    dest = tmp_path / "f.bin"
    results: list[Path] = []
    jobs = [
        threading.Thread(
            target=lambda: results.append(get([server.url("/f.bin")], dest, sha(data)))
        )
        for _ in range(4)
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    assert results == [dest] * 4 and dest.read_bytes() == data
    assert len(server.requests) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]  # no lock, no .part
