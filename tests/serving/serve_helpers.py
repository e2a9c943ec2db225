"""Serving test helpers: in-thread uvicorn servers and subprocess servers, all on 127.0.0.1 with a free port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Iterator

import httpx
import uvicorn


class ServerThread:
    """uvicorn.Server on a socket bound to 127.0.0.1:0, run in a daemon thread."""

    def __init__(self, app) -> None:
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on such sockets (else Nagle + delayed ACK
        # add ~40 ms to every answer written in two parts)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app
        self.core = app.state.server
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on",
                                                    timeout_graceful_shutdown=10))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self, ready: bool = True) -> "ServerThread":
        """Start; with ``ready`` also wait until the warm-up finished (``/health`` 200)."""
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started or (ready and not self.core.ready):
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        self.sock.close()
        assert not self.thread.is_alive(), "server did not stop"


class SlowEncoder:
    """A model whose inference calls (encode, and encode_rows where the model has it) sleep first."""

    _SLOW = ("encode", "encode_rows")

    def __init__(self, model, delay: float) -> None:
        self._model, self.delay = model, delay

    def __getattr__(self, name):
        value = getattr(self._model, name)
        if name not in self._SLOW:
            return value

        def slow(*args, **kwargs):
            time.sleep(self.delay)
            return value(*args, **kwargs)

        return slow


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def subprocess_server(bundle, *args: str, timeout: float = 90.0) -> Iterator[tuple[subprocess.Popen, str, object]]:
    """``st-runtime serve BUNDLE ARGS`` in a child process on 127.0.0.1:<free port>; yields (proc, url, log file)
    once ``/health`` is 200; kills it afterwards if it is still running."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "st_runtime.cli", "serve", str(bundle), "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", *args]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise AssertionError(f"server exited {proc.returncode}: {log.read().decode()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                assert time.monotonic() < deadline, "server did not become ready"
                time.sleep(0.1)
            yield proc, url, log
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
