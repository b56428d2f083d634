"""Which runs a list shows: by method, dataset, network, epochs, study, tag and a network's forward FLOPs at
most (``max_flops``, "50M"), as query parameters shared
by GET /api/runs, the leaderboard's API and its pages (app.leaderboard.filters), so that a filtered list's
URL can be passed on. A value no run has matches nothing (an empty list, not an error); a value of the
wrong type (``epochs=ten``) is a 422; an empty one (what a form's "any" sends) is no filter."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Query
from pydantic import BeforeValidator, Field
from sqlalchemy import and_, false, or_
from sqlmodel import select

from app.runs.annotations import MAX_TAG_LENGTH, tagged
from app.store.models import MAX_ID, Run
from app.web.api import SessionDep
from kdcore.architectures import canonical, catalog

_BLANK = BeforeValidator(lambda value: None if value == "" else value)
Name = Annotated[Annotated[str, Field(max_length=200)] | None, _BLANK]
_SCALE = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def _flop_count(value: Any) -> Any:
    """"50M", "1.5G", "5e7" or 50000000 as a whole count ("50 MFLOPs" reads too); anything else is left for
    pydantic to refuse with its own message."""
    if not isinstance(value, str):
        return value
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmgt]?)\s*(?:flops?)?\s*", value, re.IGNORECASE)
    if value.strip() == "":
        return None
    if not found:
        return value
    count = float(found[1]) * _SCALE[found[2].lower()]
    return round(count) if math.isfinite(count) else value  # "1e400": pydantic refuses the text


def networks_within(max_flops: int, class_counts: tuple[int, ...]) -> dict[int, list[str]]:
    """``{class count: the networks whose forward pass on one image costs at most max_flops at that count}``."""
    return {count: [name for name, info in catalog(count).items() if info.get("flops", max_flops + 1) <= max_flops]
            for count in class_counts}


@dataclass(frozen=True)
class RunFilter:
    """The filters given (None: any). ``tag`` matches a run's own tags and its study's."""

    kind: str | None = None
    dataset: str | None = None
    architecture: str | None = None
    epochs: int | None = None
    study_id: int | None = None
    tag: str | None = None
    max_flops: int | None = None
    # The class counts a FLOPs limit is looked up at (those of the stored runs): a network's head grows with them.
    class_counts: tuple[int, ...] = field(default=(10,), compare=False, repr=False)

    def given(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value is not None and name != "class_counts"}

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
        if self.max_flops is not None:
            # The network's forward FLOPs at the run's own class count (kdcore.architectures.cost, in the catalog).
            within = networks_within(self.max_flops, self.class_counts)
            found.append(or_(false(), *(and_(Run.num_classes == count, Run.architecture.in_(names))
                                        for count, names in within.items() if names)))
        return found


def run_filter(
    session: SessionDep,
    kind: Annotated[Name, Query(description="The method (GET /api/methods)")] = None,
    dataset: Annotated[Name, Query(description="The dataset's name")] = None,
    architecture: Annotated[Name, Query(description="The network (a KD run's student)")] = None,
    epochs: Annotated[Annotated[int, Field(ge=1, le=2**62)] | None, _BLANK, Query()] = None,
    study_id: Annotated[Annotated[int, Field(ge=1, le=MAX_ID)] | None, _BLANK,
                        Query(description="Runs of this study")] = None,
    tag: Annotated[Annotated[str, Field(max_length=MAX_TAG_LENGTH)] | None, _BLANK,
                   Query(description="A tag of the run or of its study")] = None,
    max_flops: Annotated[Annotated[int, Field(ge=0, le=10**18)] | None, BeforeValidator(_flop_count),
                         Query(description="Runs whose network's forward pass on one 32×32 image costs at most this "
                                           "many FLOPs (two per multiply-accumulate): 50000000, 5e7 or 50M")] = None,
) -> RunFilter:
    # A network's former name (seed_student) finds the runs stored under its current one.
    architecture = canonical(architecture) if architecture is not None else None
    counts = (10,)
    if max_flops is not None:
        # Only the counts runs have: describing another count's networks costs a subprocess of seconds.
        stored = session.exec(select(Run.num_classes).where(Run.num_classes.is_not(None)).distinct()).all()
        counts = tuple(sorted(set(stored))) or counts
    return RunFilter(kind=kind, dataset=dataset, architecture=architecture, epochs=epochs, study_id=study_id, tag=tag,
                     max_flops=max_flops, class_counts=counts)


FilterDep = Annotated[RunFilter, Depends(run_filter)]
