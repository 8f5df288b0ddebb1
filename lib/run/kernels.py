"""Kernels started ahead: the next stage's kernel boots and imports while the current one runs.

Every stage runs in a fresh kernel, and a fresh kernel spends about 1.5 s starting and 4 s
importing pandas, scikit-learn, MLflow and plotly before the notebook's first line of real work.
run_all starts the next stage's kernel in a background thread when a stage begins, so that cost
overlaps the current stage (which keeps one core busy with ``OMP_NUM_THREADS=1``). The kernel only
imports libraries: the notebook still runs top to bottom in it, with no state of its own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lib.core.logs import get_logger

log = get_logger(__name__)

KERNEL = "python3"  # papermill's kernel_name in lib.run.execute
WARM_IMPORTS = "import numpy, pandas, pyarrow, scipy, sklearn, mlflow, plotly.graph_objects"
# As nbclient does for the kernels it starts: no IPython history database shared between kernels.
ARGUMENTS = ["--HistoryManager.hist_file=:memory:"]
# The kernel's own start-up warnings (e.g. about its TCP transport) go to run_all's console.
QUIET = ["--IPKernelApp.log_level=ERROR"]


def kernel_arguments(quiet: bool) -> list[str]:
    """Return the extra command-line arguments of a stage's kernel (papermill's or a warm one).

    Parameters
    ----------
    quiet
        Keep the kernel's start-up warnings off the console.
    """
    return list(QUIET) if quiet else []


class WarmKernel:
    """A kernel started (and its heavy imports done) in a background thread.

    Parameters
    ----------
    cwd
        The kernel's working folder (the notebooks folder, as papermill would use).
    env
        The kernel's whole environment (including the staging area of the stage it is for).
    arguments
        Extra command-line arguments of the kernel (:func:`kernel_arguments`).
    """

    def __init__(self, cwd: Path, env: Mapping[str, str], arguments: Sequence[str] = ()) -> None:
        from jupyter_client.manager import AsyncKernelManager

        class Manager(AsyncKernelManager):
            """Remembers its clients: nbclient leaves open the ones of a kernel it does not own."""

            def __init__(self, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self.clients: list[Any] = []

            def client(self, **kwargs: Any) -> Any:
                made = super().client(**kwargs)
                self.clients.append(made)
                return made

        self.km: Any = Manager(kernel_name=KERNEL)
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._boot,
            args=(cwd, dict(env), [*ARGUMENTS, *arguments]),
            name="warm-kernel",
            daemon=True,
        )
        self._thread.start()

    def _boot(self, cwd: Path, env: dict[str, str], arguments: list[str]) -> None:
        try:
            asyncio.run(self._start(cwd, env, arguments))
        except Exception as exc:  # reported by take(); the stage then starts its own kernel
            self._error = exc
        finally:
            self._done.set()

    async def _start(self, cwd: Path, env: dict[str, str], arguments: list[str]) -> None:
        await self.km.start_kernel(cwd=str(cwd), env=env, extra_arguments=arguments)
        client = self.km.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=120)
            reply = await client.execute_interactive(
                WARM_IMPORTS, store_history=False, timeout=300, output_hook=lambda msg: None
            )
            if reply["content"].get("status") != "ok":
                raise RuntimeError(f"warm-up imports failed: {reply['content'].get('evalue')}")
        finally:
            client.stop_channels()

    def take(self, timeout: float = 300) -> Any | None:
        """Return the ready kernel manager, or None (then papermill starts a kernel itself)."""
        if not self._done.wait(timeout) or self._error is not None:
            log.warning("warm_kernel_unused", error=str(self._error or "not ready in time"))
            self.shutdown()
            return None
        return self.km

    def shutdown(self) -> None:
        """Stop the kernel (whether or not it was used)."""
        self._done.wait(60)
        for client in self.km.clients:
            client.stop_channels()
        try:
            if self.km.has_kernel:
                asyncio.run(self.km.shutdown_kernel(now=True))
        except Exception as exc:  # already gone: nothing to stop
            log.debug("warm_kernel_shutdown", error=str(exc)[:200])
