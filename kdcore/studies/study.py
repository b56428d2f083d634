"""Studies: one request that expands to many runs (methods × hyperparameter grid × student networks ×
seeds, against one teacher), the keys that name a configuration and its baseline, and the paper table.

The REST API, the form and ``kd sweep`` share this module: StudySpec validates a request, ``expand``
turns it into RunConfigs, ``group_key`` names a configuration across its seeds and ``baseline_key`` the
baseline student it is compared with; kdcore.studies.groups computes each group's statistics.
Torch-free.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kdcore.architectures import canonical, first_name
from kdcore.config import METHOD_PARAMS, RunConfig, best_teacher_weights_error
from kdcore.errors import KDError
from kdcore.registry import BASELINE_KIND, METHODS, TEACHER_KINDS

DEFAULT_MAX_RUNS = 500
# Fields that do not change what a run computes (its seed aside): runs differing only here are replicates.
SPEED_FIELDS = ("device", "resident_data", "cache_teacher", "cuda_graphs", "channels_last")
# The recipe a study shares with all its runs: every RunConfig field it does not set itself.
RECIPE_FIELDS = tuple(name for name in RunConfig.model_fields
                      if name not in ("kind", "params", "architecture", "dataset", "subset", "epochs", "seed"))
Role = Literal["teacher", "baseline", "method"]


class StudyInputError(KDError):
    """A study request that cannot be expanded; ``errors`` holds ``{"loc", "msg", "type"}`` per problem."""

    def __init__(self, errors: list[dict]):
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc'])) or 'study'}: {e['msg']}" for e in errors))


def _error(loc: list, msg: str, type_: str = "value_error") -> dict:
    return {"loc": list(loc), "msg": msg, "type": type_}


def check_seeds(seeds: list[int]) -> list[int]:
    """A request's seeds: each a valid seed, none repeated (a pydantic validator's body)."""
    if any(seed < 0 or seed > 2**63 - 1 for seed in seeds):
        raise ValueError("seeds must be between 0 and 2^63 - 1")
    if len(set(seeds)) != len(seeds):
        raise ValueError("seeds must be distinct: a repeated seed repeats the same run")
    return seeds


class MethodEntry(BaseModel):
    """A method with fixed hyperparameters (the grid, if any, varies others)."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field(description="A method name (GET /api/methods)")
    params: dict[str, Any] = Field(default_factory=dict, description="Fixed hyperparameters of this entry")
    epochs: int | None = Field(None, ge=1, le=1000, description="This entry's epochs; default: the study's "
                               "epochs, else the method's own")


class StudySpec(BaseModel):
    """What a study trains. Recipe fields (lr, optimizer, batch_size, preset, …) apply to every run."""

    model_config = ConfigDict(extra="allow")

    name: str | None = Field(None, max_length=200, description="A label for the study")
    dataset: str = Field("cifar10", min_length=1, max_length=100)
    subset: int | None = Field(None, ge=1, description="Train on N images stratified by class")
    methods: list[str | MethodEntry] = Field(min_length=1, max_length=50,
                                             description="Methods to compare, e.g. [\"student\", \"kd\"]")
    architectures: list[str] | None = Field(None, min_length=1, max_length=20,
                                            description="Student networks; default: each method's own")
    seeds: list[int] = Field(min_length=1, max_length=100, description="One run per seed and configuration")
    epochs: int | None = Field(None, ge=1, le=1000, description="The students' epochs; default: each method's")
    teacher_epochs: int | None = Field(None, ge=1, le=1000, description="Epochs of a teacher the study trains")
    teacher_architecture: str | None = Field(None, max_length=100, description="Network of a teacher the study trains")
    teacher_per_seed: bool = Field(False, description="Train one teacher per seed (each seed's students distil "
                                   "from their own); else one teacher, with the first seed")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="Values to sweep, by \"method.param\", "
                                       "e.g. {\"kd.temperature\": [1, 2, 4]}: every combination is a configuration")

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        return check_seeds(seeds)

    @property
    def recipe(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def entries(self) -> list[MethodEntry]:
        return [MethodEntry(method=m) if isinstance(m, str) else m for m in self.methods]


@dataclass(frozen=True)
class Member:
    """One run of a study. ``teacher_seed``: the seed of the study teacher it distils from, if any."""

    config: RunConfig
    role: Role
    teacher_seed: int | None = None


@dataclass
class Plan:
    teachers: list[Member]
    students: list[Member]

    @property
    def members(self) -> list[Member]:
        return [*self.teachers, *self.students]


def parse_spec(payload: Any, *, strict: bool = False) -> StudySpec:
    if not isinstance(payload, dict):
        raise StudyInputError([_error([], "expected a JSON object", "dict_type")])
    try:
        return StudySpec.model_validate(payload, strict=strict)
    except ValidationError as exc:
        raise StudyInputError([_error(list(e["loc"]), e["msg"], e["type"]) for e in exc.errors()]) from None


def run_count(spec: StudySpec, external_teacher: bool = False) -> int:
    """How many runs ``expand`` makes, counted without building them."""
    entries = spec.entries()
    archs = len(spec.architectures or [None])
    per_seed = 0
    for entry in entries:
        combos = 1
        for key, values in spec.grid.items():
            if key.partition(".")[0] == entry.method:
                combos *= max(1, len(values))
        per_seed += combos * archs
    teachers = 0
    if not external_teacher and any(METHODS[e.method].needs_teacher for e in entries if e.method in METHODS):
        teachers = len(spec.seeds) if spec.teacher_per_seed else 1
    return per_seed * len(spec.seeds) + teachers


def expand(spec: StudySpec, *, external_teacher: bool = False, max_runs: int = DEFAULT_MAX_RUNS,
           strict: bool = False) -> Plan:
    """Every run of the study, teachers first. ``external_teacher``: the students distil from a teacher
    the caller provides (a run or a checkpoint), so the study trains none. Raises StudyInputError."""
    entries = spec.entries()
    errors = _entry_errors(entries, spec, external_teacher)
    if errors:
        raise StudyInputError(errors)
    count = run_count(spec, external_teacher)
    if count > max_runs:
        raise StudyInputError([_error(["grid" if spec.grid else "seeds"],
                                      f"this study expands to {count} runs; at most {max_runs} are allowed "
                                      f"(fewer seeds, methods or grid values)", "too_many_runs")])
    recipe = spec.recipe
    shared = {"dataset": spec.dataset, "subset": spec.subset, **recipe}
    seen: set[tuple] = set()

    def build(loc_of, **values) -> RunConfig | None:
        try:
            return RunConfig.model_validate({**shared, **values}, strict=strict, context={"strict": strict})
        except ValidationError as exc:
            for e in exc.errors():
                loc = loc_of(list(e["loc"]))
                if (tuple(loc), e["msg"]) not in seen:
                    seen.add((tuple(loc), e["msg"]))
                    errors.append(_error(loc, e["msg"], e["type"]))
            return None

    needs_teacher = any(METHODS[e.method].needs_teacher for e in entries)
    teachers: list[Member] = []
    if needs_teacher and not external_teacher:
        teacher_seeds = spec.seeds if spec.teacher_per_seed else spec.seeds[:1]
        for seed in teacher_seeds:
            config = build(_teacher_loc, kind=TEACHER_KINDS[0], architecture=spec.teacher_architecture,
                           epochs=spec.teacher_epochs, seed=seed)
            if config is not None:
                teachers.append(Member(config, "teacher"))
    best_error = best_teacher_weights_error(teachers[0].config.validation) if teachers else None
    students: list[Member] = []
    for index, entry in enumerate(entries):
        method = METHODS[entry.method]
        axes = [(key.partition(".")[2], values) for key, values in spec.grid.items()
                if key.partition(".")[0] == entry.method]
        for combo in itertools.product(*(values for _, values in axes)):
            params = {**entry.params, **{name: value for (name, _), value in zip(axes, combo)}}
            for architecture in spec.architectures or [None]:
                for seed in spec.seeds:
                    config = build(_student_loc(index, entry, axes, params), kind=entry.method, params=params,
                                   architecture=architecture, epochs=entry.epochs or spec.epochs, seed=seed)
                    if config is None:
                        break  # the other seeds would repeat the same errors
                    if best_error and method.needs_teacher and config.teacher_weights == "best":
                        errors.append(_error(["teacher_weights"], best_error, "needs_validation"))
                        best_error = None  # said once for the study
                    teacher_seed = None
                    if method.needs_teacher and not external_teacher:
                        teacher_seed = seed if spec.teacher_per_seed else spec.seeds[0]
                    role: Role = "baseline" if method.baseline else "method"
                    students.append(Member(config, role, teacher_seed))
    if errors:
        raise StudyInputError(errors)
    return Plan(teachers, students)


def _entry_errors(entries: list[MethodEntry], spec: StudySpec, external_teacher: bool) -> list[dict]:
    errors = []
    for index, entry in enumerate(entries):
        loc = ["methods", index]
        method = METHODS.get(entry.method)
        if method is None:
            errors.append(_error(loc, f"unknown method {entry.method!r}; choose from: {', '.join(METHODS)}"))
        elif method.teaches:
            errors.append(_error(loc, f"{entry.method} is the teacher: a study trains its own (teacher_epochs, "
                                      "teacher_architecture, teacher_per_seed) or uses teacher_run_id"))
        else:
            unknown = [name for name in entry.params if name not in method.param_names()]
            if unknown:
                errors.append(_error([*loc, "params", unknown[0]], f"{entry.method} has no hyperparameter "
                                     f"{unknown[0]!r}; it has: {', '.join(method.param_names()) or 'none'}"))
    keys = [(e.method, json.dumps(e.params, sort_keys=True, default=str), e.epochs) for e in entries]
    for index, key in enumerate(keys):
        if key in keys[:index]:
            errors.append(_error(["methods", index], f"{entries[index].method} is listed twice with the same "
                                 "hyperparameters and epochs", "duplicate"))
    names = {e.method for e in entries}
    for key, values in spec.grid.items():
        method_name, dot, param = key.partition(".")
        method = METHODS.get(method_name)
        if not dot or not param:
            errors.append(_error(["grid", key], "grid keys are \"method.param\", e.g. \"kd.temperature\""))
        elif method_name not in names:
            errors.append(_error(["grid", key], f"{method_name} is not among the study's methods"))
        elif method is not None and param not in method.param_names():
            errors.append(_error(["grid", key], f"{method_name} has no hyperparameter {param!r}; it has: "
                                 f"{', '.join(method.param_names()) or 'none'}"))
        elif not values:
            errors.append(_error(["grid", key], "give at least one value"))
        elif len(values) > 50:
            errors.append(_error(["grid", key], "at most 50 values per hyperparameter"))
        elif len({json.dumps(v, sort_keys=True, default=str) for v in values}) != len(values):
            errors.append(_error(["grid", key], "grid values must be distinct"))
        elif any(param in e.params for e in entries if e.method == method_name):
            errors.append(_error(["grid", key], f"{param} is fixed by the method entry and swept by the grid"))
    needs = any(METHODS[e.method].needs_teacher for e in entries if e.method in METHODS)
    if not needs and (spec.teacher_epochs or spec.teacher_architecture or spec.teacher_per_seed):
        errors.append(_error(["teacher_epochs" if spec.teacher_epochs else "teacher_architecture"
                              if spec.teacher_architecture else "teacher_per_seed"],
                             "no method of this study distils from a teacher"))
    if external_teacher and (spec.teacher_epochs or spec.teacher_architecture or spec.teacher_per_seed):
        errors.append(_error(["teacher_per_seed" if spec.teacher_per_seed else "teacher_epochs"],
                             "the study distils from the given teacher; it trains none"))
    for name in spec.recipe:
        if name not in (*RECIPE_FIELDS, "preset"):
            errors.append(_error([name], "Extra inputs are not permitted", "extra_forbidden"))
    return errors


def _teacher_loc(loc: list) -> list:
    renamed = {"architecture": "teacher_architecture", "epochs": "teacher_epochs"}
    return [renamed.get(loc[0], loc[0]), *loc[1:]] if loc else loc


def _student_loc(index: int, entry: MethodEntry, axes: list, params: dict):
    swept = {name for name, _ in axes}

    def loc_of(loc: list) -> list:
        if loc[:1] == ["params"] and len(loc) > 1:
            if loc[1] in swept:
                return ["grid", f"{entry.method}.{loc[1]}"]
            return ["methods", index, "params", *loc[1:]]
        if loc[:1] == ["architecture"]:
            return ["architectures"]
        return loc

    return loc_of


# ---------------------------------------------------------------- grouping

def _digest(value: Any) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


# Fields added to RunConfig after keys were first stored, with their defaults: left out of a key at their
# default, so that a run stored before the field existed keeps grouping with the same configuration now.
ADDED_DEFAULTS = {"precision": "float32", "validation": 0.0}


def _added_default(name: str, value) -> bool:
    return name in ADDED_DEFAULTS and ADDED_DEFAULTS[name] == value


def group_key(config: RunConfig | dict, teacher_key: str | None = None) -> str:
    """The configuration a run replicates: its config without the seed and the speed switches, and the
    configuration (not the run) of its teacher, so students of per-seed teachers group together."""
    data = config.to_json_dict() if isinstance(config, RunConfig) else dict(config)
    kept = {k: v for k, v in data.items() if k not in ("seed", *SPEED_FIELDS) and not _added_default(k, v)}
    if isinstance(kept.get("architecture"), str):
        # A renamed network keys under the name stored keys were made with: old runs and new ones group together.
        kept["architecture"] = first_name(canonical(kept["architecture"]))
    return _digest({"config": kept, "teacher": teacher_key})


def baseline_config(config: RunConfig | dict) -> RunConfig | None:
    """The baseline student a run is compared with: the baseline method on the same network, data, recipe
    and epochs. What belongs to distillation (the method, its hyperparameters, the teacher and which of
    its weights) goes. None without a baseline method, or for a stored config that no longer validates."""
    if BASELINE_KIND is None:
        return None
    data = config.to_json_dict() if isinstance(config, RunConfig) else dict(config)
    for name in ("params", "teacher_weights", *(n for n in METHOD_PARAMS if n not in RunConfig.model_fields)):
        data.pop(name, None)
    try:
        return RunConfig.model_validate({**data, "kind": BASELINE_KIND})
    except ValidationError:
        return None


def baseline_key(config: RunConfig | dict) -> str | None:
    """The group key of ``baseline_config``: the baseline student group a run compares with, unless the
    experiment or study that launched it trained its own (``own_baselines``)."""
    baseline = baseline_config(config)
    return None if baseline is None else group_key(baseline)


def own_baseline(config: RunConfig, students: Sequence[RunConfig]) -> str | None:
    """A run's baseline when the experiment or study that launches it trains the baseline ``students``:
    the one on the same network, data and recipe, of the run's own epochs if there is that one, else the
    only one (the tutorial experiment compares its 10-epoch KD students with its 20-epoch student). Otherwise,
    or when several epochs would do, ``baseline_key``: never a guess."""
    own = baseline_key(config)
    trained = {group_key(student): student.epochs for student in students}
    matching = {key for key, epochs in trained.items()
                if baseline_key(config.model_copy(update={"epochs": epochs})) == key}
    return own if own in matching or len(matching) != 1 else matching.pop()


def own_baselines(configs: Sequence[RunConfig]) -> list[str | None]:
    """own_baseline of each run of one submission, against the baseline students it trains."""
    students = [config for config in configs if config.method.baseline]
    chosen: dict[str, str | None] = {}  # by configuration: its seeds share their baseline
    keys = []
    for config in configs:
        configuration = group_key(config)
        if configuration not in chosen:
            chosen[configuration] = own_baseline(config, students)
        keys.append(chosen[configuration])
    return keys


def varying_params(groups: list[dict]) -> dict[str, list[str]]:
    """By method, the hyperparameters whose values differ between that method's groups."""
    by_method: dict[str, list[dict]] = {}
    for group in groups:
        by_method.setdefault(group["method"], []).append(group["params"])
    varying = {}
    for method, params_list in by_method.items():
        names = sorted({name for params in params_list for name in params})
        varying[method] = [n for n in names
                           if len({json.dumps(p.get(n), sort_keys=True, default=str) for p in params_list}) > 1]
    return varying


def group_label(group: dict, varying: dict[str, list[str]], networks_vary: bool = False) -> str:
    """A group's name in tables: its method's title, and the hyperparameters that vary in the study."""
    shown = [f"{name}={_plain(group['params'].get(name))}" for name in varying.get(group["method"], [])]
    if networks_vary and group["architecture"]:
        shown.insert(0, group["architecture"])
    return group["title"] + (f" ({', '.join(shown)})" if shown else "")


def _plain(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def paper_table(groups: list[dict], fmt: Literal["markdown", "latex"] = "markdown") -> str:
    """The comparison as a paper prints it: method, mean ± std over n seeds (in percent), and the
    difference to the baseline with its p-value."""
    varying = varying_params(groups)
    networks_vary = len({g["architecture"] for g in groups if g["role"] != "teacher"}) > 1
    rows = []
    for group in groups:
        if not group["n"]:
            continue
        mean = 100 * group["mean"]
        std = f"{100 * group['std']:.2f}" if group["std"] is not None else "–"
        diff = group["vs_baseline"]
        delta = "" if diff is None else f"{100 * diff['mean']:+.2f}"
        p = "" if diff is None or diff["p_value"] is None else _p_text(diff["p_value"])
        rows.append((group_label(group, varying, networks_vary), mean, std, group["n"], delta, p))
    if fmt == "latex":
        lines = [r"\begin{tabular}{lrrrr}", r"\toprule",
                 r"Method & Accuracy (\%) & $n$ & $\Delta$ vs student & $p$ \\", r"\midrule"]
        for label, mean, std, n, delta, p in rows:
            lines.append(f"{_latex(label)} & {mean:.2f} $\\pm$ {std} & {n} & {delta} & {p} \\\\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines) + "\n"
    lines = ["| Method | Accuracy (%) | n | Δ vs student (pt) | p |", "|---|---:|---:|---:|---:|"]
    for label, mean, std, n, delta, p in rows:
        lines.append(f"| {label} | {mean:.2f} ± {std} | {n} | {delta} | {p} |")
    return "\n".join(lines) + "\n"


def _p_text(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _latex(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        text = text.replace(char, escaped)
    return text

