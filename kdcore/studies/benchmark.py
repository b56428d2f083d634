"""The ``cifar100-benchmark`` preset: the standard teacher→student pairs of the CIFAR-100 KD literature (Tian et
al., CRD, ICLR 2020, Table 1 and 2; reused by mdistiller and most later papers), a chosen set of methods × seeds
at the ``crd-cifar`` recipe, and how it expands into studies.

A study has one teacher network, and its recipe is every run's. So the benchmark is one study per teacher
network and learning rate: the papers train MobileNetV2 and ShuffleNet students at 0.01 rather than 0.05
(RepDistiller's README, mdistiller's configs), so ``vgg13→vgg8`` and ``vgg13→MobileNetV2`` are two studies.
Each teacher network is trained once, at the recipe's own 0.05, and every study of that network distils from
it: the teacher is given to the studies (a run or a checkpoint) rather than trained by each.

Every part can be narrowed: pairs, methods, seeds, epochs, the dataset and a subset (``synthetic100`` on a
CPU). Torch-free: the web process reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kdcore.architectures import canonical
from kdcore.config import RunConfig
from kdcore.presets import PRESETS
from kdcore.registry import BASELINE_KIND, METHODS, TEACHER_KINDS
from kdcore.studies.study import StudyInputError, _error, check_seeds

PRESET = "cifar100-benchmark"
RECIPE = "crd-cifar"
# The students the papers train at 0.01 (RepDistiller's README; mdistiller's configs, e.g. dkd/vgg13_mv2.yaml).
SMALL_LR_STUDENTS = ("mobilenetv2", "shufflev1", "shufflev2")
SMALL_LR = 0.01


@dataclass(frozen=True)
class Pair:
    """One column of the paper's table, named as the papers name its networks."""

    teacher: str
    student: str

    @property
    def label(self) -> str:
        return f"{self.teacher}→{self.student}"

    @property
    def key(self) -> str:
        """How the CLI and the API name it: ``teacher:student``."""
        return f"{self.teacher}:{self.student}"

    @property
    def networks(self) -> tuple[str, str]:
        """The zoo's names for its teacher and student."""
        return canonical(self.teacher), canonical(self.student)

    @property
    def lr(self) -> float:
        return SMALL_LR if self.networks[1] in SMALL_LR_STUDENTS else PRESETS[RECIPE]["lr"]


# The paper's columns, in its order: same-family pairs (CRD's Table 1), then different families (Table 2).
PAIRS: tuple[Pair, ...] = tuple(Pair(t, s) for t, s in (
    ("wrn_40_2", "wrn_16_2"), ("wrn_40_2", "wrn_40_1"), ("resnet56", "resnet20"), ("resnet110", "resnet20"),
    ("resnet110", "resnet32"), ("resnet32x4", "resnet8x4"), ("vgg13", "vgg8"), ("vgg13", "MobileNetV2"),
    ("ResNet50", "MobileNetV2"), ("ResNet50", "vgg8"), ("resnet32x4", "ShuffleV1"), ("resnet32x4", "ShuffleV2"),
    ("wrn_40_2", "ShuffleV1")))
DEFAULT_METHODS = ("kd", "dkd")
DEFAULT_SEEDS = (1, 2, 3)


def find_pair(text: str) -> Pair | None:
    """The standard pair ``teacher:student`` names (either network by any of its names), or None."""
    teacher, colon, student = text.partition(":")
    wanted = (canonical(teacher.strip()), canonical(student.strip()))
    return next((pair for pair in PAIRS if colon and pair.networks == wanted), None)


class BenchmarkSpec(BaseModel):
    """What a benchmark trains; every field narrows the preset."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200, description="A label for the benchmark")
    pairs: list[str] = Field(default_factory=lambda: [p.key for p in PAIRS], min_length=1, max_length=len(PAIRS),
                             description="Teacher:student pairs, e.g. [\"resnet32x4:resnet8x4\"]; default: all 13")
    methods: list[str] = Field(default_factory=lambda: list(DEFAULT_METHODS), min_length=1, max_length=50,
                               description="Distilling methods (the baseline student is always trained); "
                               f"default: {', '.join(DEFAULT_METHODS)}")
    seeds: list[int] = Field(default_factory=lambda: list(DEFAULT_SEEDS), min_length=1, max_length=100,
                             description="One run per seed, method and pair; the teachers train with the first")
    epochs: int = Field(PRESETS[RECIPE]["epochs"], ge=1, le=1000,
                        description="Every run's epochs, the teachers' too (the recipe's 240)")
    dataset: str = Field("cifar100", min_length=1, max_length=100)
    subset: int | None = Field(None, ge=1, description="Train on N images stratified by class")
    teachers: dict[str, Any] = Field(default_factory=dict, description="By teacher network, an existing teacher "
                                     "to distil from instead of training one (a run id in the API, a checkpoint "
                                     "in the CLI)")

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        return check_seeds(seeds)

    def chosen_pairs(self) -> list[Pair]:
        """The pairs asked for, in the paper's order."""
        wanted = {find_pair(text) for text in self.pairs}
        return [pair for pair in PAIRS if pair in wanted]

    def teacher_networks(self) -> list[str]:
        return list(dict.fromkeys(pair.networks[0] for pair in self.chosen_pairs()))

    def given_teacher(self, network: str) -> Any:
        """The teacher given for a network, under any of its names; None when the benchmark trains it."""
        return next((value for name, value in self.teachers.items() if canonical(name) == network), None)


@dataclass(frozen=True)
class BenchmarkStudy:
    """One study of the benchmark: a teacher network's students at one learning rate."""

    teacher: str
    pairs: tuple[Pair, ...]
    payload: dict[str, Any]  # the study request (kdcore.studies.study.StudySpec), without its teacher


def parse_benchmark(payload: Any) -> BenchmarkSpec:
    """Validate a benchmark request: unknown pairs, methods and teachers are named, nothing is expanded."""
    if not isinstance(payload, dict):
        raise StudyInputError([_error([], "expected a JSON object", "dict_type")])
    try:
        spec = BenchmarkSpec.model_validate(payload)
    except ValidationError as exc:
        raise StudyInputError([_error(list(e["loc"]), e["msg"], e["type"]) for e in exc.errors()]) from None
    errors = []
    names = ", ".join(p.key for p in PAIRS)
    for index, text in enumerate(spec.pairs):
        if find_pair(text) is None:
            errors.append(_error(["pairs", index], f"{text!r} is not a pair of the benchmark (teacher:student); "
                                 f"its pairs: {names}", "unknown_pair"))
        elif find_pair(text) in [find_pair(t) for t in spec.pairs[:index]]:
            errors.append(_error(["pairs", index], f"{text!r} is listed twice", "duplicate"))
    distilling = ", ".join(k for k, m in METHODS.items() if m.needs_teacher)
    for index, name in enumerate(spec.methods):
        method = METHODS.get(name)
        if method is None or method.teaches:
            why = (f"{name} is the teacher: the benchmark trains one per teacher network, or uses teachers"
                   if method else f"unknown method {name!r}")
            errors.append(_error(["methods", index], f"{why}; choose from: {distilling}", "unknown_method"))
        elif name in spec.methods[:index]:
            errors.append(_error(["methods", index], f"{name} is listed twice", "duplicate"))
    if not errors and not any(METHODS[name].needs_teacher for name in spec.methods):
        errors.append(_error(["methods"], f"choose at least one method that distils from the teacher: {distilling}",
                             "no_distilling_method"))
    if not errors:
        networks = spec.teacher_networks()
        for name in spec.teachers:
            if canonical(name) not in networks:
                errors.append(_error(["teachers", name], f"{name} teaches none of the chosen pairs; their teachers: "
                                     f"{', '.join(networks)}", "unknown_teacher"))
    if errors:
        raise StudyInputError(errors)
    return spec


def _methods(spec: BenchmarkSpec) -> list[str]:
    # The baseline student is the table's row every method is compared with: always trained, listed first.
    return [BASELINE_KIND, *(m for m in spec.methods if m != BASELINE_KIND)]


def studies(spec: BenchmarkSpec) -> list[BenchmarkStudy]:
    """The benchmark's studies, by teacher network in the paper's order, then by learning rate."""
    found = []
    for network in spec.teacher_networks():
        pairs = [pair for pair in spec.chosen_pairs() if pair.networks[0] == network]
        for lr in dict.fromkeys(pair.lr for pair in pairs):
            group = tuple(pair for pair in pairs if pair.lr == lr)
            students = list(dict.fromkeys(pair.networks[1] for pair in group))
            name = f"{spec.name + ': ' if spec.name else ''}{PRESET} {', '.join(p.label for p in group)}"
            found.append(BenchmarkStudy(network, group, {
                "name": name[:200], "dataset": spec.dataset, "subset": spec.subset, "methods": _methods(spec),
                "architectures": students, "seeds": list(spec.seeds), "epochs": spec.epochs, "preset": RECIPE,
                "lr": lr}))
    return found


def teacher_config(spec: BenchmarkSpec, network: str) -> RunConfig:
    """The teacher a benchmark trains for a network: the recipe as it stands (lr 0.05), the first seed."""
    return RunConfig.model_validate({"kind": TEACHER_KINDS[0], "architecture": network, "dataset": spec.dataset,
                                     "subset": spec.subset, "epochs": spec.epochs, "seed": spec.seeds[0],
                                     "preset": RECIPE})


def run_count(spec: BenchmarkSpec) -> dict[str, int]:
    """How many runs the benchmark trains: teachers, baseline students and distilled students."""
    teachers = sum(spec.given_teacher(n) is None for n in spec.teacher_networks())
    students = sum(len(s.payload["architectures"]) for s in studies(spec)) * len(spec.seeds)
    methods = students * len(_methods(spec)[1:])
    return {"teachers": teachers, "students": students, "distilled": methods, "total": teachers + students + methods}


def study_loc(loc: list) -> list:
    """Where a study's problem lies in the benchmark's request: its students are the pairs, and its methods
    the benchmark's after the baseline student it puts first, and its given teacher the benchmark's teachers."""
    if loc[:1] == ["teacher_run_id"]:
        return ["teachers", *loc[1:]]
    if loc[:1] == ["architectures"]:
        return ["pairs", *loc[1:]]
    if loc[:1] == ["methods"] and len(loc) > 1 and isinstance(loc[1], int):
        return ["methods", max(0, loc[1] - 1), *loc[2:]]
    return loc


@dataclass(frozen=True)
class PlannedRun:
    """A run the benchmark trains, with the network of the teacher it distils from (None: it distils from none)."""

    config: RunConfig
    teacher: str | None


def plan(spec: BenchmarkSpec, max_runs: int) -> list[PlannedRun]:
    """Every run of the benchmark, teachers first: the whole request checked (each study as kd sweep and the
    dashboard check one, at most ``max_runs`` runs in all) before anything is stored or trained."""
    from kdcore.studies.study import expand, parse_spec

    counted = run_count(spec)["total"]
    if counted > max_runs:
        raise StudyInputError([_error(["pairs"], f"this benchmark expands to {counted} runs; at most {max_runs} "
                                      "are allowed (fewer pairs, methods or seeds)", "too_many_runs")])
    runs, errors = [], []
    for network in spec.teacher_networks():
        if spec.given_teacher(network) is None:
            try:
                runs.append(PlannedRun(teacher_config(spec, network), None))
            except ValidationError as exc:
                errors += [_error(list(e["loc"]), e["msg"], e["type"]) for e in exc.errors()]
    for study in studies(spec):
        try:
            members = expand(parse_spec(study.payload), external_teacher=True, max_runs=max_runs).members
        except StudyInputError as exc:
            errors += [e for e in ({**e, "loc": study_loc(e["loc"])} for e in exc.errors) if e not in errors]
            continue
        runs += [PlannedRun(m.config, study.teacher if m.config.method.needs_teacher else None) for m in members]
    if errors:
        raise StudyInputError(errors)
    return runs


def rough_seconds(runs: list[PlannedRun], flops: dict[str, int], images: int, device: str = "cuda") -> float | None:
    """The runs one after another at the development machines' pace (kdcore.studies.pace.PRIOR), from the
    networks' arithmetic alone: an estimate, never a measurement. None when a network's size is unknown. The
    recipe's crop and flip make every distilling run compute its teacher online."""
    from kdcore.studies.pace import PRIOR, epoch_seconds

    total = 0.0
    for run in runs:
        config = run.config
        forward, teacher = flops.get(config.architecture or ""), flops.get(run.teacher) if run.teacher else 0
        if forward is None or teacher is None:
            return None
        stage = config.method.pre_stage
        epochs = config.epochs + (stage.epochs(config.params) if stage else 0)
        total += epochs * epoch_seconds(PRIOR[device], forward, config.batch_size, images, teacher)
    return total
