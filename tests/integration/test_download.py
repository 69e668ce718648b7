"""The real HTTP download code against a server on 127.0.0.1, and local paths."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
from pathlib import Path

import pytest

from pipeline.data.download import fetch
from pipeline.errors import PipelineError


class Server:
    """Serves `data` at /file.tar with Range support; behaviours switch per test."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.cut_first = False      # first GET sends half the body, then drops the connection
        self.fail_first = 0         # this many GETs answer 503 first
        self.ranges = True          # honour Range headers
        self.announce = None        # Content-Length to announce instead of the true one
        self.requests: list[str | None] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                rng = self.headers.get("Range")
                server.requests.append(rng)
                if self.path != "/file.tar":
                    self.send_error(404, "Not Found")
                    return
                if server.fail_first > 0:
                    server.fail_first -= 1
                    self.send_error(503, "Busy")
                    return
                start = 0
                if rng and server.ranges:
                    start = int(re.match(r"bytes=(\d+)-", rng).group(1))
                    self.send_response(206)
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(server.data) - 1}/{len(server.data)}")
                else:
                    self.send_response(200)
                body = server.data[start:]
                self.send_header("Content-Length", str(server.announce or len(body)))
                self.end_headers()
                if server.cut_first:
                    server.cut_first = False
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file.tar"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(shared_tarball: Path):
    server = Server(shared_tarball.read_bytes())
    yield server
    server.close()


def test_download_whole_file(served: Server, tmp_path: Path) -> None:
    out = fetch(served.url, tmp_path / "t.tar", retries=1)
    assert out.read_bytes() == served.data
    assert not (tmp_path / "t.tar.part").exists()


def test_resumes_with_range_after_connection_cut(served: Server, tmp_path: Path) -> None:
    served.cut_first = True
    sha = hashlib.sha256(served.data).hexdigest()
    out = fetch(served.url, tmp_path / "t.tar", sha256=sha, retries=3, timeout=5)
    assert out.read_bytes() == served.data
    assert served.requests[0] is None
    assert served.requests[1] == f"bytes={len(served.data) // 2}-"  # resumed, not restarted


def test_resumes_a_part_file_left_by_a_killed_run(served: Server, tmp_path: Path) -> None:
    (tmp_path / "t.tar.part").write_bytes(served.data[:1000])
    fetch(served.url, tmp_path / "t.tar", retries=1)
    assert served.requests == ["bytes=1000-"]
    assert (tmp_path / "t.tar").read_bytes() == served.data


def test_server_without_range_support_starts_over(served: Server, tmp_path: Path) -> None:
    served.ranges = False
    (tmp_path / "t.tar.part").write_bytes(b"garbage that is not a prefix")
    fetch(served.url, tmp_path / "t.tar", retries=1)
    assert (tmp_path / "t.tar").read_bytes() == served.data


def test_retries_transient_http_errors(served: Server, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("pipeline.data.download.time.sleep", lambda s: None)
    served.fail_first = 2
    fetch(served.url, tmp_path / "t.tar", retries=3)
    assert (tmp_path / "t.tar").read_bytes() == served.data


def test_http_404_is_one_line_error(served: Server, tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"missing\.tar: HTTP 404"):
        fetch(served.url.replace("file.tar", "missing.tar"), tmp_path / "t.tar", retries=1)
    assert not (tmp_path / "t.tar").exists()


def test_unreachable_url(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("pipeline.data.download.time.sleep", lambda s: None)
    with pytest.raises(PipelineError, match=r"127\.0\.0\.1:9/x\.tar: download failed after 2 "
                       r"attempts: .*point data\.url at a local copy"):
        fetch("http://127.0.0.1:9/x.tar", tmp_path / "t.tar", retries=2, timeout=2)
    assert not (tmp_path / "t.tar").exists()


def test_checksum_mismatch(served: Server, tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="SHA-256 mismatch"):
        fetch(served.url, tmp_path / "t.tar", sha256="0" * 64, retries=1)
    assert not (tmp_path / "t.tar").exists()
    assert not (tmp_path / "t.tar.part").exists()


def test_size_mismatch(served: Server, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("pipeline.data.download.time.sleep", lambda s: None)
    served.announce = len(served.data) + 10  # the body is always 10 bytes short
    with pytest.raises(PipelineError, match="announced"):
        fetch(served.url, tmp_path / "t.tar", retries=2, timeout=2)
    assert not (tmp_path / "t.tar").exists()


def test_local_path_copied(tarball: Path, tmp_path: Path) -> None:
    out = fetch(str(tarball), tmp_path / "out" / "t.tar")
    assert out.read_bytes() == tarball.read_bytes()


def test_local_path_missing(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"nope\.tar: no such file"):
        fetch(str(tmp_path / "nope.tar"), tmp_path / "t.tar")


def test_local_path_checksum(tarball: Path, tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="SHA-256 mismatch"):
        fetch(str(tarball), tmp_path / "t.tar", sha256="f" * 64)
    assert not (tmp_path / "t.tar").exists()
