"""A search trained here: Optuna asks for trials, each trial is one engine.train run, its validation accuracy
after every epoch goes to Optuna, and a trial the pruner stops is stopped through the engine's cancel flag
(``should_stop``) and ends ``pruned`` at the epoch it reached.

With ``parallelism`` 1 the trials train in this process, one after another; above 1 each trains in a worker
process of its own (spawned, so that no thread state of this process is forked), up to ``parallelism`` at
once, and reports every epoch to this process, which alone talks to Optuna and answers "go on" or "stop".
Only validation accuracy is reported: the test accuracy a run also computes never reaches the search.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Callable

from kdcore.config import RunConfig
from kdcore.errors import KDError, RunCancelled
from kdcore.search.optuna_setup import make_pruner, make_sampler
from kdcore.search.space import SearchSpace, validation_error


@dataclass
class TrialRecord:
    """One trial as search.json and the progress lines show it. ``val_accuracy``: its objective, the best
    per-epoch validation accuracy it reached (a pruned trial's over the epochs it ran)."""

    number: int
    params: dict[str, Any]
    config: RunConfig
    out: Path
    status: str = "running"  # running, completed, pruned, failed
    last_epoch: int | None = None
    val_accuracy: float | None = None
    val_curve: list[float] = field(default_factory=list)
    seconds: float | None = None
    error: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return {"number": self.number, "params": self.params, "status": self.status, "last_epoch": self.last_epoch,
                "val_accuracy": self.val_accuracy, "val_curve": self.val_curve, "seconds": self.seconds,
                "error": self.error, "out": str(self.out)}


@dataclass
class SearchPlan:
    space: SearchSpace
    base: dict[str, Any]  # the recipe every trial shares (RunConfig fields, the method's left out)
    teacher_checkpoint: str | None
    trials: int
    sampler: str = "tpe"
    pruner: str = "hyperband"
    min_epochs: int = 1
    seed: int = 0  # the sampler's
    parallelism: int = 1


def check_plan(plan: SearchPlan) -> RunConfig:
    """Everything a search checks before it trains: the first trial's configuration (its recipe is every
    trial's), the validation split, the sampler and pruner. Raises KDError."""
    if plan.trials < 1:
        raise KDError("--trials must be at least 1")
    if plan.parallelism < 1:
        raise KDError("--parallelism must be at least 1")
    config = plan.space.config_for(_first_params(plan.space), plan.base)
    problem = validation_error(config)
    if problem:
        raise KDError(problem)
    make_sampler(plan.sampler, plan.seed, plan.space)
    make_pruner(plan.pruner, plan.min_epochs, config.epochs)
    return config


def _first_params(space: SearchSpace) -> dict[str, Any]:
    """Some point of the space (each dimension's low end or first choice), to check the recipe with."""
    params: dict[str, Any] = {"method": space.methods[0]} if len(space.methods) > 1 else {}
    for d in space.dimensions:
        if d.method == space.methods[0]:
            params[d.key] = d.choices[0] if d.kind == "categorical" else d.low
    return params


def run_search(plan: SearchPlan, out_dir: str | os.PathLike, *, data_root: str | os.PathLike | None = None,
               on_trial: Callable[[TrialRecord], None] | None = None) -> list[TrialRecord]:
    """Train the search's trials (Optuna's in-memory study), each in ``out_dir/trials/NNN-METHOD``; returns
    every trial's record. ``on_trial`` hears of a trial when it starts and when it ends."""
    import optuna

    first = check_plan(plan)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A fixed name: Hyperband assigns trials to brackets by a hash of it, so the same command prunes the same trials.
    study = optuna.create_study(study_name="kd-search", direction="maximize", sampler=make_sampler(plan.sampler, plan.seed, plan.space),
                                pruner=make_pruner(plan.pruner, plan.min_epochs, first.epochs))
    total = plan.trials
    if plan.sampler == "grid":
        total = min(total, math.prod(len(values) for values in plan.space.grid().values()))
    trials_dir = Path(out_dir) / "trials"
    width = len(str(total - 1))
    records: list[TrialRecord] = []
    tell = _Teller(study, on_trial)
    runner = _Inline(tell, data_root) if plan.parallelism == 1 else _Pool(tell, data_root, plan.parallelism)
    try:
        while len(records) < total or runner.busy():
            while len(records) < total and runner.has_room():
                trial = study.ask()
                params = plan.space.suggest(trial)
                config = plan.space.config_for(params, plan.base)
                record = TrialRecord(trial.number, params, config,
                                     trials_dir / f"{trial.number:0{width}d}-{config.kind}")
                records.append(record)
                tell.started(trial, record)
                runner.start(trial, record, plan.teacher_checkpoint)
            runner.wait_one()
    finally:
        runner.close()
    return records


class _Teller:
    """What every trial reports goes through here, to Optuna and to the records, in this process."""

    def __init__(self, study, on_trial):
        self.study, self.on_trial, self.trials, self.records = study, on_trial, {}, {}

    def started(self, trial, record: TrialRecord) -> None:
        self.trials[record.number], self.records[record.number] = trial, record
        if self.on_trial:
            self.on_trial(record)

    def epoch(self, number: int, epoch: int, val_accuracy: float) -> bool:
        """A trial's validation accuracy after an epoch; True: the pruner stops it here."""
        trial, record = self.trials[number], self.records[number]
        record.last_epoch = epoch
        record.val_curve.append(val_accuracy)
        record.val_accuracy = max(record.val_curve)
        trial.report(val_accuracy, epoch)
        return epoch < record.config.epochs and trial.should_prune()

    def ended(self, number: int, status: str, seconds: float, error: str | None = None) -> None:
        import optuna

        trial, record = self.trials[number], self.records[number]
        record.status, record.seconds, record.error = status, seconds, error
        if status == "completed":
            self.study.tell(trial, record.val_accuracy)
        else:
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED if status == "pruned"
                            else optuna.trial.TrialState.FAIL)
        if self.on_trial:
            self.on_trial(record)


def train_trial(config: RunConfig, out: Path, data_root, teacher_checkpoint, report: Callable[[int, float], bool]):
    """One trial: engine.train with ``report(epoch, validation accuracy) -> stop?`` after each epoch of the main
    stage (a method's pre-stage is not what the search tunes). Returns (status, seconds, error)."""
    from kdcore.training import engine  # looked up at call time, so that tests can replace engine.train

    stop = {"at": None}

    def on_epoch(metrics) -> None:
        if metrics.stage is None and report(metrics.epoch, metrics.val_accuracy):
            stop["at"] = metrics.epoch

    started = time.perf_counter()
    try:
        engine.train(config, out_dir=out, data_root=data_root, teacher_checkpoint=teacher_checkpoint,
                     on_epoch=on_epoch, should_stop=lambda: stop["at"] is not None)
    except RunCancelled:
        return "pruned", time.perf_counter() - started, None
    except Exception as exc:  # noqa: BLE001  (recorded; one bad trial must not end the search)
        error = str(exc) if isinstance(exc, KDError) else f"{type(exc).__name__}: {exc}"
        return "failed", time.perf_counter() - started, error
    # Pruned after its last epoch's report, the run had already finished: it ran its full length.
    return "completed", time.perf_counter() - started, None


class _Inline:
    """Trials one after another in this process."""

    def __init__(self, tell: _Teller, data_root):
        self.tell, self.data_root, self.pending = tell, data_root, None

    def has_room(self) -> bool:
        return self.pending is None

    def busy(self) -> bool:
        return self.pending is not None

    def start(self, trial, record: TrialRecord, teacher) -> None:
        self.pending = (record, teacher)

    def wait_one(self) -> None:
        record, teacher = self.pending
        self.pending = None
        status, seconds, error = train_trial(record.config, record.out, self.data_root, teacher,
                                             lambda epoch, val: self.tell.epoch(record.number, epoch, val))
        self.tell.ended(record.number, status, seconds, error)

    def close(self) -> None:
        pass


class _Pool:
    """Trials in worker processes, up to ``size`` at once, each talking to this process through a pipe."""

    def __init__(self, tell: _Teller, data_root, size: int):
        self.tell, self.data_root, self.size = tell, data_root, size
        self.context = multiprocessing.get_context("spawn")
        self.workers: dict[Any, tuple[int, Any]] = {}  # connection -> (trial number, process)

    def has_room(self) -> bool:
        return len(self.workers) < self.size

    def busy(self) -> bool:
        return bool(self.workers)

    def start(self, trial, record: TrialRecord, teacher) -> None:
        here, there = self.context.Pipe()
        process = self.context.Process(target=_worker, args=(there, record.config.to_json_dict(), str(record.out),
                                                             self.data_root, teacher), daemon=True)
        process.start()
        there.close()
        self.workers[here] = (record.number, process)

    def wait_one(self) -> None:
        for connection in wait(list(self.workers)):
            number, process = self.workers[connection]
            try:
                message = connection.recv()
            except EOFError:  # the worker died without a word (killed, out of memory)
                message = ("ended", "failed", 0.0, f"the worker process ended with exit code {process.exitcode}")
            if message[0] == "epoch":
                connection.send(self.tell.epoch(number, message[1], message[2]))
                continue
            self.tell.ended(number, *message[1:])
            del self.workers[connection]
            connection.close()
            process.join()

    def close(self) -> None:
        for connection, (_, process) in self.workers.items():
            process.terminate()
            process.join()
            connection.close()
        self.workers.clear()


def _worker(connection, config: dict, out: str, data_root, teacher) -> None:
    def report(epoch: int, val_accuracy: float) -> bool:
        connection.send(("epoch", epoch, val_accuracy))
        return connection.recv()

    status, seconds, error = train_trial(RunConfig.model_validate(config), Path(out), data_root, teacher, report)
    connection.send(("ended", status, seconds, error))
    connection.close()
