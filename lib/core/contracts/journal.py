"""``data/.staging/journal.json``: the commit point of a stage's promotion.

Written once a stage succeeded and its outputs are complete in its staging area; from then on
the new outputs are the truth, and a run_all that finds the journal at start rolls the promotion
forward from it alone. :func:`write_journal` is its one writer, :func:`read_journal` its one
reader.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from lib.core.atomic import write_text
from lib.core.contracts.status import StageRecord


class RegistryChanges(BaseModel):
    """Registry changes a staged stage recorded instead of making them.

    ``aliases`` maps an alias to ``(model, version)``; each of ``tags`` is
    ``(model, version, key, value)``.
    """

    model_config = ConfigDict(coerce_numbers_to_str=True)  # versions, whatever MLflow gave

    aliases: dict[str, tuple[str, str]] = Field(default_factory=dict)
    tags: list[tuple[str, str, str, str]] = Field(default_factory=list)


class Journal(BaseModel):
    """What it takes to finish one stage's promotion.

    ``moves`` are ``(staged, final, present)``: move ``staged`` to ``final``, or remove
    ``final`` when the stage's new set has no such output (``present`` false). ``roots`` are the
    staging area's folders, removed at the end; ``record`` is the stage's status entry.
    """

    stage: str
    moves: list[tuple[str, str, bool]]
    registry: RegistryChanges
    roots: list[str]
    record: StageRecord


def write_journal(path: Path, journal: Journal) -> None:
    """Save the journal at ``path`` atomically (the promotion's commit point)."""
    write_text(path, journal.model_dump_json(indent=1, exclude_unset=True))


def read_journal(path: Path) -> Journal | None:
    """Return the journal saved at ``path``, or None when no promotion is pending."""
    if not path.exists():
        return None
    return Journal.model_validate_json(path.read_text(encoding="utf-8"))
