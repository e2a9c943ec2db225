"""Where compiled graphs are cached between processes (OpenVINO's CACHE_DIR): the user cache, never the bundle."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from .hardware import cpu_flags, cpu_name

logger = logging.getLogger(__name__)

ENV_SWITCH = "ST_RUNTIME_COMPILE_CACHE"  # "0", "off", "false" or "no" turns the cache off
ENV_ROOT = "ST_RUNTIME_CACHE_DIR"  # default: $XDG_CACHE_HOME/st-runtime, else ~/.cache/st-runtime


def enabled() -> bool:
    """Whether compiled-model caching is on (it is unless ``ST_RUNTIME_COMPILE_CACHE`` says off)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "off", "false", "no")


def cache_root() -> Path:
    """``$ST_RUNTIME_CACHE_DIR``, else ``$XDG_CACHE_HOME/st-runtime``, else ``~/.cache/st-runtime``."""
    if os.environ.get(ENV_ROOT):
        return Path(os.environ[ENV_ROOT]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "st-runtime"


def cache_key(graph_hashes: list[str], runtime_version: str) -> str:
    """16 hex digits from the graph's verified file hashes, this CPU (model and flags) and the runtime version."""
    payload = "\n".join([*graph_hashes, cpu_name(), " ".join(sorted(cpu_flags())), runtime_version])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def openvino_cache_dir(graph_hashes: list[str] | None, runtime_version: str) -> Path | None:
    """The folder OpenVINO may keep compiled blobs of this graph in, or None (cache off, no hashes, not writable)."""
    if not graph_hashes or not enabled():
        return None
    path = cache_root() / "openvino" / cache_key(graph_hashes, runtime_version)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        logger.info("compiled-model cache off: cannot create %s (%s)", path, exc)
        return None
    if not os.access(path, os.W_OK):
        logger.info("compiled-model cache off: %s is not writable", path)
        return None
    return path
