"""Running the app under uvicorn with a graceful drain on SIGTERM / Ctrl-C.

First signal: the core starts draining (``/health`` 503, new requests 503 with ``Connection: close``) while the
listener stays open; once no request is in flight and ``drain_grace`` seconds passed (or after ``drain_timeout``),
uvicorn's own shutdown runs (stop listening, finish connections, lifespan shutdown drains the batchers). A second
signal skips the rest of the drain; a third Ctrl-C forces the exit.
"""

from __future__ import annotations

import time
from typing import Any

import uvicorn

from .core import ServingCore


class DrainingServer(uvicorn.Server):
    """``uvicorn.Server`` whose first exit signal starts a drain instead of stopping at once."""

    def __init__(self, config: uvicorn.Config, core: ServingCore) -> None:
        super().__init__(config)
        self.core = core
        self.drain_started: float | None = None

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.drain_started is None and not self.should_exit:
            self.drain_started = time.monotonic()
            self.core.start_drain()
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.drain_started is not None and not self.should_exit:
            elapsed = time.monotonic() - self.drain_started
            cfg = self.core.config
            if (self.core.requests_in_flight == 0 and elapsed >= cfg.drain_grace) or elapsed >= cfg.drain_seconds:
                self.should_exit = True
        return await super().on_tick(counter)


def serve(app: Any, host: str, port: int, *, log_level: str = "info") -> None:
    """Run ``app`` (from ``create_app``) until a signal, draining first."""
    core: ServingCore = app.state.server
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=int(core.config.request_timeout) + 5)
    DrainingServer(config, core).run()
