"""Running the stages: recovery, one staging area per stage, promotion, the run's records.

:func:`run_pipeline` walks the stages in order. Each stage that :mod:`lib.run.plan` says must
run executes in a staging area (:mod:`lib.run.execute`); its outputs are promoted as one set
when it succeeds (:mod:`lib.run.staging`). Stages after a failure are marked skipped. Whatever a
killed earlier run left is recovered first (:func:`recover`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lib.core import staging_area
from lib.core.contracts.journal import Journal
from lib.core.contracts.status import Status
from lib.core.layout import Layout
from lib.core.logs import get_logger
from lib.core.params import Params
from lib.core.paths import NOTEBOOKS_DIR
from lib.run import console, fingerprint, history, records, staging
from lib.run.execute import Execution, run_stage, warm_kernel
from lib.run.kernels import WarmKernel
from lib.run.plan import UP_TO_DATE, Decision, decide, forced_names, plan, span
from lib.run.records import StageOutcome
from lib.run.stages import Stage, get_stage, output_paths

log = get_logger("quire.run_all")


def promote(
    journal: Journal, params: Params, status: Status, stage: Stage | None = None
) -> tuple[Status, str | None]:
    """Put a committed stage's outputs in place and record it.

    Also the roll-forward of a promotion a crash interrupted (``stage`` then comes from the
    journal): every step is idempotent.

    Returns
    -------
    tuple
        The saved status, and the stage's outputs digest (None: missing or damaged).
    """
    layout = Layout.of(params, staged=False)
    stage = stage or get_stage(journal.stage)
    staging.apply(journal)
    outputs = fingerprint.outputs_digest(stage, params)
    entry = journal.record.model_copy(
        update={"outputs": outputs, "mlflow_runs": history.stage_runs(stage, params)}
    )
    status = records.with_stage(status, stage.name, entry)
    records.save(layout, status)
    staging.finish(journal, layout.data)
    return status, outputs


def recover(params: Params, status: Status) -> tuple[Status, list[str]]:
    """Finish or discard what a killed run_all left; return the status and what was done.

    A committed promotion is rolled forward; staging areas without a commit are discarded
    (the previous outputs were never touched), their kernels stopped. A run still marked
    running is marked interrupted, and its MLflow runs still RUNNING are marked FAILED.
    """
    layout = Layout.of(params, staged=False)
    done = []
    journal = staging.pending_journal(layout.data)
    if journal is not None:
        status = promote(journal, params, status)[0]
        done.append(f"finished promoting the {journal.stage} stage's outputs")
    discarded = staging.discard_all(layout.data, layout.reports)
    done += [f"discarded the unfinished {name} stage's staging area" for name in discarded]
    if status.run.status == "running":
        status = records.with_run(
            status,
            status="interrupted",
            finished_at=status.run.finished_at or records.now(),
            note="the process ended without finishing (killed or crashed)",
        )
        status = history.close_run(layout.reports, status, params.run.history)
        done.append(f"marked the run started {status.run.started_at} interrupted")
    if status.run.status == "interrupted" and not status.run.orphans_closed:
        status = records.with_run(status, orphans_closed=True)  # its kernels are gone now
        done += [f"closed orphaned MLflow run {r}" for r in _close_orphaned_runs(params)]
    if done:
        records.save(layout, status)
        for line in done:
            log.warning("recovered", action=line)
    return status, done


def _close_orphaned_runs(params: Params) -> list[str]:
    from mlflow.exceptions import MlflowException

    from lib.core import tracking

    try:
        return tracking.close_orphaned_runs(tracking.setup(params))
    except (MlflowException, OSError) as exc:  # a remote store may be down: report, go on
        log.warning("orphaned_runs_not_checked", error=str(exc).splitlines()[0][:200])
        return []


def run_pipeline(
    params: Params,
    stages: Sequence[Stage],
    *,
    hide_code: bool = False,
    notebooks_dir: Path = NOTEBOOKS_DIR,
    force: bool | Sequence[str] = False,
    dry_run: bool = False,
    quiet: bool = True,
) -> list[StageOutcome]:
    """Run the ``stages`` that are not up to date, in order; stop at the first failure.

    Parameters
    ----------
    params
        Validated parameters.
    stages
        The stages to consider, in order.
    hide_code
        Render reports without code cells.
    notebooks_dir
        Where the stage notebooks are.
    force
        True reruns every stage; a list of names reruns those (and whatever their new outputs
        change downstream).
    dry_run
        Only say what would run and why (:func:`lib.run.plan.plan`).
    quiet
        Keep the kernels' start-up warnings off the console.

    Returns
    -------
    list of StageOutcome
        One per selected stage.
    """
    layout = Layout.of(params, staged=False)
    layout.reports.mkdir(parents=True, exist_ok=True)
    status = recover(params, records.load(layout))[0]
    if dry_run:
        return plan(params, stages, status, force=force, notebooks_dir=notebooks_dir)
    how = Execution(notebooks_dir, hide_code, quiet)
    return _Run(params, stages, how, force, status).run()


class _Run:
    """One run of the pipeline: its status record, the outcomes so far, the warm kernels."""

    def __init__(
        self,
        params: Params,
        stages: Sequence[Stage],
        how: Execution,
        force: bool | Sequence[str],
        status: Status,
    ) -> None:
        self.params = params
        self.layout = Layout.of(params, staged=False)
        self.how = how
        self.selected = [s for s in span(stages) if s in stages]
        self.span = span(stages)
        self.forced = forced_names(stages, force)
        self.status = status.model_copy(update={"run": records.new_run(params)})
        self.upstream: list[str] = []
        self.outcomes: list[StageOutcome] = []
        self.warm: dict[str, tuple[str, WarmKernel]] = {}  # the next stage's, started ahead
        self.current: Stage | None = None

    @property
    def failed(self) -> bool:
        """Whether a stage failed in this run."""
        return any(o.status == "failed" for o in self.outcomes)

    def run(self) -> list[StageOutcome]:
        """Walk the stages; from the moment the run is recorded, a signal marks it interrupted."""
        try:
            records.save(self.layout, self.status)
            lib_hash = fingerprint.code_hash()
            for stage in self.span:
                self.current = stage
                self._step(stage, lib_hash)
        except KeyboardInterrupt:  # SIGINT, or SIGTERM (run_all turns it into one)
            self._drop_warm()
            where = self.current.name if self.current else "?"
            self._close("interrupted", note=f"stopped by a signal during the {where} stage")
            raise
        self._drop_warm()  # a stage after a failure: its kernel is not needed
        self._close("failed" if self.failed else "ok")
        return self.outcomes

    def _close(self, state: str, **extra: str) -> None:
        status = records.with_run(self.status, status=state, finished_at=records.now(), **extra)
        self.status = history.close_run(self.layout.reports, status, self.params.run.history)
        records.save(self.layout, self.status)

    def _record(self, outcome: StageOutcome) -> None:
        """Record a stage that did not run (up to date, or skipped after a failure)."""
        saved = self.status.stages.get(outcome.stage.name)
        entry = records.not_run_record(saved, outcome, self.params, self.status.run.id or "")
        self.status = records.with_stage(self.status, outcome.stage.name, entry)
        records.save(self.layout, self.status)

    def _step(self, stage: Stage, lib_hash: str) -> None:
        if stage not in self.selected:  # its outputs as they are now
            self.upstream.append(fingerprint.outputs_digest(stage, self.params) or "missing")
            return
        if self.failed:
            self.outcomes.append(
                StageOutcome(stage, "skipped", 0.0, reason="an earlier stage failed")
            )
            self._record(self.outcomes[-1])
            return
        waiting = stage.waits(self.params) if stage.waits else None
        if waiting:
            self.outcomes.append(StageOutcome(stage, "skipped", 0.0, reason=waiting))
            log.info("stage_waits", stage=stage.name, reason=waiting)
            self._drop_warm(stage.name)
            self._record(self.outcomes[-1])
            console.stage_finished(self.outcomes[-1])
            self.upstream.append(fingerprint.outputs_digest(stage, self.params) or "missing")
            return
        decision = decide(
            stage,
            self.params,
            self.status.stages.get(stage.name),
            self.upstream,
            forced=stage.name in self.forced,
            notebooks_dir=self.how.notebooks_dir,
            lib_hash=lib_hash,
        )
        if decision.why is None:
            outcome, outputs = (
                StageOutcome(stage, "up to date", 0.0, reason=UP_TO_DATE),
                decision.outputs,
            )
            log.info("stage_up_to_date", stage=stage.name)
            self._drop_warm(stage.name)
            self._record(outcome)
            console.stage_finished(outcome)
        else:
            outcome, outputs = self._run_with_kernel(decision)
        self.outcomes.append(outcome)
        self.upstream.append(outputs or "missing")

    def _run_with_kernel(self, decision: Decision) -> tuple[StageOutcome, str | None]:
        """Run the stage in its warm kernel (if one was started) and start the next one's."""
        stage = decision.stage
        name, kernel = self.warm.pop(stage.name, (staging_area.area_name(stage.name), None))
        later = self.selected[self.selected.index(stage) + 1 :]
        if later:  # boots and imports while this stage runs
            self.warm[later[0].name] = warm_kernel(later[0], self.layout.data, self.how)
        km = kernel.take() if kernel else None
        try:
            return self._run_staged(decision, name, km)
        finally:
            if kernel is not None:
                kernel.shutdown()

    def _run_staged(
        self, decision: Decision, name: str, km: Any
    ) -> tuple[StageOutcome, str | None]:
        """Run one stage in a staging area; promote its outputs if it succeeds."""
        stage, why = decision.stage, decision.why or ""
        log.info("stage_start", stage=stage.name, notebook=stage.notebook, reason=why)
        console.stage_started(stage, why)
        finals = output_paths(stage, self.params)
        area = staging_area.Staging.begin(
            stage.name, finals, self.layout.data, self.layout.reports, name
        )
        try:
            ran = run_stage(stage, self.params, self.layout.reports, self.how, area=area, km=km)
        except BaseException:
            area.discard()
            raise
        outcome = StageOutcome(stage, ran.status, ran.seconds, ran.failure, why, ran.finished_at)
        console.stage_finished(outcome)
        run_id = self.status.run.id or ""
        if outcome.status == "failed":
            area.discard()
            log.error("stage_failed", stage=stage.name, error=outcome.error)
            entry = records.stage_record(outcome, self.params, run_id)
            self.status = records.with_stage(self.status, stage.name, entry)
            records.save(self.layout, self.status)
            return outcome, None
        with staging.signals_held():  # the promotion completes even if a signal arrives now
            record = records.stage_record(outcome, self.params, run_id, decision.parts)
            journal = staging.commit(area, self.layout.data, record)
            self.status, outputs = promote(journal, self.params, self.status, stage)
        log.info("stage_done", stage=stage.name, seconds=round(outcome.seconds, 1))
        return outcome, outputs

    def _drop_warm(self, name: str | None = None) -> None:
        """Stop the kernel started ahead for stage ``name`` (None: every one)."""
        for key in [name] if name else list(self.warm):
            if key in self.warm:
                self.warm.pop(key)[1].shutdown()
