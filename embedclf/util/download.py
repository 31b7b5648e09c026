"""Verified, resumable downloads from a list of mirrors.

Bytes go to ``<dest>.part`` and are renamed to ``dest`` only once their size and checksum
(sha256, or md5 where a dataset's publisher gives only that) match,
so a file at ``dest`` is always complete. A dropped connection resumes from the ``.part`` with
an HTTP ``Range`` request, in this call or the next.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import requests
import urllib3
from tqdm import tqdm

from embedclf.util.errors import DownloadError
from embedclf.util.fileio import exclusive
from embedclf.util.paths import DATA_DIR_ENV

log = logging.getLogger(__name__)

CHUNK = 1 << 16
# exact bytes: a server may label a .tar.gz "Content-Encoding: gzip", and offsets in Range
# requests count the bytes as sent
HEADERS = {"Accept-Encoding": "identity"}
NETWORK_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError)


class _Retry(Exception):
    """A failure worth trying the same URL again for (dropped connection, 5xx)."""


class _Failed(Exception):
    """A failure of this URL that another try will not fix (4xx, HTML page, bad checksum)."""


Digests = dict[str, str]  # algorithm (sha256, md5) -> expected hex digest


def digest_of(path: Path, algorithm: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.new(algorithm, usedforsecurity=False)  # integrity, not security (FIPS)
    with open(path, "rb") as file:
        while block := file.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fetch(
    urls: Sequence[str],
    dest: Path,
    sha256: str | None,
    *,
    md5: str | None = None,
    size: int | None = None,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download the first of ``urls`` that yields a file of the given sha256 (or md5) and size
    to ``dest``.

    Each URL is tried once and then up to ``retries`` more times after a dropped connection or a
    5xx answer, waiting ``backoff * 2**attempt`` seconds in between; other failures move on to
    the next URL. An existing ``dest`` is returned as it is.
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    _make_writable_dir(dest.parent)
    with exclusive(_lock_path(dest), dest.name):  # parallel jobs: one downloads, the rest wait
        if dest.exists():
            return dest
        return _fetch_locked(urls, dest, sha256, md5, size, retries, backoff, timeout, progress)


def _lock_path(dest: Path) -> Path:
    """Where the lock of a download lives: the machine's temporary directory, keyed by the
    file's path, so that the data directory holds only finished files."""
    folder = Path(tempfile.gettempdir()) / "embedclf-locks"
    folder.mkdir(exist_ok=True)
    return folder / hashlib.sha256(str(dest.resolve()).encode()).hexdigest()[:16]


def _fetch_locked(
    urls: Sequence[str],
    dest: Path,
    sha256: str | None,
    md5: str | None,
    size: int | None,
    retries: int,
    backoff: float,
    timeout: float,
    progress: bool,
) -> Path:
    part = dest.parent / (dest.name + ".part")
    digests = {name: value for name, value in (("sha256", sha256), ("md5", md5)) if value}
    failures = []
    for url in urls:
        problem = _fetch_one(url, part, digests, size, retries, backoff, timeout, progress)
        if problem is None:
            os.replace(part, dest)
            return dest
        log.warning("%s: %s", url, problem)
        failures.append(f"{url} ({problem})")
    tried = "; ".join(failures) if failures else "no URLs to try"
    raise DownloadError(
        f"could not download {dest.name}: {tried}; to work offline, "
        f"download {dest.name} by hand and place it in {dest.parent}"
    )


def _make_writable_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = err.strerror or str(err)
        raise DownloadError(
            f"cannot create {directory} ({reason}); set {DATA_DIR_ENV} to a writable directory"
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise DownloadError(
            f"cannot write to {directory}; set {DATA_DIR_ENV} to a writable directory"
        )


def _fetch_one(
    url: str,
    part: Path,
    digests: Digests,
    size: int | None,
    retries: int,
    backoff: float,
    timeout: float,
    progress: bool,
) -> str | None:
    """Try one URL until ``part`` is verified; None on success, else what went wrong."""
    attempt = 0
    while True:
        try:
            if not _download(url, part, digests, size, timeout, progress):
                continue  # a bogus leftover .part was deleted: start from zero
            problem = _verify(part, digests, size)
            if problem is not None:
                part.unlink()
            return problem
        except _Failed as err:
            return str(err)
        except _Retry as err:
            if attempt >= retries:
                return f"{err} {attempt + 1} times" if attempt else str(err)
            delay = backoff * 2**attempt
            attempt += 1
            log.warning("%s: %s; retry %d of %d in %.1f s", url, err, attempt, retries, delay)
            time.sleep(delay)
        except OSError as err:  # the .part could not be written: no mirror will do better
            raise DownloadError(
                f"cannot write {part} ({err.strerror or err}); free some space or set "
                f"{DATA_DIR_ENV} to a writable directory"
            ) from None


def _download(
    url: str, part: Path, digests: Digests, size: int | None, timeout: float, progress: bool
) -> bool:
    """Fetch ``url`` into ``part``, resuming from its current size.

    True when ``part`` holds the whole body; False when it was a bogus leftover, now deleted,
    so the caller should start again.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = dict(HEADERS)
    if offset:
        headers["Range"] = f"bytes={offset}-"
        log.info("resuming %s from byte %d", url, offset)
    else:
        log.info("downloading %s", url)
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
            status = response.status_code
            if status == 416 and offset:  # nothing after `offset`: the part is complete or bogus
                return _keep_complete_part(
                    part, response.headers.get("Content-Range", ""), digests, size
                )
            if status >= 500:
                raise _Retry(f"HTTP {status}")
            if status not in (200, 206):
                raise _Failed(f"HTTP {status}")
            if response.headers.get("Content-Type", "").lower().startswith("text/html"):
                raise _Failed("got an HTML page")
            if status == 206:
                total = _check_content_range(response.headers.get("Content-Range", ""), offset)
            else:
                if offset:
                    log.info("%s ignores Range; restarting from zero", url)
                offset = 0
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            _write_body(response, part, offset, total, progress)
    except NETWORK_ERRORS as err:
        raise _Retry(_describe(err)) from None
    received = part.stat().st_size
    if total is not None and received < total:
        raise _Retry("connection dropped")
    return True


def _keep_complete_part(part: Path, content_range: str, digests: Digests, size: int | None) -> bool:
    """Whether a .part the server has nothing to add to is the file; if not, delete it."""
    match = re.fullmatch(r"bytes \*/(\d+)", content_range.strip())
    if match is not None and int(match[1]) != part.stat().st_size:
        problem = f"{part.stat().st_size} bytes but the server has {match[1]}"
    else:
        problem = _verify(part, digests, size)
    if problem is None:
        return True
    log.info("discarding %s (%s); restarting from zero", part, problem)
    part.unlink()
    return False


def _check_content_range(content_range: str, offset: int) -> int | None:
    """The total size announced by a 206 answer, which must start at ``offset``."""
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", content_range.strip())
    if match is None or int(match[1]) != offset:
        raise _Failed(f"bad Content-Range {content_range!r} for a request from byte {offset}")
    return None if match[3] == "*" else int(match[3])


def _write_body(
    response: requests.Response, part: Path, offset: int, total: int | None, progress: bool
) -> None:
    bar = tqdm(
        total=total,
        initial=offset,
        desc=part.name.removesuffix(".part"),
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=None if progress else True,
        leave=False,
    )
    with bar, open(part, "ab" if offset else "wb") as file:
        for block in response.raw.stream(CHUNK, decode_content=False):
            file.write(block)
            bar.update(len(block))


def _verify(part: Path, digests: Digests, size: int | None) -> str | None:
    """What is wrong with the finished ``part``, or None."""
    if size is not None and (got_size := part.stat().st_size) != size:
        return f"size mismatch: got {got_size} bytes, expected {size}"
    for algorithm, expected in digests.items():
        if (got := digest_of(part, algorithm)) != expected.lower():
            return f"{algorithm} mismatch: got {got}, expected {expected.lower()}"
    return None


def _describe(err: Exception) -> str:
    if isinstance(err, requests.Timeout | urllib3.exceptions.TimeoutError):
        return "timed out"
    if isinstance(err, requests.ConnectionError) and not isinstance(
        err.__context__, urllib3.exceptions.ProtocolError
    ):
        return "could not connect"
    return "connection dropped"
