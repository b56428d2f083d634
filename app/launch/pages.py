"""The launch page: the form for one run, the tutorial experiment's button and the study form, each
submitted to its own route; a rejected form comes back with its errors beside the fields."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from app.experiments import form as experiment_forms
from app.experiments import service as experiments
from app.launch import benchmark_form, planned
from app.launch.benchmark_cost import form_cost
from app.launch.estimates import Estimator
from app.launch.timings import measured_runs, worker_device
from app.runs import form as forms
from app.runs import service as services
from app.store.errors import InputError, QueueFull
from app.searches import form as search_forms
from app.studies import form as study_form
from app.studies import service as studies
from app.teachers import form as import_forms
from app.teachers import service as teacher_imports
from app.teachers.uploads import PAGE_PATH
from app.web.api import SessionDep
from app.web.rendering import render
from kdcore.architectures import catalog
from kdcore.data.catalog import list_datasets

router = APIRouter()


def _launch_context(request: Request, session: Session, values: dict[str, str], errors: dict[str, str],
                    form_error: str | None = None, experiment: tuple[dict, dict, str | None] = ({}, {}, None),
                    study: tuple[dict, dict, str | None] = ({}, {}, None),
                    teacher_import: tuple[dict, dict, str | None] = ({}, {}, None),
                    benchmark: tuple[dict, dict, str | None] = ({}, {}, None)) -> dict:
    datasets = list_datasets(request.app.state.settings.data_dir)
    teachers = services.teacher_choices(session)
    exp_values, exp_errors, exp_error = experiment
    study_values, study_errors, study_error = study
    estimator = _estimator(request, session, datasets)
    exp_values = exp_values or _experiment_offer(estimator, datasets)
    run_values = values or {"kind": forms.launch_form({}, {}, datasets, teachers)["kind"]}
    return {
        "title": "Launch a run", "nav": "launch",
        "form": forms.launch_form(values, errors, datasets, teachers),
        "form_error": form_error,
        "experiment": dict(experiment_forms.experiment_form(exp_values, exp_errors, datasets), error=exp_error),
        "teacher_import": dict(import_forms.import_form(teacher_import[0], teacher_import[1], datasets),
                               error=teacher_import[2]),
        "study": dict(study_form.study_form(study_values, study_errors, datasets, teachers,
                                            request.app.state.settings.max_study_runs), error=study_error),
        "search": search_forms.search_form(session),
        "estimates": {name: _expected(estimator, plan) for name, plan in _plans(
            request, session, datasets, estimator, run_values, exp_values,
            study_values or study_form.defaults(datasets)).items()}
        | {"experiment_full": _experiment_full(request, estimator, exp_values, datasets)},
        "benchmark": _benchmark(request, session, datasets, *benchmark),
    }


def _benchmark(request: Request, session: Session, datasets: list, values: dict, errors: dict,
               error: str | None) -> dict:
    """The benchmark form, and what it costs as it stands (app.launch.benchmark_cost)."""
    values = values or benchmark_form.defaults(datasets)
    return dict(benchmark_form.benchmark_form(values, errors, datasets), error=error,
                cost=form_cost(request, session, values))


# On a CPU the tutorial experiment at full size takes hours: its form offers this many images instead.
CPU_SUBSET = 5000


def _estimator(request: Request, session: Session, datasets: list) -> Estimator:
    device, _ = worker_device(session, getattr(request.app.state, "worker_pool", None))
    flops = {name: info["flops"] for name, info in catalog(10).items()}
    return Estimator(measured_runs(session, {d.name: d.train_size for d in datasets}), device, flops)


def _plans(request: Request, session: Session, datasets: list, estimator: Estimator, run_values: dict,
           exp_values: dict, study_values: dict) -> dict[str, planned.Plan]:
    settings, flops = request.app.state.settings, estimator.flops
    return {"run": planned.run_plan(run_values, session, datasets, flops),
            "experiment": planned.experiment_plan(exp_values, settings, datasets, flops),
            "study": planned.study_plan(study_values, session, datasets, flops, settings.max_study_runs)}


def _expected(estimator: Estimator, plan: planned.Plan) -> dict:
    """What a form's estimate box says: the time and how it was found, or why there is none."""
    runs, problem = plan
    found = estimator.total(runs) if runs else None
    if found is None:
        return {"problem": problem or "its network's size is not known"}
    return {"seconds": found.seconds, "basis": found.basis, "how": found.how, "runs": len(runs),
            "where": estimator.where, "assumed": not estimator.known}


def _experiment_dataset(values: dict, datasets: list) -> tuple[str, int | None]:
    name = values.get("dataset") or experiment_forms.experiment_form({}, {}, datasets)["fields"][0]["value"]
    return name, next((d.train_size for d in datasets if d.name == name), None)


def _experiment_offer(estimator: Estimator, datasets: list) -> dict:
    """A fresh tutorial experiment form's values: on a CPU, CPU_SUBSET images of a larger dataset."""
    name, size = _experiment_dataset({}, datasets)
    return {"subset": str(CPU_SUBSET)} if estimator.device == "cpu" and size and size > CPU_SUBSET else {}


def _experiment_full(request: Request, estimator: Estimator, values: dict, datasets: list) -> dict | None:
    """On a CPU, how long the tutorial experiment takes on the whole of a dataset larger than CPU_SUBSET
    (what the form would train with its subset emptied)."""
    name, size = _experiment_dataset(values, datasets)
    if estimator.device != "cpu" or not size or size <= CPU_SUBSET:
        return None
    full = estimator.total(planned.experiment_plan({**values, "subset": ""}, request.app.state.settings, datasets,
                                                   estimator.flops)[0])
    return {"images": size, "subset": CPU_SUBSET, "seconds": full.seconds} if full else None


@router.get("/launch", response_class=HTMLResponse, name="launch_page")
def launch_page(request: Request, session: SessionDep) -> HTMLResponse:
    return render(request, "launch.html", _launch_context(request, session, dict(request.query_params), {}))


@router.get("/fragments/launch-fields", response_class=HTMLResponse, name="launch_fields")
def launch_fields(request: Request, session: SessionDep) -> HTMLResponse:
    # The kind changed: redraw the kind's own fields with its defaults, keeping the teacher choice.
    values = {k: v for k, v in request.query_params.items() if k in ("kind", "teacher_run_id")}
    context = _launch_context(request, session, values, {})
    return render(request, "_kind_fields.html", {"form": context["form"]})


@router.get("/fragments/launch-recipe", response_class=HTMLResponse, name="launch_recipe")
def launch_recipe(request: Request, session: SessionDep) -> HTMLResponse:
    # A preset was chosen: redraw the recipe with its values (fields a person then changes win at submit).
    values = {k: v for k, v in request.query_params.items() if k in ("kind", "preset")}
    context = _launch_context(request, session, values, {})
    return render(request, "_recipe_fields.html", {"form": context["form"]})


async def _form_values(request: Request) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


def _multi_values(data) -> dict[str, list[str]]:
    # The study form checks several methods and networks under one name.
    return {key: [v for v in data.getlist(key) if isinstance(v, str)] for key in data.keys()}


@router.post("/launch", response_class=HTMLResponse, name="launch_submit")
async def launch_submit(request: Request, session: SessionDep) -> Response:
    # Reading the form needs the event loop; the service call and the re-rendered form do not.
    values = await _form_values(request)
    return await anyio.to_thread.run_sync(_submit_run, request, session, values)


def _submit_run(request: Request, session: Session, values: dict[str, str]) -> Response:
    # A rejected form comes back as a normal page (200) with the errors inline: browsers log every
    # 4xx document as a console error, and the REST API already answers 422 for programs.
    try:
        run = services.create_run(session, forms.run_payload(values))
    except InputError as exc:
        errors, general = forms.errors_by_field(exc.errors, forms.LAUNCH_FIELDS)
        context = _launch_context(request, session, values, errors, "; ".join(general) or None)
        return render(request, "launch.html", context)
    except QueueFull as exc:
        return render(request, "launch.html", _launch_context(request, session, values, {}, str(exc)))
    return RedirectResponse(request.app.url_path_for("run_page", run_id=run.id), status_code=303)


@router.post("/launch/experiment", response_class=HTMLResponse, name="launch_experiment")
async def launch_experiment(request: Request, session: SessionDep) -> Response:
    values = await _form_values(request)
    return await anyio.to_thread.run_sync(_submit_experiment, request, session, values)


def _submit_experiment(request: Request, session: Session, values: dict[str, str]) -> Response:
    try:
        experiment = experiments.create_experiment(session, experiment_forms.experiment_payload(values))
    except (InputError, forms.FormError) as exc:
        errors, general = forms.errors_by_field(exc.errors, experiment_forms.EXPERIMENT_FORM_FIELDS)
        context = _launch_context(request, session, {}, {}, experiment=(values, errors, "; ".join(general) or None))
        return render(request, "launch.html", context)
    except QueueFull as exc:
        context = _launch_context(request, session, {}, {}, experiment=(values, {}, str(exc)))
        return render(request, "launch.html", context)
    study_id = experiments.experiment_study_id(session, experiment.id)
    if study_id is not None:  # over several seeds: the study page compares them
        return RedirectResponse(request.app.url_path_for("study_page", study_id=study_id), status_code=303)
    return RedirectResponse(request.app.url_path_for("compare_page") + f"?experiment={experiment.id}", status_code=303)


@router.post("/launch/study", response_class=HTMLResponse, name="launch_study")
async def launch_study(request: Request, session: SessionDep) -> Response:
    values = _multi_values(await request.form())
    return await anyio.to_thread.run_sync(_submit_study, request, session, values)


def _submit_study(request: Request, session: Session, values: dict[str, list[str]]) -> Response:
    payload = None
    try:
        payload = study_form.study_payload(values)
        study = studies.create_study(session, payload)
    except (InputError, forms.FormError) as exc:
        errors, general = study_form.place_errors(exc.errors, payload)
        context = _launch_context(request, session, {}, {}, study=(values, errors, "; ".join(general) or None))
        return render(request, "launch.html", context)
    except QueueFull as exc:
        return render(request, "launch.html", _launch_context(request, session, {}, {}, study=(values, {}, str(exc))))
    return RedirectResponse(request.app.url_path_for("study_page", study_id=study.id), status_code=303)


@router.post(PAGE_PATH, response_class=HTMLResponse, name="launch_teacher")
async def launch_teacher(request: Request, session: SessionDep) -> Response:
    form = await request.form(max_files=1, max_fields=20)
    upload = form.get("file")
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    # A file input left empty still sends a part, with no name and no bytes.
    has_file = upload is not None and not isinstance(upload, str) and bool(upload.filename)
    return await anyio.to_thread.run_sync(_submit_teacher, request, session, values,
                                          upload.file if has_file else None, upload.filename if has_file else None)


def _submit_teacher(request: Request, session: Session, values: dict[str, str], upload, name: str | None) -> Response:
    try:
        run = teacher_imports.import_teacher(session, values, upload, name)
    except InputError as exc:
        errors, general = forms.errors_by_field(exc.errors, import_forms.IMPORT_FIELDS)
        context = _launch_context(request, session, {}, {},
                                  teacher_import=(values, errors, "; ".join(general) or None))
        return render(request, "launch.html", context)
    except QueueFull as exc:
        context = _launch_context(request, session, {}, {}, teacher_import=(values, {}, str(exc)))
        return render(request, "launch.html", context)
    return RedirectResponse(request.app.url_path_for("run_page", run_id=run.id), status_code=303)


@router.get("/fragments/study-count", response_class=HTMLResponse, name="study_count")
def study_count(request: Request) -> HTMLResponse:
    # The study form changed: how many runs it would train now, and what its grid may sweep.
    values = _multi_values(request.query_params)
    context = {"estimate": study_form.run_estimate(values, request.app.state.settings.max_study_runs),
               "chosen": study_form.chosen_methods(values), "example": study_form.GRID_EXAMPLE}
    return render(request, "_study_count.html", context)


@router.get("/fragments/launch-estimate", response_class=HTMLResponse, name="launch_estimate")
def launch_estimate(request: Request, session: SessionDep, form: str = "run") -> HTMLResponse:
    # A launch form changed: how long what it would train now takes.
    datasets = list_datasets(request.app.state.settings.data_dir)
    estimator = _estimator(request, session, datasets)
    single = {k: v for k, v in request.query_params.items() if k != "form"}
    plans = {"run": lambda: planned.run_plan(single, session, datasets, estimator.flops),
             "experiment": lambda: planned.experiment_plan(single, request.app.state.settings, datasets,
                                                           estimator.flops),
             "study": lambda: planned.study_plan(_multi_values(request.query_params), session, datasets,
                                                 estimator.flops, request.app.state.settings.max_study_runs)}
    name = form if form in plans else "run"
    full = _experiment_full(request, estimator, single, datasets) if name == "experiment" else None
    return render(request, "_estimate.html", {"name": name, "e": _expected(estimator, plans[name]()), "full": full})
