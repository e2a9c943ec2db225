"""Shared fixtures: tiny models built once per session (cached outside git) and their exported bundles."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

HAS_TORCH = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("sentence_transformers") is not None
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None

_BUNDLES: dict[tuple, Path] = {}


def needs_torch():
    if not HAS_TORCH:
        pytest.skip("needs the export extra (torch, sentence-transformers)")


@pytest.fixture(scope="session", autouse=True)
def _compile_cache_in_tmp(tmp_path_factory):
    """OpenVINO's compiled blobs go to a per-session folder, not the user's ~/.cache (subprocesses inherit it)."""
    import os

    previous = os.environ.get("ST_RUNTIME_CACHE_DIR")
    os.environ["ST_RUNTIME_CACHE_DIR"] = str(tmp_path_factory.mktemp("st-runtime-cache"))
    yield
    if previous is None:
        os.environ.pop("ST_RUNTIME_CACHE_DIR", None)
    else:
        os.environ["ST_RUNTIME_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def bundle_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bundles")


@pytest.fixture(scope="session")
def model_path():
    """model_path(name) -> folder of a test model (built on first use, cached across runs)."""
    needs_torch()
    import models

    return models.build


@pytest.fixture(scope="session")
def export_bundle(bundle_root, model_path):
    """export_bundle(name, variants=()) -> bundle folder, exported once per session."""
    from st_runtime.export.export import export_model

    def make(name: str, variants: tuple[str, ...] = ()) -> Path:
        key = (name, tuple(variants))
        if key not in _BUNDLES:
            _BUNDLES[key] = export_model(str(model_path(name)), bundle_root / "-".join([name, *variants]),
                                         variants=variants)
        return _BUNDLES[key]

    return make


@pytest.fixture(scope="session")
def minilm_bundle(export_bundle) -> Path:
    return export_bundle("minilm-real")


@pytest.fixture(scope="session")
def minilm_reference(model_path):
    """The torch SentenceTransformer of the real MiniLM."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_path("minilm-real")), device="cpu")
