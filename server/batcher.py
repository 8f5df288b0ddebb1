"""Adaptive micro-batching: concurrent single-row requests share one model call.

A request puts its frame on a queue and awaits a future. One worker takes what is queued (up to
``max_rows`` rows, waiting at most ``wait_ms`` for more once it has one), predicts them together
in a thread, and answers each request with its own rows. Under low load a request waits for
nobody; under high load the model sees fewer, larger calls.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lib.serving import LoadedModel


@dataclass
class _Job:
    frame: pd.DataFrame
    future: asyncio.Future[tuple[LoadedModel, np.ndarray, np.ndarray | None]]


class MicroBatcher:
    """Queue single-row predictions and run them in shared batches."""

    def __init__(self, get_model: Any, wait_ms: float = 2.0, max_rows: int = 256) -> None:
        self._get_model = get_model
        self._wait = wait_ms / 1000
        self._max_rows = max_rows
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._task = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        """Stop the worker after the queued jobs are answered."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def predict(
        self, frame: pd.DataFrame
    ) -> tuple[LoadedModel, np.ndarray, np.ndarray | None]:
        """Predict ``frame`` in the next batch; returns the model used and its outputs."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(frame, future))
        result: tuple[LoadedModel, np.ndarray, np.ndarray | None] = await future
        return result

    async def _collect(self) -> list[_Job]:
        jobs = [await self._queue.get()]
        rows = len(jobs[0].frame)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        while rows < self._max_rows:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            jobs.append(job)
            rows += len(job.frame)
        return jobs

    async def _run(self) -> None:
        while True:
            jobs = await self._collect()
            model = self._get_model()
            frame = (
                pd.concat([j.frame for j in jobs], ignore_index=True)
                if len(jobs) > 1
                else jobs[0].frame
            )
            try:
                labels, proba = await asyncio.to_thread(model.predict, frame)
            except Exception as exc:  # handed to each waiting request, which reports it
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            start = 0
            for job in jobs:
                end = start + len(job.frame)
                part = proba[start:end] if proba is not None else None
                if not job.future.done():
                    job.future.set_result((model, labels[start:end], part))
                start = end
