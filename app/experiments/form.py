"""The launch page's form for the tutorial experiment: its dataset, subset, epochs, device and seeds, read
back into the payload app.experiments.service validates."""

from __future__ import annotations

from app.runs.form import dataset_field, default_dataset, form_field, form_value, parse_seeds
from kdcore.config import RunConfig
from kdcore.data.catalog import DatasetInfo

EXPERIMENT_FIELDS = ("dataset", "subset", "epochs", "device")
EXPERIMENT_FORM_FIELDS = (*EXPERIMENT_FIELDS, "seeds")


def experiment_form(values: dict[str, str], errors: dict[str, str], datasets: list[DatasetInfo]) -> dict:
    fields = []
    for name in EXPERIMENT_FIELDS:
        default = default_dataset(datasets) if name == "dataset" else RunConfig.model_fields[name].default
        f = form_field(name, values.get(name, default), errors.get(name))
        fields.append(dataset_field(f, datasets) if name == "dataset" else f)
    fields.append({"name": "seeds", "label": "Seeds", "input": "text", "value": values.get("seeds", "1"),
                   "error": errors.get("seeds"), "required": False,
                   "help": "1: each kind once, as before. 3 (or 1,2,3): each kind over seeds 1, 2, 3, one teacher "
                           "per seed, as a study with mean ± std and significance against the student"})
    return {"fields": fields, "error": errors.get("")}


def experiment_payload(values: dict[str, str]) -> dict:
    """The tutorial experiment form's payload. Seeds "1" (one of each kind, as before) leave ``seeds`` out.
    Raises FormError for seeds that are not numbers."""
    payload = {name: v for name in EXPERIMENT_FIELDS if (v := form_value(values.get(name))) is not None}
    seeds = parse_seeds(values.get("seeds") or "1")
    return payload if seeds == [1] and "," not in (values.get("seeds") or "") else {**payload, "seeds": seeds}
