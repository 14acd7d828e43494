"""A folder served over HTTP on 127.0.0.1 for the download tests (no test reaches the internet)."""

from __future__ import annotations

import contextlib
import http.server
import threading


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging each request to stderr."""

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve_folder(folder, monkeypatch, handler=QuietHandler):
    """Serve ``folder`` on a free port of 127.0.0.1 (bypassing any proxy); yield the running server.

    The base URL is ``f"http://127.0.0.1:{server.server_address[1]}"``. The server stops when the
    block ends.
    """
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *args, **kwargs: handler(*args, directory=str(folder), **kwargs)
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
