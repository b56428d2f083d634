"""The body of POST /api/experiments, as a pydantic model that documents it (see app.runs.schemas)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import ConfigDict, Field, create_model

from kdcore.config import METHOD_PARAMS, RunConfig
from kdcore.registry import METHODS


def _param_field(name: str):
    """A method hyperparameter as an experiment's shared field, typed as its first declaring method has it."""
    field = next(m.params.model_fields[name] for m in METHODS.values() if name in m.param_names())
    return Optional[field.annotation], Field(None, description=f"{field.description} (the kinds that have it)")


# Every RunConfig field but kind and params, and every method hyperparameter by its plain name, all
# optional: omitted fields take each kind's default (the tutorial's).
ExperimentCreate = create_model(
    "ExperimentCreate",
    __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
    __doc__="The tutorial experiment (teacher, student, kd, cosine, fitnet) on one dataset. Shared fields apply "
    "to every kind that uses them; `kinds` overrides fields per kind, e.g. {\"teacher\": {\"epochs\": 5}}. "
    "With two or more `seeds` it is also a study (the answer's `study_id`; GET /api/studies/{id} gives mean ± std "
    "and the difference to the student): every method over every seed, one teacher per seed. A study shares one "
    "recipe, so its `kinds` may set only the teacher's epochs and architecture and each student method's epochs "
    "and hyperparameters; any other per-kind field is a 422.",
    **{
        name: (Optional[field.annotation], Field(None, description=field.description))
        for name, field in RunConfig.model_fields.items()
        if name not in ("kind", "params")
    },
    **{name: _param_field(name) for name in METHOD_PARAMS},
    kinds=(Optional[dict[str, dict[str, Any]]], Field(None, description="Per-kind overrides")),
    seeds=(Optional[list[Annotated[int, Field(ge=0, le=2**63 - 1)]]],
           Field(None, min_length=1, max_length=100, description="Distinct seeds, e.g. [1, 2, 3]. Omitted: every "
                 "run takes `seed` (default 42), as before; one seed: that seed for every run; two or more: a "
                 "study with the experiment's runs once per seed (not together with `seed`)")),
)
