"""What the compare page shows: single runs (picked, or an experiment's) and groups of replicates (by
key, or a study's configurations), as plain dictionaries."""

from __future__ import annotations

from sqlmodel import Session

from app.experiments import service as experiment_service
from app.runs import service as services
from app.runs.form import config_rows
from app.store.errors import NotFound
from app.studies import charts as study_charts
from app.studies import service as studies
from app.studies import views as study_view
from app.web import charts

COMPARE_MAX_RUNS = 12


def compare_view(session: Session, run_ids: list[int], experiment_id: int | None,
                 group_keys: list[str] | None = None, study_id: int | None = None) -> dict:
    """Single runs (picked, or an experiment's) and groups of replicates (``group_keys``, or a study's
    configurations): runs as lines, groups as a mean line in a ±std band, and a bar each."""
    experiments, _ = experiment_service.list_experiments(session, limit=50)
    recent, _ = services.list_runs(session, limit=100)
    listed, _ = studies.list_studies(session, limit=50)
    missing: list[int] = []
    if experiment_id is not None:
        try:
            experiment_service.get_experiment(session, experiment_id)
            runs = experiment_service.experiment_runs(session, experiment_id)
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
    picked = [{**services.run_to_dict(r), **style}
              for r, style in zip(runs, charts.method_styles([r.kind for r in runs]))]
    history = {r.id: [services.epoch_to_dict(e) for e in services.get_epochs(session, r.id)] for r in runs}
    for run in picked:
        last = history[run["id"]][-1]["test_accuracy"] if history[run["id"]] else None
        run["shown_accuracy"] = run["final_accuracy"] if run["final_accuracy"] is not None else last
    grouped = study_view.compare_groups(session, group_keys or [], study_id, [r["kind"] for r in picked])
    groups = grouped["groups"]
    drawn = study_charts.with_group_bands(charts.compare_charts(picked, history), groups, grouped["group_history"])
    legend = []
    if groups:
        # Groups' legend names are long (their hyperparameters): the page draws one legend for every chart.
        drawn = [dict(chart, legend=False) for chart in drawn]
        legend = [{"color": r["color"], "dash": r["dash"], "name": f"#{r['id']} {r['kind']}"} for r in picked]
        legend += [dict(entry, name=f"{group['tag']} {entry['name']}") for group, entry in
                   zip(groups, study_charts.curve_legend(groups, grouped["group_history"]))]
    return {"runs": picked, "groups": groups, "charts": drawn, "legend": legend,
            "finals": study_charts.finals_with_groups(charts.finals_chart(picked), groups),
            "diff": config_diff(picked, groups), "experiments": experiments, "recent": recent,
            "studies": [study for study, _ in listed], "study_id": grouped["study"]["id"] if grouped["study"] else None,
            "experiment_id": experiment_id, "missing": missing, "missing_groups": grouped["missing_groups"],
            "missing_study": grouped["missing_study"], "groups_truncated": grouped["groups_truncated"],
            "any_active": grouped["groups_active"] or any(r["status"] in ("queued", "running") for r in picked),
            "selected": {r["id"] for r in picked}, "truncated": len(run_ids) > COMPARE_MAX_RUNS}


def config_diff(runs: list[dict], groups: list[dict] = ()) -> dict:
    """The configuration fields side by side, a column per run and then per group (its runs' shared
    config: their seeds, and their teachers, listed), split into those that differ and those that do not."""
    columns = [(r["kind"], f"#{r['teacher_run_id']}" if r["teacher_run_id"] is not None else None, r["config"])
               for r in runs]
    columns += [(g["method"], ", ".join(f"#{i}" for i in g["teacher_run_ids"]) or None,
                 {**g["config"], "seed": ", ".join(map(str, g["seeds"])) or None}) for g in groups]
    rows = [{"label": "kind", "values": [kind for kind, _, _ in columns]},
            {"label": "teacher run", "values": [teacher for _, teacher, _ in columns]}]
    by_column = [{name: (label, value) for name, label, value, _ in config_rows(kind, config)}
                 for kind, _, config in columns]
    names = list(dict.fromkeys(name for fields in by_column for name in fields))
    rows += [{"label": next(fields[n][0] for fields in by_column if n in fields),
              "values": [fields[n][1] if n in fields else None for fields in by_column]} for n in names]
    for row in rows:
        row["differs"] = len({repr(v) for v in row["values"]}) > 1
    return {"differing": [r for r in rows if r["differs"]], "same": [r for r in rows if not r["differs"]]}
