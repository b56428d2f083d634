"""What the dashboard's templates show: plain dictionaries built from app.services' results.

Kept apart from app.pages so the routes stay short. Nothing here branches on a run's kind: the
launch form follows RunConfig's JSON schema and ``METHODS[kind]``, charts follow ``loss_terms``.
"""

from __future__ import annotations

import math
import threading
import weakref
from typing import Any

from sqlmodel import Session

from app import services
from app.errors import NotFound
from kdcore.config import METHOD_PARAMS, RunConfig
from kdcore.data.catalog import DatasetInfo
from kdcore.figures import compression
from kdcore.registry import EXPERIMENT_KINDS, KINDS, METHODS

# Colour-blind-friendly Tableau 10; the same list is app.js's fallback.
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2",
           "#eeca3b", "#9d755d", "#ff9da6", "#79706e")
LEADERBOARD_ROWS = 100
COMPARE_MAX_RUNS = 12
SCHEMA = RunConfig.model_json_schema()["properties"]
# Friendlier labels than the schema's titles ("Lr", "Ce Weight"); fields not listed use the title.
LABELS = {"lr": "Learning rate", "ce_weight": "CE weight", "cuda_graphs": "CUDA graphs", "subset": "Subset (images)",
          "teacher_run_id": "Teacher run"}
HELP = {"subset": "Empty: the whole training split", "epochs": "Empty: the kind's seed value"}
# The form's sections. Fields the method decides (its params, its epochs) live beside the kind chooser.
KIND_FIELDS = ("epochs", *METHOD_PARAMS)
CONFIG_FIELDS = tuple(name for name in RunConfig.model_fields if name != "kind")
EXPERIMENT_FIELDS = ("dataset", "subset", "epochs", "device")


# ---------------------------------------------------------------- formatting filters

def fmt_pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def fmt_params(value: int | None) -> str:
    if value is None:
        return "—"
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return str(value)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def fmt_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def fmt_when(iso: str | None) -> str:
    return "—" if not iso else iso[:16].replace("T", " ")


FILTERS = {"pct": fmt_pct, "params": fmt_params, "duration": fmt_duration, "value": fmt_value, "when": fmt_when}


def experiment_titles() -> list[str]:
    return [METHODS[kind].title for kind in EXPERIMENT_KINDS]


def kind_color(kind: str) -> str:
    return PALETTE[KINDS.index(kind) % len(PALETTE)] if kind in KINDS else PALETTE[-1]


# ---------------------------------------------------------------- home

def leaderboard_view(rows: list[dict], show_all: bool = False) -> dict:
    params_of = {row["run_id"]: row["parameters"] for row in rows}
    acc_of = {row["run_id"]: row["final_accuracy"] for row in rows}
    series: dict[str, dict] = {}
    for row in rows:
        row["compression"] = compression(params_of.get(row["teacher_run_id"]), row["parameters"])
        teacher_acc = acc_of.get(row["teacher_run_id"])
        row["vs_teacher"] = (row["final_accuracy"] - teacher_acc
                             if teacher_acc is not None and row["final_accuracy"] is not None else None)
        row["color"] = kind_color(row["kind"])
        if row["parameters"] and row["final_accuracy"] is not None:
            s = series.setdefault(row["kind"], {"name": row["title"], "color": row["color"],
                                                "x": [], "y": [], "text": [], "links": []})
            s["x"].append(row["parameters"])
            s["y"].append(row["final_accuracy"])
            s["text"].append(f"run {row['run_id']} · {row['dataset']}")
            s["links"].append(f"/runs/{row['run_id']}")
    ordered = [series[k] for k in KINDS if k in series] + [v for k, v in series.items() if k not in KINDS]
    scatter = {"type": "scatter", "xTitle": "Parameters", "xLog": True, "yTitle": "Final test accuracy",
               "yFormat": ".1%", "series": ordered}
    shown = rows if show_all else rows[:LEADERBOARD_ROWS]
    best: dict[str, dict] = {}
    for row in rows:  # ranked already: the first row of a kind is its best
        best.setdefault(row["kind"], row)
    best_by_kind = sorted(best.values(), key=lambda r: KINDS.index(r["kind"]) if r["kind"] in KINDS else len(KINDS))
    return {"rows": shown, "total_done": len(rows), "scatter": scatter, "best_by_kind": best_by_kind}


# engine -> {show_all: (key, view)}; per engine so that apps on different databases never share an entry.
_LEADERBOARD_CACHE: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def cached_leaderboard_view(session: Session, show_all: bool = False) -> dict:
    """services.leaderboard loads every completed run (about 90 ms for 1,000): reuse the last view until
    services.leaderboard_version says the set of completed runs changed."""
    key = services.leaderboard_version(session)
    engine = session.get_bind()
    with _CACHE_LOCK:
        cached = _LEADERBOARD_CACHE.setdefault(engine, {}).get(show_all)
    if cached and cached[0] == key:
        return cached[1]
    view = leaderboard_view(services.leaderboard(session), show_all=show_all)
    with _CACHE_LOCK:
        _LEADERBOARD_CACHE[engine][show_all] = (key, view)
    return view


def active_view(session: Session) -> dict:
    running, running_total = services.list_runs(session, status="running", limit=50)
    queued, queued_total = services.list_runs(session, status="queued", limit=50)
    _, done_count = services.list_runs(session, status="completed", limit=1)
    _, all_count = services.list_runs(session, limit=1)
    as_dicts = [dict(services.run_to_dict(r), color=kind_color(r.kind)) for r in [*running, *reversed(queued)]]
    return {"active": as_dicts, "running_total": running_total, "queued_total": queued_total,
            "done_count": done_count, "all_count": all_count}


# ---------------------------------------------------------------- launch form

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


def launch_field_names() -> tuple[str, ...]:
    return ("kind", "teacher_run_id", *CONFIG_FIELDS)


def experiment_field_names() -> tuple[str, ...]:
    return EXPERIMENT_FIELDS


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


# Shown when the catalog has no note: what the source means for the person choosing it.
SOURCE_NOTES = {"imagefolder": "local images from the data directory; decoded once, then cached",
                "torchvision": "already downloaded"}


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
    return {name: v for name in launch_field_names() if (v := _form_value(values.get(name))) is not None}


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


# ---------------------------------------------------------------- run page

def _teacher_of(session: Session, run) -> dict | None:
    if run.teacher_run_id is None:
        return None
    try:
        return services.run_to_dict(services.get_run(session, run.teacher_run_id))
    except NotFound:
        return {"id": run.teacher_run_id, "missing": True}


def summary_view(session: Session, run) -> dict:
    data = services.run_to_dict(run)
    teacher = _teacher_of(session, run)
    distil_kind = next((k for k, m in METHODS.items() if m.needs_teacher), None)
    can_teach = run.status in ("completed", "queued", "running") and METHODS.get(run.kind) is not None \
        and METHODS[run.kind].architecture == "teacher" and distil_kind is not None
    return {"run": data, "method": METHODS.get(run.kind), "color": kind_color(run.kind), "teacher": teacher,
            "compression": compression((teacher or {}).get("parameters"), data["parameters"]),
            "distil_kind": distil_kind if can_teach else None, "action_error": None}


def _line_chart(title: str, y_title: str, series: list[dict], epochs: list[dict], y_format: str | None = None,
                log: bool = True) -> dict:
    for s in series:
        points = [(e["epoch"], _pick(e, s["key"])) for e in epochs]
        s["x"] = [x for x, y in points if y is not None]
        s["y"] = [y for x, y in points if y is not None]
    return {"type": "line", "title": title, "xTitle": "Epoch", "yTitle": y_title, "yFormat": y_format,
            "log": log, "series": series}


def _pick(data: dict, key: str) -> Any:
    for part in key.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def loss_series(terms: tuple[str, ...] | list[str]) -> list[dict]:
    series = [{"name": "train loss (weighted)", "key": "train_loss", "color": PALETTE[0]}]
    series += [{"name": f"train {term}", "key": f"train_terms.{term}", "color": PALETTE[(i + 1) % len(PALETTE)],
                "dash": "dot"} for i, term in enumerate(terms)]
    series.append({"name": "test loss", "key": "test_loss", "color": PALETTE[3]})
    return series


def run_view(session: Session, run, epochs: list) -> dict:
    rows = [services.epoch_to_dict(e) for e in epochs]
    method = METHODS.get(run.kind)
    terms = method.loss_terms if method else sorted({t for r in rows for t in r["train_terms"]})
    loss = _line_chart("Losses", "Loss", loss_series(terms), rows)
    accuracy = _line_chart("Test accuracy", "Accuracy", [{"name": "test accuracy", "key": "test_accuracy",
                                                          "color": PALETTE[2]}], rows, ".1%", log=False)
    config = [{"name": name, "label": label(name),
               "value": run.config.get(name), "help": SCHEMA[name].get("description")}
              for name in RunConfig.model_fields if name in run.config]
    return {**summary_view(session, run), "config": config, "loss_chart": loss, "accuracy_chart": accuracy,
            "epochs": rows, "after": rows[-1]["epoch"] if rows else 0}


# ---------------------------------------------------------------- compare

def parse_ids(raw: list[str]) -> list[int]:
    ids: list[int] = []
    for chunk in raw:
        for part in chunk.split(","):
            part = part.strip()
            if part.isdigit() and 1 <= int(part) < 2**63 and int(part) not in ids:
                ids.append(int(part))
    return ids


def compare_view(session: Session, run_ids: list[int], experiment_id: int | None) -> dict:
    experiments, _ = services.list_experiments(session, limit=50)
    recent, _ = services.list_runs(session, limit=100)
    missing: list[int] = []
    if experiment_id is not None:
        try:
            services.get_experiment(session, experiment_id)
            runs = services.experiment_runs(session, experiment_id)
        except NotFound:
            runs, missing = [], []
            experiment_id = None
    else:
        runs = []
        for run_id in run_ids:
            try:
                runs.append(services.get_run(session, run_id))
            except NotFound:
                missing.append(run_id)
    # Oldest first, whatever order the ids came in: teachers before the students distilled from them.
    runs = sorted(runs, key=lambda r: r.id)[:COMPARE_MAX_RUNS]
    picked = [dict(services.run_to_dict(r), color=PALETTE[i % len(PALETTE)]) for i, r in enumerate(runs)]
    history = {r.id: [services.epoch_to_dict(e) for e in services.get_epochs(session, r.id)] for r in runs}
    terms = list(dict.fromkeys(t for r in runs if r.kind in METHODS for t in METHODS[r.kind].loss_terms))
    metrics = [("Test accuracy", "Accuracy", "test_accuracy", ".1%", False), ("Train loss (weighted)", "Loss",
               "train_loss", None, True), ("Test loss", "Loss", "test_loss", None, True)]
    metrics += [(f"Train {t}", "Loss", f"train_terms.{t}", None, True) for t in terms]
    charts = []
    for index, (title, y_title, key, y_format, log) in enumerate(metrics):
        series = []
        for run in picked:
            s = _line_chart(title, y_title, [{"name": f"#{run['id']} {run['kind']}", "key": key,
                                              "color": run["color"]}], history[run["id"]])["series"][0]
            if s["x"]:
                series.append(s)
        if series:
            charts.append({"id": f"compare-{index}", "type": "line", "title": title, "xTitle": "Epoch",
                           "yTitle": y_title, "yFormat": y_format, "log": log, "series": series})
    for run in picked:
        last = history[run["id"]][-1]["test_accuracy"] if history[run["id"]] else None
        run["shown_accuracy"] = run["final_accuracy"] if run["final_accuracy"] is not None else last
    finals = {"type": "bar", "yTitle": "Final test accuracy", "yFormat": ".1%", "series": [
        {"name": "final accuracy", "x": [f"#{r['id']} {r['kind']}" for r in picked],
         "y": [r["shown_accuracy"] for r in picked], "colors": [r["color"] for r in picked],
         "links": [f"/runs/{r['id']}" for r in picked]}]}
    return {"runs": picked, "charts": charts, "finals": finals, "diff": _config_diff(picked),
            "experiments": experiments, "recent": recent, "experiment_id": experiment_id, "missing": missing,
            "selected": {r["id"] for r in picked}, "truncated": len(run_ids) > COMPARE_MAX_RUNS}


def _config_diff(runs: list[dict]) -> dict:
    rows = [{"label": "kind", "values": [r["kind"] for r in runs]},
            {"label": "teacher run", "values": [r["teacher_run_id"] for r in runs]}]
    rows += [{"label": label(n), "values": [r["config"].get(n) for r in runs]}
             for n in CONFIG_FIELDS]
    for row in rows:
        row["differs"] = len({repr(v) for v in row["values"]}) > 1
    return {"differing": [r for r in rows if r["differs"]], "same": [r for r in rows if not r["differs"]]}
