"""Dynamic batching: concurrent requests' inputs merged into one inference call, run off the event loop.

Each request becomes a job (its inputs, their token count and a *key*; only jobs with the same key, e.g. the
same prompt, share a call). One loop task per model takes the oldest job and adds the jobs queued behind it
while the group stays within ``max_batch_size`` inputs and ``max_batch_tokens`` tokens, waiting at most
``wait_ms`` after the oldest job arrived for more to come (only while other requests are on their way, see
``arriving()``). A job is never split: one larger than the bounds
runs alone (the model then splits it into its own sub-batches). The group runs in a dedicated one-thread
executor, so inference never blocks the event loop and one model never runs two calls at once; each job
gets its own rows back, in order.

A job whose caller gave up (request timeout: its future is cancelled) is skipped when still queued.
``close()`` refuses new jobs, finishes every queued one, then stops: uvicorn calls it from the lifespan
shutdown, after in-flight requests have completed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator, Sequence

import numpy as np

from ..errors import InputValidationError
from .errors import BatcherClosedError, BatcherInternalError

__all__ = ["DynamicBatcher", "BatcherClosedError", "BatcherInternalError"]

logger = logging.getLogger(__name__)

RunBatch = Callable[[Hashable, list], Any]  # (key, items) -> array with one row per item
OnBatch = Callable[[int, int, float], None]  # (items, jobs, seconds) after each call


@dataclass
class _Job:
    items: list
    tokens: int
    key: Hashable
    future: asyncio.Future
    enqueued: float = field(default_factory=time.monotonic)


class DynamicBatcher:
    """Merge concurrent jobs into bounded inference calls run in a worker thread."""

    def __init__(
        self,
        run_batch: RunBatch,
        *,
        max_batch_size: int = 32,
        max_batch_tokens: int | None = 8192,
        wait_ms: float = 5.0,
        name: str = "model",
        on_batch: OnBatch | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise InputValidationError(f"max_batch_size must be >= 1, got {max_batch_size!r}.")
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens or None
        self.wait_s = max(0.0, wait_ms) / 1000.0
        self.name = name
        self._on_batch = on_batch
        self._jobs: collections.deque[_Job] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self.busy = False
        self.incoming = 0  # requests on their way (being parsed / tokenized), see arriving()
        self.pending_jobs = 0  # jobs submitted and not yet answered (queued or running)
        self.pending_tokens = 0  # their tokens

    # ----- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the loop task (call from the running event loop, e.g. the app's lifespan startup)."""
        if self._task is not None:
            return
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"st-runtime-infer-{self.name}")
        self._closing = False
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.name}")

    async def close(self) -> None:
        """Refuse new jobs, finish the queued ones, stop the loop and the worker thread."""
        self._closing = True
        if self._task is None:
            return
        assert self._wakeup is not None
        self._wakeup.set()
        try:
            await self._task
        finally:
            self._task = None
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def queued(self) -> int:
        """Jobs waiting (not yet in a running call)."""
        return len(self._jobs)

    # ----- submitting -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Mark a request as on its way (e.g. while its texts are tokenized), so a group waits for it.

        The wait window is only spent when a job is queued or announced this way: a lone request goes out
        at once instead of waiting ``wait_ms`` for company that is not coming.
        """
        self.incoming += 1
        try:
            yield
        finally:
            self.incoming -= 1

    async def submit(self, items: Sequence, tokens: int = 0, key: Hashable = None) -> np.ndarray:
        """Queue ``items`` and wait for their rows (same order). Cancelling the wait drops a still-queued job."""
        if self._closing or self._task is None:
            raise BatcherClosedError(f"model {self.name!r} is shutting down")
        assert self._wakeup is not None
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._jobs.append(_Job(list(items), int(tokens), key, future))
        self.pending_jobs += 1
        self.pending_tokens += int(tokens)
        self._wakeup.set()
        try:
            return await future
        finally:
            self.pending_jobs -= 1
            self.pending_tokens -= int(tokens)

    async def run_in_worker(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` on the worker thread, outside the queue (the warm-up)."""
        if self._executor is None:
            raise BatcherClosedError(f"model {self.name!r} is not started")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # ----- the loop -------------------------------------------------------------------------------------
    def _pop_live(self) -> _Job | None:
        while self._jobs:
            job = self._jobs.popleft()
            if not job.future.done():  # cancelled by a timed-out caller
                return job
        return None

    def _fits(self, job: _Job, items: int, tokens: int) -> bool:
        if items + len(job.items) > self.max_batch_size:
            return False
        return self.max_batch_tokens is None or tokens + job.tokens <= self.max_batch_tokens

    async def _gather(self, first: _Job) -> list[_Job]:
        group = [first]
        items, tokens = len(first.items), first.tokens
        # The wait window counts from when the oldest job arrived: jobs that queued up while the previous
        # call ran go out at once.
        deadline = first.enqueued + self.wait_s
        assert self._wakeup is not None
        while items < self.max_batch_size and (self.max_batch_tokens is None or tokens < self.max_batch_tokens):
            if self._jobs:
                job = self._jobs[0]
                if job.future.done():
                    self._jobs.popleft()
                    continue
                if job.key != first.key or not self._fits(job, items, tokens):
                    break
                self._jobs.popleft()
                group.append(job)
                items += len(job.items)
                tokens += job.tokens
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closing or not self.incoming:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                break
        return group

    async def _loop(self) -> None:
        assert self._wakeup is not None
        while True:
            first = self._pop_live()
            if first is None:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            group = await self._gather(first)
            try:
                await self._run_group(group)
            except Exception:  # noqa: BLE001 - the loop must survive anything
                logger.exception("batcher %s: unexpected failure", self.name)
                for job in group:
                    if not job.future.done():
                        job.future.set_exception(BatcherInternalError(f"internal error in the batcher of {self.name!r}"))

    async def _call(self, key: Hashable, items: list) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run_batch, key, items)

    async def _run_group(self, group: list[_Job]) -> None:
        live = [job for job in group if not job.future.done()]
        if not live:
            return
        items = [item for job in live for item in job.items]
        start = time.perf_counter()
        self.busy = True
        try:
            rows = await self._call(live[0].key, items)
        except Exception as exc:  # noqa: BLE001
            if len(live) == 1:
                _settle(live[0].future, exc=exc)
                return
            # One bad job must not fail its neighbours: run each alone, so only the culprit gets the error.
            for job in live:
                if job.future.done():
                    continue
                try:
                    _settle(job.future, await self._call(job.key, job.items))
                except Exception as job_exc:  # noqa: BLE001
                    _settle(job.future, exc=job_exc)
            return
        finally:
            self.busy = False
            if self._on_batch is not None:
                self._on_batch(len(items), len(live), time.perf_counter() - start)
        offset = 0
        for job in live:
            _settle(job.future, rows[offset: offset + len(job.items)])
            offset += len(job.items)


def _settle(future: asyncio.Future, result: Any = None, exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
