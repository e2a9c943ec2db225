"""Serving fixtures (the helpers live in serve_helpers.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("httpx")
pytest.importorskip("starlette")

from serve_helpers import ServerThread  # noqa: E402


@pytest.fixture
def start_server():
    """start_server(models, config, ready=True) -> a running ServerThread, stopped after the test."""
    from st_runtime.serving.app import create_app

    started: list[ServerThread] = []

    def start(models, config=None, ready: bool = True) -> ServerThread:
        srv = ServerThread(create_app(models, config)).start(ready)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        if srv.thread.is_alive():
            srv.stop()


@pytest.fixture(scope="session")
def serve_models(export_bundle):
    """(bi-encoder with a 'query' prompt, cross-encoder) of the tiny test models, loaded once."""
    from st_runtime import CrossEncoder, SentenceTransformer

    return (SentenceTransformer(export_bundle("bert-mean"), prompts={"query": "query: "}),
            CrossEncoder(export_bundle("ce-bert")))
