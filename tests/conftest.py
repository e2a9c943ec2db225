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


# ----- coverage matrix records (benchmarks/coverage_matrix.py renders them into the README) ------------------------
COVERAGE_ENV = "ST_RUNTIME_COVERAGE_RESULTS"


@pytest.fixture
def coverage(request):
    """coverage(architecture, check, value=None): when $ST_RUNTIME_COVERAGE_RESULTS names a file, this test's outcome
    (passed / failed / skipped) is appended to it as one JSON line per claim (``value``: what the cell shows when it
    passed, e.g. the fused operators). Without the variable it records nothing."""
    claims: list[dict] = []
    request.node._coverage_claims = claims

    def claim(architecture: str, check: str, value=None) -> None:
        claims.append({"architecture": architecture, "check": check, "value": value})

    return claim


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    import os

    path = os.environ.get(COVERAGE_ENV)
    claims = getattr(item, "_coverage_claims", None)
    if not path or not claims or (report.when != "call" and report.passed):
        return
    import json
    import time

    with open(path, "a", encoding="utf-8") as out:
        for claim in claims:
            record = {**claim, "outcome": report.outcome, "test": item.nodeid, "when": report.when,
                      "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            out.write(json.dumps(record) + "\n")
    claims.clear()  # one record per claim, from the first phase that decided it
