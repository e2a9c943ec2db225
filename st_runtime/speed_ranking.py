"""Variant speeds measured on this machine, so ``variant="auto"`` ranks by what this CPU does, not by a guess.

``st-runtime bench BUNDLE --rank`` (``st_runtime.speed_measure.measure_and_store``) encodes the same real texts with every variant
this machine can run and stores their throughput in the user cache (``$ST_RUNTIME_CACHE_DIR/speed``), keyed by the
bundle's manifest and this CPU (model, flags, usable cores) and the runtime libraries' versions. ``auto`` then
ranks the gate-passing candidates by that measurement; without one it falls back to the exporter's ``auto_rank``.
The bundle itself is never written to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Callable, Sequence

from .compile_cache import cache_root
from .hardware import cpu_flags, cpu_name, usable_cpus

logger = logging.getLogger(__name__)

__all__ = ["machine_key", "ranking_path", "load_ranking", "store_ranking"]


def _versions() -> str:
    from importlib import metadata

    out = []
    for dist in ("onnxruntime", "openvino"):
        try:
            out.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            out.append(f"{dist}=none")
    return " ".join(out)


def machine_key() -> str:
    """This CPU (model, flags, usable cores) and the runtime libraries' versions, as 16 hex digits."""
    payload = "\n".join([cpu_name(), " ".join(sorted(cpu_flags())), str(usable_cpus()), _versions()])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def ranking_path(bundle_root: str | Path) -> Path:
    """Where the measured speeds of this bundle (its manifest's exact bytes) on this machine are kept."""
    from .manifest import MANIFEST_NAME

    manifest = hashlib.sha256((Path(bundle_root) / MANIFEST_NAME).read_bytes()).hexdigest()[:16]
    return cache_root() / "speed" / f"{manifest}-{machine_key()}.json"


def load_ranking(bundle_root: str | Path) -> dict | None:
    """The stored measurement ``{"texts_per_s": {variant: float}, ...}`` for this bundle here, or None."""
    try:
        data = json.loads(ranking_path(bundle_root).read_text())
    except (OSError, ValueError):
        return None
    speeds = data.get("texts_per_s")
    return data if isinstance(speeds, dict) and speeds else None


def store_ranking(bundle_root: str | Path, speeds: dict[str, float], **about) -> dict:
    """Store ``speeds`` (texts/s per variant) for this bundle on this machine, atomically; returns what was stored."""
    data = {"texts_per_s": {n: round(float(v), 2) for n, v in speeds.items()}, "cpu": cpu_name(),
            "cores": usable_cpus(), "libraries": _versions(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **about}
    path = ranking_path(bundle_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)  # atomic: a reader sees the old file or the new one
    logger.info("stored the measured speeds of %s in %s", bundle_root, path)
    return data
