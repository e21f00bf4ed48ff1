"""A small HTTP server on 127.0.0.1 for the download and fetch tests.

It serves byte strings by path, honours ``Range: bytes=N-`` (206 with Content-Range,
416 past the end), records every request, and can misbehave on purpose: cut a response
short after some bytes, or ignore Range and answer 200.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        state: FileServer = self.server.state  # type: ignore[attr-defined]
        range_header = self.headers.get("Range")
        state.requests.append({"path": self.path, "range": range_header})
        data = state.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = _range_start(range_header)
        if start is None or state.ignore_range:
            self._send(200, data, {})
        elif start >= len(data):
            self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
        else:
            content_range = f"bytes {start}-{len(data) - 1}/{len(data)}"
            self._send(206, data[start:], {"Content-Range": content_range})

    def _send(self, code: int, body: bytes, headers: dict[str, str]) -> None:
        state: FileServer = self.server.state  # type: ignore[attr-defined]
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if state.cut_after is not None:
            cut, state.cut_after = state.cut_after, None  # misbehave once
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # keep test output quiet
        pass


def _range_start(header: str | None) -> int | None:
    match = re.fullmatch(r"bytes=(\d+)-", header or "")
    return int(match.group(1)) if match else None


class FileServer:
    """Serve ``files`` (path -> bytes) on 127.0.0.1 at a free port, in a thread."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.requests: list[dict] = []
        self.cut_after: int | None = None
        self.ignore_range = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.state = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
