"""What the study pages and the compare page's groups show: plain dictionaries built from app.studies.service.

A study page has a header, a progress card (refreshed while the study runs) and its results: one row
per configuration with its statistics, a verdict that names a winner only when the numbers support
one, mean curves, the sweep charts, and the exports. Nothing here queries the database itself.
"""

from __future__ import annotations

import json
from collections import Counter
from urllib.parse import urlencode

from sqlmodel import Session

from app.runs import service as services
from app.store.errors import NotFound
from app.store.models import ACTIVE_STATUSES, Run, Study
from app.studies import charts as study_charts
from app.studies import service as studies
from app.web import charts
from app.web.formatting import fmt_pct
from kdcore.registry import METHODS
from kdcore.studies.groups import groups_of, per_seed
from kdcore.studies.reproduction import reproduction_rows
from kdcore.studies.stats import difference, summarize

POLLING_STATUSES = ("queued", "running")
# Curves of more configurations than this are unreadable; the table still lists them all.
CURVE_GROUPS = 8
COMPARE_MAX_GROUPS = 10
CURVE_STATUSES = ("completed", "running")


def group_compare_url(study_id: int | None, key: str) -> str:
    query = [("study", study_id)] if study_id is not None else []
    return "/compare?" + urlencode([*query, ("group", key)])


# ---------------------------------------------------------------- list

def studies_list_view(session: Session, offset: int = 0, limit: int = 50) -> dict:
    rows, total = studies.list_studies(session, limit=limit, offset=offset)
    items = []
    for study, counts in rows:
        summary = studies.study_summary(study, counts)
        summary["fraction"] = summary["done"] / summary["total"] if summary["total"] else 1.0
        items.append(summary)
    return {"studies": items, "total": total, "offset": offset, "limit": limit,
            "newer": max(0, offset - limit) if offset else None,
            "older": offset + limit if offset + limit < total else None}


# ---------------------------------------------------------------- one study

def header_view(study: Study, runs: list[Run]) -> dict:
    spec = study.spec or {}
    methods = [m if isinstance(m, str) else m.get("method") for m in spec.get("methods", [])]
    own_teachers = [r.id for r in runs if METHODS.get(r.kind) is not None and METHODS[r.kind].teaches]
    recipe = {k: v for k, v in spec.items()
              if k not in ("name", "dataset", "subset", "methods", "seeds", "grid", "epochs")}
    return {"study": {"id": study.id, "name": study.name, "dataset": study.dataset, "subset": study.subset,
                      "created_at": services.iso(study.created_at), "teacher_run_id": study.teacher_run_id,
                      "benchmark_id": study.benchmark_id},
            "methods": [METHODS[m].title if m in METHODS else m for m in methods], "seeds": spec.get("seeds", []),
            "epochs": spec.get("epochs"), "grid": spec.get("grid") or {}, "recipe": recipe,
            "own_teachers": own_teachers}


def progress_view(study: Study, runs: list[Run], refusal: str | None = None) -> dict:
    """The progress card: counts, ETA, and whether the page keeps polling (only while runs are active)."""
    counts = Counter(run.status for run in runs)
    status = studies.status_of(study, counts)
    active = any(run.status in ACTIVE_STATUSES for run in runs)
    return {"study_id": study.id, "status": status, "progress": studies.progress(runs),
            "polling": status in POLLING_STATUSES, "cancelling": study.cancel_requested and active,
            "cancellable": active and not study.cancel_requested, "refusal": refusal,
            "deletable": counts["running"] == 0, "runs_total": len(runs)}


def _finals(runs: list[Run]) -> dict[str, dict]:
    """Each configuration's values by seed (repeats averaged): what the statistics compare."""
    return {group.key: per_seed(group.outcomes).finals for group in groups_of(studies.outcomes(runs))}


def _p_value(p: float | None) -> str:
    return "—" if p is None else "<0.001" if p < 0.001 else f"{p:.3f}"


def _p_text(p: float | None) -> str:
    return "untested" if p is None else "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _diff_text(diff: dict) -> str:
    text = f"Δ {diff['mean'] * 100:+.1f} pt"
    if diff.get("ci95"):
        low, high = diff["ci95"]
        text += f", 95 % CI [{low * 100:+.1f}, {high * 100:+.1f}]"
    if diff.get("p_value") is None:
        return f"{text}; a t-test needs two finished runs a side, with some spread"
    return f"{text}, {_p_text(diff['p_value'])}"


def verdict(rows: list[dict], runs: list[Run]) -> dict | None:
    """Which configuration has the highest mean, and whether that is a result or noise: it is called the
    best only when it beats the runner-up and the baseline student significantly (5 %)."""
    candidates = [r for r in rows if r["role"] != "teacher" and r["mean"] is not None]
    if len(candidates) < 2:
        return None
    top, runner = candidates[0], candidates[1]
    finals = _finals(runs)
    vs_runner = difference(finals.get(top["key"], {}), finals.get(runner["key"], {}))
    checks = [("the runner-up " + runner["label"], vs_runner.to_json_dict() if vs_runner else None)]
    if top["role"] != "baseline" and top["baseline_key"] and top["baseline_key"] != runner["key"]:
        baseline = next((r for r in rows if r["key"] == top["baseline_key"]), None)
        checks.append((baseline["label"] if baseline else "the baseline student", top["vs_baseline"]))
    beaten = [(name, diff) for name, diff in checks if diff is not None and diff["significant"] and diff["mean"] > 0]
    unclear = [(name, diff) for name, diff in checks if not (diff is not None and diff["significant"]
                                                             and diff["mean"] > 0)]
    return {"key": top["key"], "label": top["label"], "winner": not unclear,
            "beaten": [{"name": name, "text": _diff_text(diff)} for name, diff in beaten],
            "unclear": [{"name": name, "text": _diff_text(diff) if diff else "no completed runs to compare"}
                        for name, diff in unclear],
            "untestable": bool(unclear) and all(diff is None or diff["p_value"] is None for _, diff in unclear),
            "pending": any(run.status in ACTIVE_STATUSES for run in runs), "n": top["n"]}


def _members(group: dict, runs_by_id: dict[int, Run]) -> list[dict]:
    members = []
    for run_id in group["run_ids"]:
        run = runs_by_id[run_id]
        # Shown as text here rather than through the template's macros and filters: a study of hundreds of
        # runs lists every one, and Jinja's per-call costs made that list half the page's time.
        cancelling = run.status == "running" and run.cancel_requested
        members.append({"id": run.id, "seed": run.seed if run.seed is not None else run.config.get("seed"),
                        "status": run.status, "cancel_requested": run.cancel_requested,
                        "final_accuracy": run.final_accuracy, "url": f"/runs/{run.id}",
                        "badge": "cancelling" if cancelling else run.status,
                        "badge_text": "cancelling…" if cancelling else run.status,
                        "accuracy_text": fmt_pct(run.final_accuracy) if run.final_accuracy is not None else ""})
    return members


def _styles(groups: list[dict]) -> dict[str, dict[str, str]]:
    """Each configuration's colour (its method's, as on every page) and dash. A method's variants are told
    apart by first run, not by rank: a configuration keeps its style while the ranking moves."""
    ordered = sorted(groups, key=lambda g: min(g["run_ids"], default=0))
    return {g["key"]: style for g, style in zip(ordered, charts.method_styles([g["method"] for g in ordered]))}


def _test_text(diff: dict) -> str:
    against = f" against the {diff['baseline_epochs']}-epoch student" if diff.get("baseline_epochs") else ""
    if diff["paired"]:
        return f"paired t-test over {diff['n']} seeds{against}"
    return f"Welch's t-test ({diff['n']} vs {diff['baseline_n']} seeds){against}"


def group_rows(study_id: int | None, groups: list[dict], runs: list[Run]) -> list[dict]:
    """The table's rows, best mean first, each with its colour, its member runs and its compare link."""
    styles = _styles(groups)
    runs_by_id = {run.id: run for run in runs}
    rows = []
    for group in groups:
        diff = group["vs_baseline"]
        rows.append({**group, **styles[group["key"]], "members": _members(group, runs_by_id),
                     "compare_url": group_compare_url(study_id, group["key"]),
                     "p_text": _p_value(diff["p_value"]) if diff else None,
                     "test": None if diff is None else _test_text(diff)})
    return rows


def with_best_validation(rows: list[dict], runs: list[Run]) -> bool:
    """Give each row ``at_best``: its completed runs' test accuracy at their best validation epochs (n, mean,
    std), beside the final accuracy the study compares by. Returns whether any run holds out a validation
    split; without one there is no honest best epoch to show, and no row gets the figure."""
    runs_by_id = {run.id: run for run in runs}
    validated = {run.id for run in runs if run.config.get("validation")}
    for row in rows:
        chosen = [runs_by_id[i].best_accuracy for i in row["run_ids"]
                  if i in validated and runs_by_id[i].status == "completed"]
        row["at_best"] = summarize(chosen).to_json_dict() if chosen else None
    return bool(validated)


def _curve_rows(rows: list[dict]) -> list[dict]:
    """The configurations whose curves are drawn: the teacher and baseline, then the best means."""
    keep = {r["key"] for r in rows if r["role"] in ("teacher", "baseline")}
    for row in rows:
        if len(keep) >= CURVE_GROUPS:
            break
        keep.add(row["key"])
    return [r for r in rows if r["key"] in keep and r["run_ids"]]


def sweep_charts(study_id: int, grid: dict[str, list], rows: list[dict]) -> dict[str, list[dict]]:
    """For each method swept over one hyperparameter a line of mean ± CI, over two a heatmap of means
    (each cell linking to its runs); a sweep of three or more has neither."""
    by_method: dict[str, list[tuple[str, list]]] = {}
    for key, values in grid.items():
        method, _, param = key.partition(".")
        by_method.setdefault(method, []).append((param, values))
    heatmaps, lines = [], []
    networks_vary = len({r["architecture"] for r in rows if r["role"] != "teacher"}) > 1
    for method, axes in by_method.items():
        if len(axes) not in (1, 2):
            continue
        swept = {name for name, _ in axes}
        parts: dict[tuple, list[dict]] = {}
        for row in rows:
            if row["method"] == method:
                fixed = {k: v for k, v in row["params"].items() if k not in swept}
                parts.setdefault((row["architecture"], json.dumps(fixed, sort_keys=True, default=str)), []).append(row)
        title_base = METHODS[method].title if method in METHODS else method
        fixed_vary = len({key[1] for key in parts}) > 1
        for (architecture, fixed_json), members in parts.items():
            details = [architecture] if networks_vary and architecture else []
            if fixed_vary:
                fixed = json.loads(fixed_json)
                varying = [k for k in fixed if len({json.dumps(json.loads(f).get(k), default=str)
                                                    for _, f in parts}) > 1]
                details += [f"{k}={study_charts.value_text(fixed[k])}" for k in varying]
            title = title_base + (f" ({', '.join(details)})" if details else "")
            if len(axes) == 2:
                (x_name, x_values), (y_name, y_values) = axes
                chart = study_charts.grid_heatmap(f"{title}: mean final accuracy", x_name, x_values, y_name,
                                                  y_values, members, lambda g: group_compare_url(study_id, g["key"]))
                chart["id"] = f"heatmap-{len(heatmaps)}"
                chart["cells"] = [{"key": g["key"], "params": {x_name: g["params"].get(x_name),
                                                               y_name: g["params"].get(y_name)}} for g in members]
                heatmaps.append(chart)
            else:
                name, values = axes[0]
                baseline = next((r for r in rows if r["key"] == members[0]["baseline_key"]), None)
                chart = study_charts.sweep_line(f"{title}: mean final accuracy vs {name}", name, values, members,
                                                members[0]["color"], baseline)
                chart["id"] = f"sweep-{len(lines)}"
                lines.append(chart)
    return {"heatmaps": heatmaps, "lines": lines}


def exports(study_id: int, with_reproduction: bool = False) -> list[dict]:
    base = f"/api/studies/{study_id}"
    found = [{"label": "Runs (CSV)", "href": f"{base}/runs.csv", "id": "export-runs-csv"},
             {"label": "Groups (CSV)", "href": f"{base}/groups.csv", "id": "export-groups-csv"},
             {"label": "Everything (JSON)", "href": f"{base}/export.json", "id": "export-json"},
             {"label": "Table (Markdown)", "href": f"{base}/table.md", "id": "export-table-md"},
             {"label": "Table (LaTeX)", "href": f"{base}/table.tex", "id": "export-table-tex"}]
    if with_reproduction:
        found.append({"label": "Reported vs reproduced (CSV)", "href": f"{base}/reproduction.csv",
                      "id": "export-reproduction-csv"})
    return found


def results_view(session: Session, study: Study, runs: list[Run]) -> dict:
    groups = studies.study_groups(runs)
    rows = group_rows(study.id, groups, runs)
    curve_rows = _curve_rows(rows)
    wanted = [i for r in curve_rows for i in r["run_ids"]]
    by_id = {run.id: run for run in runs}
    # Only the drawn runs' epochs: a large study's others would be read for nothing.
    history = studies.epoch_metrics(session, [i for i in wanted if by_id[i].status in CURVE_STATUSES])
    sweeps = sweep_charts(study.id, (study.spec or {}).get("grid") or {}, rows)
    return {"study_id": study.id, "rows": rows, "verdict": verdict(rows, runs),
            "has_baseline": any(r["role"] == "baseline" for r in rows),
            "has_validation": with_best_validation(rows, runs),
            "curves": study_charts.group_curves(curve_rows, history),
            "curve_legend": study_charts.curve_legend(curve_rows, history),
            "curves_truncated": len(curve_rows) < len([r for r in rows if r["run_ids"]]),
            "curve_count": len(curve_rows), "curve_rows": curve_rows, **sweeps,
            "tables": studies.paper_tables(groups) if any(g["n"] for g in groups) else None,
            "reproduction_rows": reproduction_rows(rows),
            "exports": exports(study.id, with_reproduction=any(g["reproduction"] for g in groups))}


def study_view(session: Session, study: Study) -> dict:
    runs = studies.study_runs(session, study.id)
    return {**header_view(study, runs), **progress_view(study, runs), **results_view(session, study, runs)}


# ---------------------------------------------------------------- compare page groups

def compare_groups(session: Session, keys: list[str], study_id: int | None, run_kinds: list[str] = ()) -> dict:
    """Configurations to overlay on the compare page: the given group keys (within one study when
    ``study_id`` is given), or all of a study's configurations; each with its statistics, its runs, the first
    run's config and its style (its method's colour; ``run_kinds``: the single runs drawn beside them, which
    take their methods' first styles)."""
    study, missing = None, []
    if study_id is not None:
        try:
            study = studies.get_study(session, study_id)
        except NotFound:
            return {"groups": [], "group_history": {}, "missing_groups": [], "missing_study": study_id,
                    "study": None, "groups_truncated": False, "groups_active": False}
    if study is not None and not keys:
        runs = studies.study_runs(session, study.id)
    else:
        runs = studies.group_runs(session, keys, study_id=study.id if study else None)
    found = studies.study_groups(runs) if runs else []
    if keys:
        by_key = {g["key"]: g for g in found}
        found = [by_key[k] for k in keys if k in by_key]
        missing = [k for k in keys if k not in by_key]
    truncated = len(found) > COMPARE_MAX_GROUPS
    found = found[:COMPARE_MAX_GROUPS]
    runs_by_id = {run.id: run for run in runs}
    styles = charts.method_styles([*run_kinds, *(g["method"] for g in found)])[len(run_kinds):]
    groups = []
    for index, (group, style) in enumerate(zip(found, styles)):
        first = runs_by_id[group["run_ids"][0]] if group["run_ids"] else None
        groups.append({**group, **style, "tag": f"G{index + 1}", "members": _members(group, runs_by_id),
                       "study_id": first.study_id if first else None, "config": first.config if first else {},
                       "teacher_run_ids": sorted({runs_by_id[i].teacher_run_id for i in group["run_ids"]
                                                  if runs_by_id[i].teacher_run_id is not None})})
    wanted = [i for g in groups for i in g["run_ids"] if runs_by_id[i].status in CURVE_STATUSES]
    history = studies.epoch_metrics(session, wanted)
    active = any(runs_by_id[i].status in ACTIVE_STATUSES for g in groups for i in g["run_ids"])
    return {"groups": groups, "group_history": history, "missing_groups": missing, "missing_study": None,
            "study": {"id": study.id, "name": study.name} if study else None, "groups_truncated": truncated,
            "groups_active": active}


def group_keys(raw: list[str]) -> list[str]:
    """The group keys in a query, as kdcore.studies.study.group_key writes them (hex digests); others are ignored."""
    keys = []
    for chunk in raw:
        for part in chunk.split(","):
            part = part.strip().lower()
            if part and len(part) <= 64 and all(c in "0123456789abcdef" for c in part) and part not in keys:
                keys.append(part)
    return keys
