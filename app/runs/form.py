"""The launch page's form for one run: built from RunConfig's JSON schema, each method's hyperparameter
model and the architecture catalog, so a new method, architecture or field needs no change here, and read
back into the payload app.runs.service validates. Its field, dataset and seed helpers serve the
experiment and study forms too."""

from __future__ import annotations

import re
from typing import Any

from app.web.formatting import fmt_params, fmt_pct
from kdcore.architectures import canonical, catalog
from kdcore.config import METHOD_PARAMS, RunConfig
from kdcore.data.catalog import DatasetInfo
from kdcore.presets import PRESET_TITLES, PRESETS
from kdcore.registry import KINDS, METHODS, failed_method_plugins
from kdcore.studies.study import ADDED_DEFAULTS

SCHEMA = RunConfig.model_json_schema()["properties"]
# Friendlier labels than the schema's titles ("Lr", "Ce Weight"); fields not listed use the title.
LABELS = {"lr": "Learning rate", "ce_weight": "CE weight", "cuda_graphs": "CUDA graphs", "subset": "Subset (images)",
          "teacher_run_id": "Teacher run", "architecture": "Architecture", "lr_decay": "LR decay",
          "warmup_epochs": "Warm-up epochs", "p": "p", "teacher_weights": "Teacher weights",
          "validation": "Validation split"}
HELP = {"subset": "Empty: the whole training split", "epochs": "Empty: the method's own (the tutorial's)",
        "validation": "Fraction of the training images held out to choose the best epoch on, e.g. 0.1 (the same "
                      "images for every run of this data); 0: none, and a best epoch is the best test epoch "
                      "(optimistic)",
        "teacher_weights": "final: the teacher's last epoch; best: its best validation epoch (only a teacher "
                           "trained with a validation split has one)"}
# The form's sections. What the method decides (teacher, student network, epochs, its own hyperparameters)
# sits beside the method chooser; the recipe, the data and the speed-ups follow.
KIND_FIELDS = ("teacher_weights", "architecture", "epochs")
RECIPE_FIELDS = ("optimizer", "lr", "momentum", "weight_decay", "schedule", "milestones", "lr_decay", "warmup_epochs",
                 "batch_size", "augment", "precision")
SWITCHES = ("resident_data", "cache_teacher", "cuda_graphs", "channels_last")
CONFIG_FIELDS = tuple(name for name in RunConfig.model_fields if name not in ("kind", "params"))
DATA_FIELDS = tuple(n for n in CONFIG_FIELDS if n not in (*KIND_FIELDS, *RECIPE_FIELDS, *SWITCHES))
LAUNCH_FIELDS = ("kind", "teacher_run_id", "preset", *CONFIG_FIELDS, *METHOD_PARAMS)
MAX_SEED_COUNT = 100
# Shown when the catalog has no note: what the source means for the person choosing it.
SOURCE_NOTES = {"imagefolder": "local images from the data directory; decoded once, then cached",
                "torchvision": "already downloaded"}


def label(name: str, schema: dict = SCHEMA) -> str:
    title = schema[name].get("title", name) if name in schema else name
    return LABELS.get(name, title[:1] + title[1:].lower())


def _method_schema(kind: str) -> dict:
    return METHODS[kind].params.model_json_schema()["properties"]


def config_rows(kind: str, config: dict) -> list[tuple[str, str, Any, str | None]]:
    """``(name, label, value, help)`` for each field of a stored config, the method's hyperparameters last.
    A config stored before a field was added shows the default it trained with."""
    config = {**ADDED_DEFAULTS, **config}
    rows = [(n, label(n), config[n], SCHEMA[n].get("description")) for n in CONFIG_FIELDS if n in config]
    params = config.get("params") or {}
    schema = _method_schema(kind) if kind in METHODS else {}
    rows += [(f"params.{n}", label(n, schema), value, schema.get(n, {}).get("description"))
             for n, value in params.items()]
    return rows


def form_field(name: str, value: Any, error: str | None, schema: dict = SCHEMA) -> dict:
    prop = schema[name]
    spec = next((o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"), prop)
    kind = spec.get("type")
    if isinstance(value, (list, tuple)):
        value = ",".join(map(str, value))
    field = {"name": name, "label": label(name, schema), "error": error,
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


def _architecture_field(value: str, error: str | None, num_classes: int, teacher_label: str | None) -> dict:
    described = catalog(num_classes)
    choices = [(name, f"{name} · {fmt_params(info['parameters'])} params · {fmt_params(info.get('macs'))} MACs") for name, info in described.items()]
    if value not in described:
        choices.append((value, f"{value} (not found)"))
    help_text = f"The student; the teacher's network comes from its run ({teacher_label})" if teacher_label \
        else "Parameter counts at this dataset's class count; MACs: one image's forward pass"
    return {"name": "architecture", "label": LABELS["architecture"], "input": "select", "value": value,
            "error": error, "help": help_text, "choices": choices, "required": False}


def launch_form(values: dict[str, str], errors: dict[str, str], datasets: list[DatasetInfo], teachers: list) -> dict:
    kind = _choose_kind(values.get("kind"))
    method = METHODS[kind]
    preset = values.get("preset") if values.get("preset") in PRESETS else ""
    defaults = RunConfig(kind=kind, **({"preset": preset} if preset else {})).to_json_dict()

    def field(name: str, schema: dict = SCHEMA, default: Any = None) -> dict:
        return form_field(name, values.get(name, default if default is not None else defaults.get(name)),
                      errors.get(name), schema)

    dataset_name = values.get("dataset", default_dataset(datasets))
    dataset = dataset_field(form_field("dataset", dataset_name, errors.get("dataset")), datasets)
    num_classes = next((d.num_classes for d in datasets if d.name == dataset_name and d.classes), 10)
    teacher = None
    if method.needs_teacher:
        teacher = {"name": "teacher_run_id", "label": LABELS["teacher_run_id"], "input": "select",
                   "value": values.get("teacher_run_id", str(teachers[0].id) if teachers else ""),
                   "error": errors.get("teacher_run_id"),
                   "help": "Completed teachers, or queued/running ones (this run then waits for it)",
                   "choices": [(str(t.id), teacher_label(t)) for t in teachers]}
    architecture = _architecture_field(canonical(values.get("architecture") or defaults["architecture"]),
                                       errors.get("architecture"), num_classes,
                                       "chosen above" if method.needs_teacher else None)
    schema = _method_schema(kind)
    params = [field(n, schema, defaults["params"][n]) for n in schema]
    kind_fields = [architecture, field("epochs")] + ([field("teacher_weights")] if method.needs_teacher else [])
    preset_field = {"name": "preset", "label": "Preset", "input": "select", "value": preset, "error": errors.get("preset"),
                    "required": False, "help": PRESET_TITLES.get(preset, "The tutorial's recipe: Adam, constant learning rate"),
                    "choices": [("", "tutorial recipe"), *((name, name) for name in PRESETS)]}
    general = [dataset] + [field(n) for n in DATA_FIELDS if n != "dataset"]
    return {
        "kind": kind, "method": method, "error": errors.get("kind"),
        "kinds": [(k, m.title) for k, m in METHODS.items()],
        "teacher_kind": next((k for k, m in METHODS.items() if m.teaches), kind),
        "teacher": teacher, "kind_fields": kind_fields, "params": params,
        "preset": preset_field, "recipe": [field(n) for n in RECIPE_FIELDS],
        "general": general, "switches": [field(n) for n in SWITCHES],
        "failed_plugins": failed_method_plugins(),
    }


def teacher_label(run) -> str:
    """A teacher run as the teacher pickers list it: its network and data, how long it trained, and its
    validation accuracy (what its best weights were chosen on) beside its final test accuracy."""
    config = run.config
    parts = [f"#{run.id}", run.architecture or config.get("architecture", "?"), config.get("dataset"),
             f"{config['subset']} images" if config.get("subset") else "all images",
             f"{config.get('epochs')} epochs"]
    if not config.get("validation"):
        parts.append("no validation split")
    elif run.best_val_accuracy is not None:
        parts.append(f"best val {fmt_pct(run.best_val_accuracy)}")
    parts.append(run.status)
    if run.final_accuracy is not None:
        parts.append(f"test {fmt_pct(run.final_accuracy)}")
    return " · ".join(map(str, parts))


def default_dataset(datasets: list[DatasetInfo]) -> str:
    """The forms' preselected dataset. RunConfig's default (torchvision CIFAR-10) needs a download that
    fails offline, so the forms prefer it only once downloaded, else the first ready local ImageFolder
    data (e.g. cifar10-jpg from its archive). The REST API keeps RunConfig's default."""
    fallback = RunConfig.model_fields["dataset"].default
    if any(d.name == fallback and d.ready for d in datasets):
        return fallback
    return next((d.name for d in datasets if d.source == "imagefolder" and d.ready), fallback)


def dataset_choices(datasets: list[DatasetInfo], current: str) -> list[tuple[str, str]]:
    choices = [(d.name, f"{d.name} · unreadable" if d.problem else
                f"{d.name} · {d.num_classes} classes" + ("" if d.ready else " · to download")) for d in datasets]
    if current and current not in {d.name for d in datasets}:
        choices.append((current, f"{current} (not found)"))  # keep the user's input visible beside its error
    return choices


def dataset_notes(datasets: list[DatasetInfo]) -> dict[str, str]:
    return {d.name: d.problem or d.note or SOURCE_NOTES.get(d.source, "") for d in datasets}


def dataset_field(f: dict, datasets: list[DatasetInfo]) -> dict:
    # The help shows the chosen dataset's note; each option carries its own so app.js can follow a change.
    notes = dataset_notes(datasets)
    f.update(input="select", choices=dataset_choices(datasets, f["value"]), notes=notes,
             help=notes.get(f["value"]) or None)
    return f


def form_value(raw: str | None) -> str | None:
    raw = (raw or "").strip()
    return raw or None


def run_payload(values: dict[str, str]) -> dict:
    """The form's strings as create_run's payload; empty means "the default" (pydantic parses the rest).
    The chosen method's hyperparameters go under ``params``; other methods' fields are not on the form."""
    kind = values.get("kind")
    own = METHODS[kind].param_names() if kind in METHODS else ()
    payload = {name: v for name in LAUNCH_FIELDS if name not in METHOD_PARAMS
               and (v := form_value(values.get(name))) is not None}
    params = {name: v for name in own if (v := form_value(values.get(name))) is not None}
    return {**payload, "params": params} if params else payload


class FormError(Exception):
    """Form text that cannot become a payload; ``errors`` as app.store.errors.InputError's."""

    def __init__(self, errors: list[dict]):
        self.errors = errors
        super().__init__("; ".join(e["msg"] for e in errors))


def parse_seeds(text: str, loc: tuple = ("seeds",)) -> list[int]:
    """Seeds as a person types them: a list ("1,2,3" or "1 2 3"), or a count ("3": seeds 1 to 3)."""
    parts = [part for part in re.split(r"[,\s]+", text.strip()) if part]
    if not parts:
        raise FormError([{"loc": list(loc), "msg": "give seeds, e.g. 1,2,3, or how many, e.g. 3", "type": "missing"}])
    bad = next((part for part in parts if not re.fullmatch(r"\d+", part)), None)
    if bad is not None:
        raise FormError([{"loc": list(loc), "msg": f"seeds are whole numbers, e.g. 1,2,3; not {bad!r}",
                          "type": "int_parsing"}])
    if len(parts) == 1 and "," not in text:
        count = int(parts[0])
        if not 1 <= count <= MAX_SEED_COUNT:
            raise FormError([{"loc": list(loc), "msg": f"count between 1 and {MAX_SEED_COUNT} seeds, or list "
                              "them (one seed alone with a comma: 7,)", "type": "count"}])
        return list(range(1, count + 1))
    return [int(part) for part in parts]


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
