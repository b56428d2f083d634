"""The launch page's two forms: built from RunConfig's JSON schema and ``METHODS[kind]``, so a new kind
or field needs no change here, and read back into the payloads app.services validates."""

from __future__ import annotations

from typing import Any

from app.formatting import fmt_pct
from kdcore.config import METHOD_PARAMS, RunConfig
from kdcore.data.catalog import DatasetInfo
from kdcore.registry import KINDS, METHODS

SCHEMA = RunConfig.model_json_schema()["properties"]
# Friendlier labels than the schema's titles ("Lr", "Ce Weight"); fields not listed use the title.
LABELS = {"lr": "Learning rate", "ce_weight": "CE weight", "cuda_graphs": "CUDA graphs", "subset": "Subset (images)",
          "teacher_run_id": "Teacher run"}
HELP = {"subset": "Empty: the whole training split", "epochs": "Empty: the kind's seed value"}
# The form's sections. Fields the method decides (its params, its epochs) live beside the kind chooser.
KIND_FIELDS = ("epochs", *METHOD_PARAMS)
CONFIG_FIELDS = tuple(name for name in RunConfig.model_fields if name != "kind")
LAUNCH_FIELDS = ("kind", "teacher_run_id", *CONFIG_FIELDS)
EXPERIMENT_FIELDS = ("dataset", "subset", "epochs", "device")
# Shown when the catalog has no note: what the source means for the person choosing it.
SOURCE_NOTES = {"imagefolder": "local images from the data directory; decoded once, then cached",
                "torchvision": "already downloaded"}


def label(name: str) -> str:
    title = SCHEMA[name].get("title", name) if name in SCHEMA else name
    return LABELS.get(name, title[:1] + title[1:].lower())


def _field(name: str, value: Any, error: str | None) -> dict:
    prop = SCHEMA[name]
    spec = next((o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"), prop)
    kind = spec.get("type")
    field = {"name": name, "label": label(name), "error": error,
             "help": HELP.get(name) or prop.get("description"), "value": "" if value is None else str(value),
             "required": "anyOf" not in prop and "default" not in prop}
    if "enum" in spec:
        field.update(input="select", choices=[(c, c) for c in spec["enum"]])
    elif kind == "boolean":
        field.update(input="checkbox", checked=str(value).lower() in ("true", "on", "1", "yes"))
    elif kind in ("integer", "number"):
        field.update(input="number", step="1" if kind == "integer" else "any",
                     min=spec.get("minimum", spec.get("exclusiveMinimum")), max=spec.get("maximum"))
    else:
        field.update(input="text")
    return field


def _choose_kind(raw: str | None) -> str:
    return raw if raw in METHODS else KINDS[0]


def launch_form(values: dict[str, str], errors: dict[str, str], datasets: list[DatasetInfo], teachers: list) -> dict:
    kind = _choose_kind(values.get("kind"))
    method = METHODS[kind]
    defaults = RunConfig(kind=kind).to_json_dict()

    def field(name: str) -> dict:
        return _field(name, values.get(name, defaults.get(name)), errors.get(name))

    dataset = _dataset_field(_field("dataset", values.get("dataset", default_dataset(datasets)),
                                    errors.get("dataset")), datasets)
    kind_fields = [field(n) for n in KIND_FIELDS if n == "epochs" or n in method.params]
    teacher = None
    if method.needs_teacher:
        teacher = {"name": "teacher_run_id", "label": LABELS["teacher_run_id"], "input": "select",
                   "value": values.get("teacher_run_id", str(teachers[0].id) if teachers else ""),
                   "error": errors.get("teacher_run_id"),
                   "help": "Completed teachers, or queued/running ones (this run then waits for it)",
                   "choices": [(str(t.id), f"#{t.id} · {t.config.get('dataset')} · {t.status}"
                                + (f" · {fmt_pct(t.final_accuracy)}" if t.final_accuracy is not None else ""))
                               for t in teachers]}
    others = [dataset] + [field(n) for n in CONFIG_FIELDS if n not in KIND_FIELDS and n != "dataset"]
    return {
        "kind": kind, "method": method, "error": errors.get("kind"),
        "kinds": [(k, m.title) for k, m in METHODS.items()],
        "teacher_kind": next((k for k, m in METHODS.items() if m.architecture == "teacher"), kind),
        "teacher": teacher, "kind_fields": kind_fields,
        "general": [f for f in others if f["input"] != "checkbox"],
        "switches": [f for f in others if f["input"] == "checkbox"],
    }


def default_dataset(datasets: list[DatasetInfo]) -> str:
    """The forms' preselected dataset. RunConfig's default (torchvision CIFAR-10) needs a download that
    fails offline, so the forms prefer it only once downloaded, else the first ready local ImageFolder
    data (e.g. cifar10-jpg from its archive). The REST API keeps RunConfig's default."""
    fallback = RunConfig.model_fields["dataset"].default
    if any(d.name == fallback and d.ready for d in datasets):
        return fallback
    return next((d.name for d in datasets if d.source == "imagefolder" and d.ready), fallback)


def dataset_choices(datasets: list[DatasetInfo], current: str) -> list[tuple[str, str]]:
    choices = [(d.name, f"{d.name} · {d.num_classes} classes" + ("" if d.ready else " · to download"))
               for d in datasets]
    if current and current not in {d.name for d in datasets}:
        choices.append((current, f"{current} (not found)"))  # keep the user's input visible beside its error
    return choices


def dataset_notes(datasets: list[DatasetInfo]) -> dict[str, str]:
    return {d.name: d.note or SOURCE_NOTES.get(d.source, "") for d in datasets}


def _dataset_field(f: dict, datasets: list[DatasetInfo]) -> dict:
    # The help shows the chosen dataset's note; each option carries its own so app.js can follow a change.
    notes = dataset_notes(datasets)
    f.update(input="select", choices=dataset_choices(datasets, f["value"]), notes=notes,
             help=notes.get(f["value"]) or None)
    return f


def experiment_form(values: dict[str, str], errors: dict[str, str], datasets: list[DatasetInfo]) -> dict:
    fields = []
    for name in EXPERIMENT_FIELDS:
        default = default_dataset(datasets) if name == "dataset" else RunConfig.model_fields[name].default
        f = _field(name, values.get(name, default), errors.get(name))
        fields.append(_dataset_field(f, datasets) if name == "dataset" else f)
    return {"fields": fields, "error": errors.get("")}


def _form_value(raw: str | None) -> str | None:
    raw = (raw or "").strip()
    return raw or None


def run_payload(values: dict[str, str]) -> dict:
    """The form's strings as create_run's payload; empty means "the default" (pydantic parses the rest)."""
    return {name: v for name in LAUNCH_FIELDS if (v := _form_value(values.get(name))) is not None}


def experiment_payload(values: dict[str, str]) -> dict:
    return {name: v for name in EXPERIMENT_FIELDS if (v := _form_value(values.get(name))) is not None}


def errors_by_field(errors: list[dict], fields: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """Place each service error beside the form field its loc names; the rest go above the form."""
    placed: dict[str, str] = {}
    general: list[str] = []
    for error in errors:
        field = next((str(part) for part in error.get("loc", []) if str(part) in fields), None)
        if field is None:
            where = ".".join(map(str, error.get("loc", [])))
            general.append(f"{where}: {error['msg']}" if where else error["msg"])
        else:
            placed[field] = f"{placed[field]}; {error['msg']}" if field in placed else error["msg"]
    return placed, general
