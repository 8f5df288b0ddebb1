"""The ingest stage: sources → validated, typed table → train/validation/test Parquet + manifest.

Nothing under ``data/raw/`` is modified. The processed folder is built in a staging folder and
swapped in whole, so a failed ingest leaves the previous processed data byte-identical.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from lib.core.atomic import recover_dir, replace_dir, sha256_file, staging_dir
from lib.core.contracts.manifest import (
    ArtefactFile,
    Manifest,
    SourceFile,
    SplitFile,
    read_manifest,
    write_manifest,
)
from lib.core.errors import DataValidationError
from lib.core.layout import MANIFEST, Layout
from lib.core.logs import get_logger
from lib.core.params import Params
from lib.data import preflight
from lib.data.generator import generate
from lib.data.preprocess import build_preprocessor
from lib.data.readers import expand_source, penguins_csv, read_table
from lib.data.schema import Schema, complete_schema, draft_schema, params_fingerprint
from lib.data.split import SPLITS, split_findings, split_positions
from lib.data.validate import Finding, check, conform, infer_schema, report_frame

log = get_logger(__name__)

SCHEMA = "schema.json"
REPORT = "validation.json"
PREPROCESSOR = "preprocessor.joblib"


@dataclass(frozen=True)
class IngestResult:
    """What the ingest stage produced, for the notebook to display."""

    out_dir: Path
    schema: Schema
    schema_origin: str
    report: pd.DataFrame
    manifest: Manifest
    sample: pd.DataFrame
    split_method: str
    sources: list[Path]
    production_batch: Path | None


def resolve_sources(params: Params) -> tuple[list[Path], Path | None]:
    """Return the files to ingest and, for the generator, its drifted production batch.

    Parameters
    ----------
    params
        Uses ``data.source`` and, for the generator, ``generator`` and ``project.seed``.

    Returns
    -------
    tuple of (list of Path, Path or None)
        Input files, and the production batch file when one was generated.
    """
    source = params.data.source
    production = None
    if source == "generator":
        gen, seed = params.generator, params.project.seed
        sources = [generate(gen, seed, Layout.of(params).raw)]
        if gen.production.rows:
            production = generate(gen, seed, Layout.of(params).raw, production=True)
    elif source == "penguins":
        sources = [penguins_csv()]
    else:
        sources = expand_source(source)
    if params.ingest.feedback:  # served rows whose true label came back (lib.data.feedback)
        from lib.core import tracking
        from lib.data import feedback

        d = params.data
        rows = feedback.write_training_rows(
            params.project.data_dir, tracking.model_name(params), d.target, d.id_column, d.csv
        )
        sources += [rows] if rows is not None else []
    return sources, production


def _saved_schema(params: Params, saved: Path) -> tuple[Schema | None, str]:
    if params.ingest.schema_mode == "auto" and saved.exists():
        schema = Schema.load(saved)
        if schema.params_fingerprint == params_fingerprint(params.data):
            return schema, f"validated against the saved schema {saved}"
        return None, "re-inferred: data parameters changed since the saved schema"
    return None, "inferred from the data"


def _load(
    params: Params, sources: list[Path], saved: Path
) -> tuple[Schema, str, pd.DataFrame, list[Finding]]:
    """Read, conform and check every source; each raw table is dropped once conformed."""
    schema, origin = _saved_schema(params, saved)
    draft = schema
    parts: list[tuple[Path, pd.DataFrame]] = []
    columns: list[str] = []
    findings: list[Finding] = []
    for path in sources:
        raw = read_table(path, params.data.csv, params.data.rename)
        if not parts:  # every parameter naming a column, before any is used
            columns = [str(c) for c in raw.columns]
            if preflight.missing_columns(params, columns, preflight.SCHEMA_KEYS):
                data = preflight.inferable(params.data, columns)
                guess = infer_schema(raw, data, params.ingest.checks, path) if data else None
                preflight.check(params, columns, guess, str(path))
        if draft is None:
            draft = draft_schema(raw, params.data, params.ingest.checks, path)
        conformed, found = conform(raw, draft, path)
        del raw
        parts.append((path, conformed))
        findings += found
    assert draft is not None  # sources is never empty
    frame = parts[0][1] if len(parts) == 1 else pd.concat([p for _, p in parts], ignore_index=True)
    schema = schema or complete_schema(draft, frame)
    preflight.check(  # all at once, before anything is written or trained
        params,
        columns,
        schema,
        str(sources[0]),
        lambda p: preflight.file_columns(p, params),
    )
    for path, part in parts:
        findings += check(part, schema, params.ingest.checks, path)
    log.info("read", files=len(parts), rows=len(frame))
    return schema, origin, frame, findings


def _class_counts(frame: pd.DataFrame, schema: Schema) -> dict[str, int] | None:
    if schema.task == "regression":
        return None
    counts = frame[schema.target].value_counts()
    return {str(k): int(v) for k, v in counts.sort_index().items()}


def _write_splits(
    frame: pd.DataFrame, positions: dict[str, np.ndarray], schema: Schema, stage: Path
) -> dict[str, SplitFile]:
    splits: dict[str, SplitFile] = {}
    for name in SPLITS:
        part = frame.iloc[positions[name]]
        file = stage / f"{name}.parquet"
        part.to_parquet(file, index=False)
        splits[name] = SplitFile(
            file=file.name,
            rows=len(part),
            sha256=sha256_file(file),
            class_counts=_class_counts(part, schema),
        )
        del part
    return splits


def run_ingest(params: Params) -> IngestResult:
    """Run the whole ingest stage.

    Parameters
    ----------
    params
        The validated run parameters.

    Returns
    -------
    IngestResult
        Schema, validation report, manifest and a sample for display.

    Raises
    ------
    DataValidationError
        On a hard failure, naming file, row and column; the previous output is left as it was.
    """
    started = time.perf_counter()
    out_dir = Layout.of(params).processed
    recover_dir(out_dir)
    sources, production = resolve_sources(params)
    schema, origin, frame, findings = _load(params, sources, out_dir / SCHEMA)
    positions, method = split_positions(frame, schema, params.ingest.split, params.project.seed)
    findings += split_findings(frame, schema, positions, params.ingest.split)
    report = report_frame(findings)
    stage = staging_dir(out_dir)
    try:
        splits = _write_splits(frame, positions, schema, stage)
        schema.save(stage / SCHEMA)
        # The unfitted ColumnTransformer: training puts it at the head of every model pipeline.
        joblib.dump(build_preprocessor(schema, params.ingest.preprocessing), stage / PREPROCESSOR)
        (stage / REPORT).write_text(report.to_json(orient="records", indent=1), encoding="utf-8")
        manifest = _manifest(params, schema, sources, production, splits, method, len(frame), stage)
        write_manifest(stage / MANIFEST, manifest)
        replace_dir(stage, out_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    n_sample = min(params.ingest.sample_rows, len(frame))
    sample = frame.sample(n=n_sample, random_state=params.project.seed).sort_index()
    log.info(
        "ingested",
        out_dir=str(out_dir),
        rows=len(frame),
        **{f"{k}_rows": v.rows for k, v in splits.items()},
        seconds=round(time.perf_counter() - started, 2),
    )
    return IngestResult(
        out_dir, schema, origin, report, manifest, sample, method, sources, production
    )


def _manifest(
    params: Params,
    schema: Schema,
    sources: list[Path],
    production: Path | None,
    splits: dict[str, SplitFile],
    method: str,
    rows: int,
    out_dir: Path,
) -> Manifest:
    return Manifest(
        dataset=params.project.name,
        created_at=pd.Timestamp.now(tz="UTC").isoformat(),
        params_digest=params.digest(),
        task=schema.task,
        target=schema.target,
        rows=rows,
        schema_sha256=schema.sha256(),
        split_method=method,
        sources=[
            SourceFile(path=str(p), bytes=p.stat().st_size, sha256=sha256_file(p)) for p in sources
        ],
        production_batch=str(production) if production else None,
        preprocessor=ArtefactFile(file=PREPROCESSOR, sha256=sha256_file(out_dir / PREPROCESSOR)),
        splits=splits,
    )


def load_manifest(params: Params) -> Manifest:
    """Read the manifest of the processed data for ``params``."""
    hint = f"run the ingest stage for dataset {params.project.name!r} (quire run --only ingest)"
    return read_manifest(Layout.of(params).manifest, hint)


def check_gate(result: IngestResult) -> None:
    """Raise unless the stage's outputs are usable by training.

    The gate: every split has rows, the manifest's hashes match the files on disk, and for
    classification every class of the target appears in the training split.
    """
    for name, info in result.manifest.splits.items():
        path = result.out_dir / info.file
        if info.rows == 0:
            raise DataValidationError(
                f"{path}: the {name} split is empty; add rows or change ingest.split",
                path=path,
                check="gate",
            )
        if sha256_file(path) != info.sha256:
            raise DataValidationError(
                f"{path}: content hash differs from {MANIFEST}; rerun the ingest stage",
                path=path,
                check="gate",
            )
    counts = result.manifest.splits["train"].class_counts
    if counts is not None and result.schema.classes is not None:
        absent = [c for c in result.schema.classes if str(c) not in counts]
        if absent:
            splits = result.manifest.splits
            per_split = ", ".join(
                f"{name} {sum((splits[name].class_counts or {}).get(str(c), 0) for c in absent)}"
                for name in SPLITS
            )
            fix = (
                "set ingest.split.by_time: false for a stratified split (every class in every "
                "split), or drop those rows"
                if result.split_method.startswith("by time")
                else "add rows of those classes, or drop them"
            )
            raise DataValidationError(
                f"{result.sources[0]}: the split leaves the classes {absent} of "
                f"{result.schema.target!r} without training rows ({per_split}): a model cannot "
                f"learn a class it never sees; {fix}",
                path=result.sources[0],
                column=result.schema.target,
                check="gate",
            )


@dataclass(frozen=True)
class ProcessedData:
    """The ingest stage's outputs, loaded and checked against the manifest."""

    schema: Schema
    manifest: Manifest
    splits: dict[str, pd.DataFrame]
    preprocessor: Any

    def xy(self, split: str) -> tuple[pd.DataFrame, pd.Series]:
        """Return the features and target of one split."""
        frame = self.splits[split]
        return frame[self.schema.names()], frame[self.schema.target]


def load_processed(params: Params) -> ProcessedData:
    """Load the processed splits, schema and preprocessor, verifying every file's hash.

    Raises
    ------
    DataValidationError
        When the ingest stage has not run or a file no longer matches the manifest.
    """
    out_dir = Layout.of(params).processed
    manifest = load_manifest(params)
    files = {name: info.file for name, info in manifest.splits.items()}
    hashes = manifest.files()
    for file, expected in hashes.items():
        if sha256_file(out_dir / file) != expected:
            raise DataValidationError(
                f"{out_dir / file}: content differs from {MANIFEST}; rerun the ingest stage",
                path=out_dir / file,
                check="manifest",
            )
    splits = {name: pd.read_parquet(out_dir / file) for name, file in files.items()}
    preprocessor = joblib.load(out_dir / manifest.preprocessor.file)
    return ProcessedData(Schema.load(out_dir / SCHEMA), manifest, splits, preprocessor)
