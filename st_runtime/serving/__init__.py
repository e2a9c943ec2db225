"""``st-runtime serve``: an HTTP server for exported bundles (needs the ``serve`` extra: starlette, uvicorn).

Importing this package imports neither starlette nor uvicorn; ``create_app``, ``ServeConfig``, ``load_model``
and ``DynamicBatcher`` are loaded on first use.
"""

from __future__ import annotations

__all__ = ["create_app", "ServeConfig", "load_model", "parse_model_arg", "DynamicBatcher", "Metrics"]


def __getattr__(name: str):
    if name in ("create_app", "ServeConfig", "load_model", "parse_model_arg"):
        from . import app

        return getattr(app, name)
    if name == "DynamicBatcher":
        from .batcher import DynamicBatcher

        return DynamicBatcher
    if name == "Metrics":
        from .metrics import Metrics

        return Metrics
    raise AttributeError(f"module 'st_runtime.serving' has no attribute {name!r}")
