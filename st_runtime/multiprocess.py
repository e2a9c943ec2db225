"""Multi-process encoding: one model per worker process, chunks sent round-robin, results in input order.

Workers open the model through a picklable factory the model hands over (this module never imports the model
classes) and receive the caller's whole configuration with every chunk, so no setting can fall out of step.
"""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

from .errors import InputValidationError, StRuntimeError
from .hardware import usable_cpus

_WORKER_MODEL: Any = None


class WorkerDiedError(StRuntimeError, RuntimeError):
    """A pool worker died (killed or crashed) while encoding."""


def _init_worker(factory: Callable[..., Any], device: str | None, threads: int) -> None:
    global _WORKER_MODEL
    _WORKER_MODEL = factory(device=device, threads=threads)


def _run_chunk(method: str, items: list, call: dict) -> Any:
    return getattr(_WORKER_MODEL, method)(items, **call)


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
    if target_devices is not None and (not isinstance(target_devices, list) or not target_devices
                                       or not all(isinstance(d, str) for d in target_devices)):
        raise InputValidationError(f"target_devices must be a non-empty list of device strings, got {target_devices!r}.")
    if processes is not None and (isinstance(processes, bool) or not isinstance(processes, int) or processes < 1):
        raise InputValidationError(f"processes must be a positive integer, got {processes!r}.")
    devices = target_devices or ["cpu"] * (processes or max(1, min(4, usable_cpus())))
    if len({d.split(":")[0] for d in devices}) > 1 or (len(set(devices)) > 1 and not devices[0].startswith("cuda")):
        raise InputValidationError(f"All pool workers must use one device, got {devices}.")
    count = len(devices)
    pool = {"factory": factory, "device": devices[0], "processes": count, "threads": max(1, usable_cpus() // count)}
    pool["executor"] = _new_executor(pool)
    return pool


def stop_pool(pool: dict) -> None:
    """Shut the workers down (waits for running chunks)."""
    executor = pool.pop("executor", None)
    if executor is not None:
        executor.shutdown(wait=True, cancel_futures=True)


def encode_with_pool(pool: dict, items: list, chunk_size: int | None, method: str, call: dict) -> list:
    """Split ``items`` into chunks, run ``model.<method>(chunk, **call)`` on the workers; the parts in order."""
    if not isinstance(pool, dict) or "factory" not in pool:
        raise InputValidationError("pool must be the dict start_multi_process_pool() returned.")
    if "executor" not in pool:
        raise InputValidationError("This pool was stopped; start a new one with start_multi_process_pool().")
    if not items:
        return []
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise InputValidationError(f"chunk_size must be a positive integer or None, got {chunk_size!r}.")
    try:
        pickle.dumps(call)
    except Exception as exc:  # noqa: BLE001 - any pickling failure means the call cannot cross processes
        raise InputValidationError(
            f"These settings cannot be sent to pool workers ({exc}); use a named activation or a module-level "
            "function instead of a lambda."
        ) from exc
    chunk_size = chunk_size or min(max(1, len(items) // (pool["processes"] * 10) + 1), 5000)
    chunks = [items[i : i + chunk_size] for i in range(0, len(items), chunk_size)]
    try:
        futures = [pool["executor"].submit(_run_chunk, method, chunk, call) for chunk in chunks]
        return [future.result() for future in futures]
    except BrokenProcessPool as exc:
        pool["executor"].shutdown(wait=False, cancel_futures=True)
        pool["executor"] = _new_executor(pool)
        raise WorkerDiedError(
            "A pool worker process died while encoding (killed or out of memory); the pool was restarted with "
            "fresh workers. Retry the call."
        ) from exc
