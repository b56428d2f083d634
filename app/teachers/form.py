"""The launch page's teacher import form: a checkpoint file, its network, format and dataset, and the recipe its
source states. Submitted as multipart to app.launch.pages, which calls app.teachers.service."""

from __future__ import annotations

from app.runs.form import dataset_field, default_dataset
from app.teachers.service import FORMATS, FRAMEWORK_RECIPE
from kdcore.architectures import REFERENCE_NAMES, names
from kdcore.presets import PRESET_TITLES, PRESETS

IMPORT_FIELDS = ("file", "architecture", "format", "dataset", "preset")
FORMAT_TITLES = {"mdistiller": "mdistiller ({\"model\": state_dict, ...})",
                 "repdistiller": "RepDistiller ({\"model\": state_dict, ...})", "state_dict": "a bare state_dict"}


def import_form(values: dict[str, str], errors: dict[str, str], datasets: list) -> dict:
    # The reference frameworks' names, which their files and commands use (not the tutorial's former names).
    aliases = {name: [old for old, new in REFERENCE_NAMES.items() if new == name] for name in names()}
    fmt = values.get("format", FORMATS[0])
    return {"fields": [
        {"name": "file", "label": "Checkpoint file (.pth)", "input": "file", "value": "", "error": errors.get("file"),
         "help": "mdistiller's and RepDistiller's published teachers, or any state_dict of a network here"},
        {"name": "architecture", "label": "Network", "input": "select", "value": values.get("architecture", ""),
         "error": errors.get("architecture"),
         "choices": [("", "choose the network it holds")] + [
             (name, name + (f" ({', '.join(aliases[name])})" if aliases[name] else "")) for name in names()]},
        {"name": "format", "label": "Format", "input": "select", "value": fmt, "error": errors.get("format"),
         "choices": [(name, FORMAT_TITLES.get(name, name)) for name in FORMATS]},
        dataset_field({"name": "dataset", "label": "Dataset (evaluated on its test split)", "input": "select",
                       "value": values.get("dataset", default_dataset(datasets)), "error": errors.get("dataset")},
                      datasets),
        {"name": "preset", "label": "Recipe it was trained with", "input": "select", "value": values.get("preset", ""),
         "error": errors.get("preset"),
         "help": "As its source states. Empty: " + ", ".join(f"{f} files {r}" for f, r in FRAMEWORK_RECIPE.items())
                 + ", others 'not stated'",
         "choices": [("", "as the format implies")] + [(name, PRESET_TITLES.get(name, name)) for name in PRESETS]},
    ]}
