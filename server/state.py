"""The server's mutable state: the model (swapped atomically), log, batcher, live drift, metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from lib.core import tracking
from lib.core.contracts import predlog
from lib.core.layout import Layout
from lib.core.logs import get_logger
from lib.core.params import Params
from lib.serving.batch import Batch
from lib.serving.contract import check_rows
from lib.serving.loading import load_model, registered_version
from lib.serving.predictor import LoadedModel
from server import segments
from server.batcher import MicroBatcher
from server.config import Settings
from server.live import LiveMonitor
from server.metrics import Metrics
from server.peers import Ack, Peers
from server.predlog import Commit, PredictionLog

_T = TypeVar("_T")
RECENT_IDS = 100_000
FOLLOW_SECONDS = 0.2  # how often a worker looks for a reload another worker asked for
RELOAD_WAIT_SECONDS = 120.0  # how long POST /admin/reload waits for the other workers
log = get_logger("quire.server")


@dataclass
class ServingState:
    """Everything a request needs; ``model`` is replaced whole on reload."""

    settings: Settings
    params: Params
    metrics: Metrics
    model: LoadedModel | None = None
    predlog: PredictionLog | None = None
    batcher: MicroBatcher | None = None
    live: LiveMonitor | None = None
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    poller: asyncio.Task[None] | None = None
    peers: Peers | None = None  # the other workers of a multi-worker server
    follower: asyncio.Task[None] | None = None
    # ids of the latest logged rows: POST /feedback finds them before the log is flushed
    recent_ids: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_IDS))
    # request ids of the latest logged requests (likewise, for labels and lineage by request id)
    recent_requests: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_IDS))

    def current(self) -> LoadedModel:
        """Return the model to use now (requests keep the one they started with)."""
        assert self.model is not None
        return self.model

    def log_name(self, model: LoadedModel) -> str:
        """Return the model's folder name for its prediction log and labels.

        The registered name; a model served from a local folder has none, and goes under the
        project's model name, where the monitor stage and ``--retrain`` look.
        """
        return str(model.name or tracking.model_name(self.params))

    def install(self, model: LoadedModel) -> None:
        """Warm the model up with one prediction, then make it the served one."""
        model.predict(check_rows(self.example_rows(model), model.schema))
        self.model = model
        self.metrics.served(
            {
                "name": str(model.name),
                "version": str(model.version),
                "alias": str(model.alias),
                "uri": model.uri,
            }
        )
        if self.live is not None:
            self.live.use(model, self.log_name(model))
        self.metrics.ready.set(1)

    async def reload(self) -> LoadedModel:
        """Load the model (again: e.g. a new champion), warm it up and swap it in atomically.

        Requests that already hold the old model finish on it; later ones get the new one.
        """
        async with self.reload_lock:
            fresh = await asyncio.to_thread(
                load_model, self.params, self.settings.model_uri, fast=self.settings.fast_path
            )
            await asyncio.to_thread(self.install, fresh)
        return fresh

    async def start(self) -> LoadedModel:
        """Load the model, then start the prediction log, the micro-batcher and the alias poll."""
        settings = self.settings
        if self.params.monitor.live.enabled:
            self.live = LiveMonitor(self.params, self.metrics)
        model = await self.reload()  # the same load, warm-up and swap as /admin/reload
        if settings.prediction_log:
            folder = Layout.of(self.params, model=self.log_name(model)).predictions
            self.predlog = PredictionLog(
                folder, settings.log_flush_rows, settings.log_flush_seconds,
                on_drop=lambda n: self.metrics.log_drops.inc(n),
                durability=settings.log_durability, sync_seconds=settings.log_sync_seconds,
                on_reject=lambda n: self.metrics.log_rejects.inc(n),
                on_commit=self.metrics.log_committed,
            )  # fmt: skip
            await asyncio.to_thread(self.predlog.start)  # recovers a crashed run's segments
        self.batcher = MicroBatcher(
            self.current,
            lambda method, batch: self.run_model(method, batch),  # looked up at each call
            settings.batch_wait_ms,
            settings.batch_max_rows,
        )
        self.batcher.start()
        if self.live is not None:
            self.live.start()
        if settings.poll_seconds > 0:
            self.poller = asyncio.create_task(self._poll_alias(), name="alias-poller")
        self.peers = Peers.from_env()
        if self.peers is not None:
            self.peers.join()
            self.follower = asyncio.create_task(self._follow_reloads(), name="reload-follower")
        log.info("serving", model=model.name, version=model.version, uri=model.uri)
        return model

    async def stop(self) -> None:
        """Stop polling, answer the queued rows, flush the prediction log; then not ready."""
        for task in (self.poller, self.follower):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.peers is not None:
            self.peers.leave()
        if self.batcher is not None:
            await self.batcher.stop()
        if self.live is not None:
            await self.live.stop()
        if self.predlog is not None:
            await asyncio.to_thread(self.predlog.close)
        self.metrics.ready.set(0)

    async def reload_everywhere(self) -> tuple[LoadedModel, list[Ack], list[int]]:
        """Reload here, then in every other worker of a multi-worker server; wait for them.

        Returns
        -------
        tuple
            The model loaded here, the other workers' answers, and the pids of those that did
            not answer within :data:`RELOAD_WAIT_SECONDS`.
        """
        fresh = await self.reload()
        if self.peers is None:
            return fresh, [], []
        generation = self.peers.announce(fresh.version)
        acks, late = await asyncio.to_thread(self.peers.wait_acks, generation, RELOAD_WAIT_SECONDS)
        return fresh, acks, late

    async def _follow_reloads(self) -> None:
        """Reload when another worker was asked to (POST /admin/reload reaches every worker)."""
        assert self.peers is not None
        while True:
            await asyncio.sleep(FOLLOW_SECONDS)
            generation = self.peers.pending()
            if generation is None:
                continue
            try:
                fresh = await self.reload()
            except Exception as exc:  # answered to the worker that asked; keep serving
                error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("reload_failed", error=error)
                self.peers.ack(generation, False, None, error)
            else:
                log.info("reloaded", model=fresh.name, version=fresh.version, by="peer")
                self.peers.ack(generation, True, fresh.version, None)

    async def _poll_alias(self) -> None:
        """Reload whenever the served alias (champion by default) moves to another version."""
        settings = self.settings
        while True:
            await asyncio.sleep(settings.poll_seconds)
            try:
                now = await asyncio.to_thread(registered_version, self.params, settings.model_uri)
                if now is not None and now != self.current().version:
                    fresh = await self.reload()
                    log.info("alias_moved", model=fresh.name, version=fresh.version)
            except Exception as exc:  # the registry may be briefly unreachable: keep serving
                log.warning("alias_poll_failed", error=f"{type(exc).__name__}: {exc}"[:300])

    def check(
        self,
        rows: Sequence[Any],
        model: LoadedModel,
        *,
        extra: str | None = None,
        nan_missing: bool = False,
    ) -> Batch:
        """Check request rows against ``model``'s schema with the server's row limit.

        ``extra`` overrides the configured handling of unknown fields, ``nan_missing`` reads
        ``NaN`` as a missing value (the MLflow protocol does both, as ``mlflow models serve``).
        """
        return check_rows(
            rows,
            model.schema,
            extra=extra or self.settings.extra_fields,
            max_rows=self.settings.max_batch_rows,
            nan_missing=nan_missing,
        )

    async def predict(
        self,
        request_id: str,
        model: LoadedModel,
        batch: Batch,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Predict ``batch`` with ``model`` and log the rows under the request.

        Every route predicts through here or the micro-batcher, both with ``model.predict``: a
        classifier's labels at the version's decision threshold, the same on every route. A
        batch smaller than ``batch_max_rows`` goes through the micro-batcher (shared calls).

        Returns
        -------
        tuple
            Labels or values, and class probabilities in schema order (None for regression).
        """
        if self.batcher is not None and len(batch) < self.settings.batch_max_rows:
            # small requests share model calls with the others (one call costs about a
            # millisecond whatever its size up to a few hundred rows)
            _, labels, proba = await self.batcher.predict(batch, model)
        else:
            labels, proba = await self.run_model(model.predict, batch)
        await self.commit_rows(request_id, model, batch, labels, proba)
        return labels, proba

    async def run_model(self, method: Callable[[Batch], _T], batch: Batch) -> _T:
        """Call a model method on ``batch``: inline when small, else in a worker thread.

        A small prediction takes about a millisecond; handing it to a thread costs more than
        that in waits for the GIL (the interpreter switches threads every 5 ms), so only larger
        batches leave the event loop.
        """
        if len(batch) <= self.settings.inline_rows:
            return method(batch)
        return await asyncio.to_thread(method, batch)

    @staticmethod
    def example_rows(model: LoadedModel) -> list[dict[str, Any]]:
        """One plausible row built from the schema (for warm-up and the docs' example)."""
        row: dict[str, Any] = {}
        for col in model.schema.features:
            if col.kind == "numeric":
                low, high = col.min or 0.0, col.max if col.max is not None else 1.0
                row[col.name] = round((low + high) / 2, 2)
            elif col.kind == "boolean":
                row[col.name] = False
            elif col.kind == "datetime":
                row[col.name] = "2024-01-31"
            else:
                row[col.name] = (col.categories or ["a"])[0]
        return [row]

    async def commit_rows(
        self,
        request_id: str,
        model: LoadedModel,
        batch: Batch,
        labels: np.ndarray,
        proba: np.ndarray | None,
    ) -> None:
        """Log the served rows; with ``log_durability=fsync``, return once they are on disk.

        Routes call this before answering: in the other modes it returns at once.
        """
        done = self.log_rows(request_id, model, batch, labels, proba)
        if done is not None:
            await asyncio.wrap_future(done)

    async def served_lately(self, column: str) -> set[str]:
        """Return the request ids (or ids, by ``column``) served lately: maybe not in parts yet.

        This worker's memory of them and, under several workers, the rows the others have
        committed to their open log segments (with ``log_durability=memory`` they have none).
        """
        recent = set(self.recent_requests if column == predlog.REQUEST_ID else self.recent_ids)
        if self.peers is not None and self.predlog is not None:
            folder = self.predlog.folder
            recent |= await asyncio.to_thread(segments.open_values, folder, column)
        return recent

    def log_rows(
        self,
        request_id: str,
        model: LoadedModel,
        batch: Batch,
        labels: np.ndarray,
        proba: np.ndarray | None,
    ) -> Commit | None:
        """Queue the served rows for the prediction log (never blocks; columns, not dicts).

        Returns None, or with ``log_durability=fsync`` a future done once the rows are on disk
        (:meth:`commit_rows` awaits it).
        """
        if self.predlog is None and self.live is None:
            return None
        if self.predlog is not None:  # only logged rows can get labels and lineage
            self.recent_requests.append(request_id)
            if batch.ids is not None:
                self.recent_ids.extend(k for k in map(predlog.id_key, batch.ids) if k is not None)
        table = predlog.log_columns(
            batch.columns,
            request_id=request_id,
            model_version=model.version,
            prediction=labels,
            proba=proba,
            classes=model.classes,
            id_column=model.schema.id_column,
            ids=batch.ids,
        )
        if self.live is not None:
            self.live.add(table, model.version)
        return self.predlog.append(table) if self.predlog is not None else None
