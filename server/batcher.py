"""Adaptive micro-batching: concurrent small requests share one model call.

A request puts its rows on a queue and awaits a future. One worker takes everything queued (up
to ``max_rows`` rows; with ``wait_ms`` > 0 it also waits that long for company), predicts it in
one model call per model (in a thread only when large), and answers each request with its own
rows. While one call runs, the next requests queue up and go together in the next call: under
low load a request waits for nobody, under high load the model sees fewer, larger calls. Every
prediction route sends its small requests here (``/predict``, ``/predict/batch``,
``/invocations``, V2 infer); a request names the model it was checked against, and requests for
different models (a reload in between) never share a call.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from lib.serving.batch import Batch
from lib.serving.predictor import LoadedModel


@dataclass
class _Job:
    batch: Batch
    model: LoadedModel | None  # None: the model current when the call runs
    future: asyncio.Future[tuple[LoadedModel, np.ndarray, np.ndarray | None]]


class MicroBatcher:
    """Queue single-row predictions and run them in shared batches."""

    def __init__(
        self, get_model: Any, run_model: Any, wait_ms: float = 0.0, max_rows: int = 256
    ) -> None:
        self._get_model = get_model
        self._run_model = run_model  # (method, batch) -> awaitable result
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
        self, batch: Batch, model: LoadedModel | None = None
    ) -> tuple[LoadedModel, np.ndarray, np.ndarray | None]:
        """Predict ``batch`` in the next model call; returns the model used and its outputs.

        ``model``: the one ``batch`` was checked against (default: the current one then).
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(batch, model, future))
        result: tuple[LoadedModel, np.ndarray, np.ndarray | None] = await future
        return result

    async def _collect(self) -> list[_Job]:
        jobs = [await self._queue.get()]
        rows = len(jobs[0].batch)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        while rows < self._max_rows:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time() if self._wait > 0 else 0
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            jobs.append(job)
            rows += len(job.batch)
        return jobs

    async def _run(self) -> None:
        while True:
            jobs = await self._collect()
            current = self._get_model()
            groups: dict[int, tuple[LoadedModel, list[_Job]]] = {}
            for job in jobs:
                model = job.model or current
                groups.setdefault(id(model), (model, []))[1].append(job)
            for model, group in groups.values():
                await self._call(model, group)

    async def _call(self, model: LoadedModel, jobs: list[_Job]) -> None:
        """One model call for ``jobs``; each gets its own rows of the outputs (or the error)."""
        batch = Batch.concat([j.batch for j in jobs])
        try:
            labels, proba = await self._run_model(model.predict, batch)
        except Exception as exc:  # handed to each waiting request, which reports it
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        start = 0
        for job in jobs:
            end = start + len(job.batch)
            part = proba[start:end] if proba is not None else None
            if not job.future.done():
                job.future.set_result((model, labels[start:end], part))
            start = end
