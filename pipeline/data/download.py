"""Fetch a file from an http(s) URL or a local path, resumably and verifiably.

HTTP downloads go to `DEST.part`, which survives a failed attempt or a killed process: the next
attempt asks for the rest with a Range request. Only a file whose size matches what the server
announced (and whose SHA-256 matches, when one is given) is renamed to `DEST`.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from pipeline.errors import PipelineError
from pipeline.files import atomic_path

CHUNK = 1 << 20
# Errors worth another attempt: the server or the network may do better next time.
TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _check_sha256(path: Path, expected: str | None, source: str) -> None:
    if expected and (got := sha256_of(path)) != expected.lower():
        raise PipelineError(f"{source}: SHA-256 mismatch (expected {expected}, got {got})")


def _progress(total: int | None, initial: int, desc: str) -> tqdm:
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, mininterval=1.0, disable=None)


class _Transient(Exception):
    """An attempt that failed in a way a retry may fix."""


def _attempt(url: str, part: Path, timeout: float) -> None:
    """One HTTP attempt: resume `part` where it stops and append until the body ends."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "fren-nmt"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # our partial file is not a prefix of this resource
            part.unlink()
            raise _Transient("HTTP 416 for a resumed download; starting over") from None
        if e.code in TRANSIENT_HTTP:
            raise _Transient(f"HTTP {e.code} {e.reason}") from None
        raise PipelineError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise _Transient(f"cannot reach {url} ({reason})") from None

    with response:
        if have and response.status != 206:  # server ignored Range: take the whole body again
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if have else "wb") as out, _progress(total, have, part.name) as bar:
            try:
                while block := response.read(CHUNK):
                    out.write(block)
                    bar.update(len(block))
            except (TimeoutError, OSError, http.client.HTTPException) as e:
                raise _Transient(f"connection lost after {out.tell()} bytes ({e})") from None
            size = out.tell()
    if total is not None and size != total:
        raise _Transient(f"connection closed at {size} of {total} announced bytes")


def download_http(url: str, dest: Path, sha256: str | None = None, retries: int = 5,
                  timeout: float = 60.0, backoff: float = 2.0) -> Path:
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last = ""
    for attempt in range(1, retries + 1):
        try:
            _attempt(url, part, timeout)
            break
        except _Transient as e:
            last = str(e)
            if attempt < retries:
                wait = backoff * 2 ** (attempt - 1)
                print(f"download: attempt {attempt}/{retries} failed: {last}; retrying in "
                      f"{wait:.0f}s", flush=True)
                time.sleep(wait)
    else:
        raise PipelineError(f"{url}: download failed after {retries} attempts: {last}; to "
                            "work offline, point data.url at a local copy of the tarball")
    try:
        _check_sha256(part, sha256, url)
    except PipelineError:
        part.unlink()  # a complete file with the wrong content can't be resumed into the right one
        raise
    os.replace(part, dest)
    return dest


def copy_local(source: str | Path, dest: Path, sha256: str | None = None) -> Path:
    source = Path(source)
    if not source.is_file():
        raise PipelineError(f"{source}: no such file")
    if source.stat().st_size == 0:
        raise PipelineError(f"{source}: file is empty")
    _check_sha256(source, sha256, str(source))
    with atomic_path(dest) as tmp:
        with open(source, "rb") as src, open(tmp, "wb") as out:
            with _progress(source.stat().st_size, 0, dest.name) as bar:
                while block := src.read(CHUNK):
                    out.write(block)
                    bar.update(len(block))
    return dest


def fetch(location: str, dest: str | Path, sha256: str | None = None, retries: int = 5,
          timeout: float = 60.0) -> Path:
    """Bring `location` (URL or local path) to `dest`; `dest` exists only if complete."""
    dest = Path(dest)
    if is_url(location):
        return download_http(location, dest, sha256, retries=retries, timeout=timeout)
    return copy_local(location, dest, sha256)
