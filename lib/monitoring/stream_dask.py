"""The streaming pass on a dask.distributed cluster: one task per file, merged as they finish.

A ``LocalCluster`` of single-threaded worker processes on 127.0.0.1 by default, or the scheduler
at an address, as the training search does. Row windows and sample row numbers stay global:
each task is told its file's first row (the files' row counts, in the time range when one is
set). A worker lost mid-run has its files summarised again elsewhere (Dask's retries); a file
that keeps killing workers fails the run with one :class:`~lib.core.errors.ClusterError`
naming it, and nothing is returned.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lib.core.errors import ClusterError, QuireError
from lib.core.logs import get_logger
from lib.monitoring.stream_pass import Pass, PassSpec, count_rows, merge_passes, summarise_files

log = get_logger(__name__)


def dask_summaries(
    paths: Sequence[Path], spec: PassSpec, scheduler: str | None, workers: int
) -> Pass:
    """Run the pass over ``paths`` on the cluster and merge what the files' tasks return."""
    counts = count_rows(paths, spec.time_column, spec.since, spec.until)
    offsets = [int(x) for x in np.concatenate([[0], np.cumsum(counts)[:-1]])]
    total = int(sum(counts))
    if spec.sample_rows and total > spec.sample_rows:
        # each file would send back up to sample_rows rows, most of them dropped at the merge;
        # the k smallest of N uniform keys lie below k/N give or take sqrt(k)/N: a cut 6 sd
        # above that keeps the same sample (checked below) and sends about k rows in all
        k = spec.sample_rows
        cut = (k + 6 * np.sqrt(k) + 100) / total
        found = _dask_pass(paths, dataclasses.replace(spec, sample_cut=cut), offsets, scheduler,
                           workers)  # fmt: skip
        if found.sample is not None and len(found.sample) >= k:
            return found
        log.warning("sample_cut_short", kept=0 if found.sample is None else len(found.sample))
    return _dask_pass(paths, spec, offsets, scheduler, workers)


def _dask_pass(
    paths: Sequence[Path], spec: PassSpec, offsets: list[int], scheduler: str | None, workers: int
) -> Pass:
    from dask.distributed import as_completed

    token = uuid.uuid4().hex[:8]
    with _client(scheduler, workers) as client:
        futures = {
            client.submit(
                summarise_files, [path], spec, first, i, key=f"summarise-{token}-{i}"
            ): path
            for i, (path, first) in enumerate(zip(paths, offsets, strict=True))
        }
        merged = Pass({}, None)
        try:
            for future in as_completed(futures):
                merged = merge_passes(merged, future.result(), spec.sample_rows)
                future.release()
        except Exception as exc:
            failed = next((futures[f] for f in futures if f.status == "error"), None)
            for f in futures:
                f.cancel()
            if isinstance(exc, QuireError):  # a worker's own clear error (a damaged file)
                raise type(exc)(f"{exc.message} (on the Dask cluster; nothing was saved)") from None
            where = f" summarising {failed}" if failed is not None else ""
            raise ClusterError(
                f"the Dask cluster failed{where}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}; nothing was saved. Check the "
                "workers' memory and logs, or run with monitor.backend: stream"
            ) from None
    return merged


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int) -> Iterator[Any]:
    from dask.distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
