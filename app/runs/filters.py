"""Which runs a list shows: by method, dataset, network, epochs, study and tag, as query parameters shared
by GET /api/runs, the leaderboard's API and its pages (app.leaderboard.filters), so that a filtered list's
URL can be passed on. A value no run has matches nothing (an empty list, not an error); a value of the
wrong type (``epochs=ten``) is a 422; an empty one (what a form's "any" sends) is no filter."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any

from fastapi import Depends, Query
from pydantic import BeforeValidator, Field

from app.runs.annotations import MAX_TAG_LENGTH, tagged
from app.store.models import MAX_ID, Run
from kdcore.architectures import canonical

_BLANK = BeforeValidator(lambda value: None if value == "" else value)
Name = Annotated[Annotated[str, Field(max_length=200)] | None, _BLANK]


@dataclass(frozen=True)
class RunFilter:
    """The filters given (None: any). ``tag`` matches a run's own tags and its study's."""

    kind: str | None = None
    dataset: str | None = None
    architecture: str | None = None
    epochs: int | None = None
    study_id: int | None = None
    tag: str | None = None

    def given(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value is not None}

    @property
    def active(self) -> bool:
        return bool(self.given())

    @property
    def by_membership(self) -> bool:
        """Filters that choose runs rather than configurations: a configuration's other runs (in other
        studies, untagged) still count in its statistics."""
        return self.study_id is not None or self.tag is not None

    def conditions(self) -> list:
        """Conditions on Run."""
        columns = {Run.kind: self.kind, Run.dataset: self.dataset, Run.architecture: self.architecture,
                   Run.epochs: self.epochs, Run.study_id: self.study_id}
        found = [column == value for column, value in columns.items() if value is not None]
        if self.tag is not None:
            found.append(tagged(self.tag))
        return found


def run_filter(
    kind: Annotated[Name, Query(description="The method (GET /api/methods)")] = None,
    dataset: Annotated[Name, Query(description="The dataset's name")] = None,
    architecture: Annotated[Name, Query(description="The network (a KD run's student)")] = None,
    epochs: Annotated[Annotated[int, Field(ge=1, le=2**62)] | None, _BLANK, Query()] = None,
    study_id: Annotated[Annotated[int, Field(ge=1, le=MAX_ID)] | None, _BLANK,
                        Query(description="Runs of this study")] = None,
    tag: Annotated[Annotated[str, Field(max_length=MAX_TAG_LENGTH)] | None, _BLANK,
                   Query(description="A tag of the run or of its study")] = None,
) -> RunFilter:
    # A network's former name (seed_student) finds the runs stored under its current one.
    architecture = canonical(architecture) if architecture is not None else None
    return RunFilter(kind=kind, dataset=dataset, architecture=architecture, epochs=epochs, study_id=study_id, tag=tag)


FilterDep = Annotated[RunFilter, Depends(run_filter)]
