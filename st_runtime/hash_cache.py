"""Remembered sha256 of bundle files, so the second load of a bundle does not hash its weights again.

A file's digest is recorded, in the user cache (never in the bundle), together with the file's identity and change
stamps: device, inode, size, modification and status-change times (``st_ctime_ns`` cannot be set back by a user;
any write, rename or replacement changes one of them). A later load reuses the digest only while all five are the
same, otherwise it hashes the file again. ``st-runtime validate`` (``verify="all"``) always hashes every file.
``ST_RUNTIME_HASH_CACHE=off`` turns the cache off. What it does not catch: bytes that change on disk without any
write through the file system (bit rot); ``validate`` does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from .compile_cache import cache_root

logger = logging.getLogger(__name__)

ENV_SWITCH = "ST_RUNTIME_HASH_CACHE"  # "0", "off", "false" or "no" turns it off


def enabled() -> bool:
    """Whether remembered digests are used (they are unless ``ST_RUNTIME_HASH_CACHE`` says off)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "off", "false", "no")


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _entry(path: Path) -> Path:
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32]
    return cache_root() / "verified" / f"{key}.json"


def remembered(path: Path) -> str | None:
    """The digest recorded for ``path`` if the file has not changed since, else None."""
    if not enabled():
        return None
    try:
        record = json.loads(_entry(path).read_text())
        if record.get("path") == str(path.resolve()) and record.get("stamp") == _stamp(path):
            return str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def remember(path: Path, digest: str) -> None:
    """Record ``digest`` as the sha256 of ``path`` as it is now (silently skipped where the cache is not writable)."""
    if not enabled():
        return
    entry = _entry(path)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        record = {"path": str(path.resolve()), "stamp": _stamp(path), "sha256": digest}
        with tempfile.NamedTemporaryFile("w", dir=entry.parent, suffix=".tmp", delete=False) as handle:
            json.dump(record, handle)
        os.replace(handle.name, entry)
    except OSError as exc:
        logger.debug("hash cache: cannot write %s (%s)", entry, exc)
