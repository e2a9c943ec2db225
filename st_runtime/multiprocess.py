"""Multi-process encoding: one model per worker process, chunks sent round-robin, results in input order."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

import numpy as np

from .errors import InputValidationError, StRuntimeError
from .hardware import usable_cpus

_WORKER_MODEL: Any = None


class WorkerDiedError(StRuntimeError, RuntimeError):
    """A pool worker died (killed or crashed) while encoding."""


def _init_worker(factory: Callable[..., Any], device: str | None, threads: int) -> None:
    global _WORKER_MODEL
    # ``factory`` came from the model (pickled by reference): this module never imports the model classes.
    _WORKER_MODEL = factory(device=device, threads=threads)


def _encode_chunk(texts: list[str], kwargs: dict) -> Any:
    return _WORKER_MODEL.encode(texts, **kwargs)


def _new_executor(pool: dict) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=pool["processes"],
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(pool["factory"], pool["device"], pool["threads"]),
    )


def start_pool(factory: Callable[..., Any], target_devices: list[str] | None = None,
               processes: int | None = None) -> dict:
    """A pool dict (as ST's ``start_multi_process_pool`` returns) with ``processes`` workers.

    ``factory(device=..., threads=...)`` is a picklable callable that opens the model in a worker process.
    """
    devices = target_devices or ["cpu"] * (processes or max(1, min(4, usable_cpus())))
    if len(set(devices)) > 1:
        raise InputValidationError(f"All pool workers must use one device type, got {devices}.")
    count = len(devices)
    pool = {
        "factory": factory, "device": devices[0], "processes": count,
        "threads": max(1, usable_cpus() // count),
    }
    pool["executor"] = _new_executor(pool)
    return pool


def stop_pool(pool: dict) -> None:
    """Shut the workers down (waits for running chunks)."""
    executor = pool.pop("executor", None)
    if executor is not None:
        executor.shutdown(wait=True, cancel_futures=True)


def encode_with_pool(model: Any, texts: list[str], single: bool, pool: dict, chunk_size: int | None,
                     **kwargs: Any) -> Any:
    """Split ``texts`` into chunks, encode them on the pool, and join the results in order."""
    if "executor" not in pool:
        raise InputValidationError("This pool was stopped; start a new one with start_multi_process_pool().")
    if not texts:
        return model.encode(texts, **kwargs)
    chunk_size = chunk_size or min(max(1, len(texts) // (pool["processes"] * 10) + 1), 5000)
    chunks = [texts[i : i + chunk_size] for i in range(0, len(texts), chunk_size)]
    try:
        futures = [pool["executor"].submit(_encode_chunk, chunk, kwargs) for chunk in chunks]
        parts = [future.result() for future in futures]
    except BrokenProcessPool as exc:
        pool["executor"].shutdown(wait=False, cancel_futures=True)
        pool["executor"] = _new_executor(pool)
        raise WorkerDiedError(
            "A pool worker process died while encoding (killed or out of memory); the pool was restarted with "
            "fresh workers. Retry the call."
        ) from exc
    if kwargs.get("output_value", "sentence_embedding") == "sentence_embedding" and kwargs.get("convert_to_numpy", True):
        result: Any = np.concatenate(parts, axis=0)
    else:
        result = [item for part in parts for item in part]
    return result[0] if single else result
