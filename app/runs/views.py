"""What the run page shows: plain dictionaries built from app.runs.service's results, its summary card
(also what the page's event stream and buttons redraw) and its charts."""

from __future__ import annotations

from sqlmodel import Session

from app.executors.ray import names
from app.runs import service as services
from app.runs.annotations import MAX_TAG_LENGTH, MAX_TAGS, study_tags_of, tags_of
from app.runs.costs import network_cost
from app.runs.form import config_rows
from app.store.errors import NotFound
from app.web import charts
from kdcore.figures import compression
from kdcore.registry import METHODS
from kdcore.training.selection import BY_VALIDATION


def _teacher_of(session: Session, run) -> dict | None:
    if run.teacher_run_id is None:
        return None
    try:
        return services.run_to_dict(services.get_run(session, run.teacher_run_id))
    except NotFound:
        return {"id": run.teacher_run_id, "missing": True}


def summary_view(session: Session, run, action_error: str | None = None) -> dict:
    """The run page's summary card; ``action_error`` says why a cancel or retry was refused."""
    data = services.run_to_dict(run)
    teacher = _teacher_of(session, run)
    distil_kind = next((k for k, m in METHODS.items() if m.needs_teacher), None)
    can_teach = run.status in ("completed", "queued", "running") and METHODS.get(run.kind) is not None \
        and METHODS[run.kind].teaches and distil_kind is not None
    return {"run": data, "method": METHODS.get(run.kind), "color": charts.kind_color(run.kind), "teacher": teacher,
            "compression": compression((teacher or {}).get("parameters"), data["parameters"]),
            "distil_kind": distil_kind if can_teach else None, "action_error": action_error,
            "where": names.where(run.worker), "best_by_validation": data["best_epoch_label"] == BY_VALIDATION,
            "cost": network_cost(data["architecture"], run.num_classes)}


def run_view(session: Session, run, epochs: list) -> dict:
    rows = [services.epoch_to_dict(e) for e in epochs]
    method = METHODS.get(run.kind)
    terms = method.loss_terms if method else sorted({t for r in rows for t in r["train_terms"]})
    reported = method.reported if method else ()
    config = [{"name": name, "label": label, "value": value, "help": help_text}
              for name, label, value, help_text in config_rows(run.kind, run.config)]
    validation = bool(run.config.get("validation"))
    return {**summary_view(session, run), "config": config, "loss_chart": charts.loss_chart([t for t in terms if t not in reported], rows, validation),
            "reported_chart": charts.reported_chart(reported, rows) if reported else None,
            "accuracy_chart": charts.accuracy_chart(rows, validation, charts.kind_color(run.kind)), "epochs": rows,
            "after": rows[-1]["epoch"] if rows else 0, **stage_view(session, run, method)}


def stage_view(session: Session, run, method) -> dict:
    """The run's pre-stage (kdcore.methods.base.Stage) as the run page shows it: its name, its epochs done of
    how many, and its losses chart; nothing for a run without one or before its first epoch."""
    rows = services.get_stage_epochs(session, run.id)
    if not rows:
        return {"stage": None}
    name = rows[-1].stage
    stage = method.pre_stage if method is not None and method.pre_stage is not None else None
    terms = stage.loss_terms if stage is not None else sorted({t for r in rows for t in r.train_terms or {}})
    points = [{"epoch": r.epoch, "train_terms": r.train_terms or {}} for r in rows]
    return {"stage": {"name": name, "done": rows[-1].epoch, "epochs": rows[-1].epochs,
                      "trains": stage_trains(stage) if stage is not None else None,
                      "chart": charts.stage_chart(name, terms, points)}}


def stage_trains(stage) -> str:
    """What a pre-stage trains, in words: "the student and connectors", "paraphraser"."""
    parts = (["the student"] if stage.trains_student else []) + list(stage.modules)
    return " and ".join(parts)


def annotations_view(row, action: str, *, inherited: list[str] = (), view: str = "runs",
                     values: dict[str, str] | None = None, errors: dict[str, str] | None = None) -> dict:
    """The tags-and-note card of a run or a study (templates/_annotations.html), posting to ``action``;
    ``view``: the leaderboard view its tags link to; ``values``, ``errors``: a refused form, shown again."""
    tags = tags_of(row)
    return {"a": {"tags": tags, "inherited": [t for t in inherited if t not in tags], "note": row.note,
                  "study_id": getattr(row, "study_id", None), "view": view, "action": action,
                  "tags_text": values["tags"] if values else ", ".join(tags),
                  "note_text": values["note"] if values else row.note or "", "errors": errors or {},
                  "max_tags": MAX_TAGS, "max_tag_length": MAX_TAG_LENGTH}}


def run_annotations_view(session: Session, run, action: str, **refused) -> dict:
    """A run's card, with the tags its study gives it."""
    return annotations_view(run, action, inherited=study_tags_of(session, run), **refused)
