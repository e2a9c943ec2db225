"""``st-runtime serve``: an HTTP server for exported bundles (needs the ``serve`` extra: starlette, uvicorn).

One core (``core``: models, admission, one tokenization per request, batching, readiness and drain; ``registry``,
``batcher``, ``metrics``, ``gateway``) and one small adapter per protocol (``api_openai``, ``api_tei``,
``api_cohere``, ``api_similarity``) that only parses and formats. Importing this package imports neither
starlette nor uvicorn; ``create_app``, ``ServeConfig``, ``load_model`` and ``DynamicBatcher`` load on first use.
"""

from __future__ import annotations

__all__ = ["create_app", "ServeConfig", "load_model", "parse_model_arg", "DynamicBatcher", "Metrics"]


def __getattr__(name: str):
    if name in ("create_app", "load_model", "parse_model_arg"):
        from . import app

        return getattr(app, name)
    if name == "ServeConfig":
        from .config import ServeConfig

        return ServeConfig
    if name == "DynamicBatcher":
        from .batcher import DynamicBatcher

        return DynamicBatcher
    if name == "Metrics":
        from .metrics import Metrics

        return Metrics
    raise AttributeError(f"module 'st_runtime.serving' has no attribute {name!r}")
