"""Measure every variant's encode throughput on this machine and store it for ``variant="auto"``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

from . import corpus
from .bundle import Bundle
from .errors import InputValidationError
from .loading import runnable_reason
from .sentence_transformer import SentenceTransformer
from .speed_ranking import store_ranking

__all__ = ["measure_and_store"]


def _encode_seconds(model: SentenceTransformer, texts: list[str], batch_size: int) -> float:
    started = time.perf_counter()
    model.encode(texts, batch_size=batch_size)
    return time.perf_counter() - started


def measure_and_store(bundle_root: str | Path, variants: Sequence[str] | None = None, *, texts: Sequence[str] = (),
                      batch_size: int = 32, repeats: int = 3,
                      progress: Callable[[str], None] = lambda _: None) -> dict:
    """Measure texts/s of ``variants`` (default: every variant this machine can run) on ``texts`` (default: 128
    real passages and queries of the gate split, mixed) and store them for ``auto``; returns what was stored.

    Best of ``repeats`` runs per variant, variants interleaved round by round so a burst of other load on the
    machine does not fall on one variant only.
    """
    bundle = Bundle.open(bundle_root, verify=False)
    root = bundle.root
    manifest = bundle.manifest
    if manifest.kind != "sentence-transformer":
        raise InputValidationError(f"--rank measures SentenceTransformer bundles; this one is a {manifest.kind}.")
    names = list(variants) if variants else [n for n in manifest.variants if runnable_reason(manifest, n) is None]
    texts = list(texts) or (corpus.passages(64, seed=77, split="gate") + corpus.queries(64, seed=78, split="gate"))
    models = {name: SentenceTransformer(root, variant=name) for name in names}
    for model in models.values():
        model.encode(texts[:batch_size], batch_size=batch_size)  # warm-up: compiles and allocates
    best = {name: float("inf") for name in names}
    for _ in range(max(1, repeats)):
        for name, model in models.items():
            best[name] = min(best[name], _encode_seconds(model, texts, batch_size))
    speeds = {name: len(texts) / seconds for name, seconds in best.items()}
    for name in names:
        progress(f"{name}: {speeds[name]:.1f} texts/s")
    return store_ranking(root, speeds, texts=len(texts), batch_size=batch_size, repeats=repeats)
