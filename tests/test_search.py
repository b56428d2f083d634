"""kdcore.search and ``kd search``: the space against the methods' declared bounds, pruning on validation accuracy
only, the budget refusal, and the command end to end on tiny synthetic data (trials in worker processes, then the
confirmation study)."""

import io
import json
from contextlib import redirect_stderr, redirect_stdout

import pytest

from kdcore.cli import main
from kdcore.errors import KDError, RunCancelled
from kdcore.search.confirm import confirmation_seeds, confirmation_spec, top_configs
from kdcore.search.local import SearchPlan, run_search
from kdcore.search.space import SearchSpaceError, parse_space

SPACE = ["kd.temperature=log:1:16", "kd.distill_weight=0.1:0.9"]
RECIPE = {"dataset": "synthetic", "subset": 100, "epochs": 6, "validation": 0.2, "device": "cpu"}


@pytest.mark.parametrize("item, message", [
    ("kd.temp=1:2", "kd has no hyperparameter 'temp'"),
    ("kd.temperature=0:3", "0.0 is outside what kd.temperature takes"),
    ("kd.temperature=1:2000", "2000.0 is outside what kd.temperature takes"),
    ("kd.temperature=log:0:4", "a log range must start above 0"),
    ("kd.temperature=4:1", "low end must be below its high end"),
    ("kd.standardize=0:1", "kd.standardize is not a number; give its choices"),
    ("kd.temperature=4", "a single value is fixed with --temperature"),
    ("dkd.beta=1:2", "dkd is not among the searched methods"),
    ("temperature=1:2", "expected method.param=LOW:HIGH"),
])
def test_a_space_outside_the_methods_declarations_is_refused_naming_the_item(item, message):
    with pytest.raises(SearchSpaceError, match=message):
        parse_space(["kd"], [item])


def test_space_gives_optuna_distributions_and_trial_configs_within_the_recipe():
    space = parse_space(["kd", "dkd"], ["kd.temperature=log:1:16", "dkd.warmup=0:5", "kd.standardize=true,false"])
    found = space.distributions()
    assert found["method"].choices == ("kd", "dkd")
    assert (found["kd.temperature"].low, found["kd.temperature"].high, found["kd.temperature"].log) == (1, 16, True)
    assert type(found["dkd.warmup"]).__name__ == "IntDistribution"
    config = space.config_for({"method": "dkd", "dkd.warmup": 3}, {**RECIPE, "params": {"temperature": 2.0}})
    assert (config.kind, config.params.warmup, config.params.temperature, config.subset) == ("dkd", 3, 2.0, 100)
    with pytest.raises(SearchSpaceError, match="a grid search takes one method"):
        space.grid()
    with pytest.raises(SearchSpaceError, match="kd.temperature=1,"):
        parse_space(["kd"], SPACE).grid()


def _fake_train(log):
    """engine.train's stand-in: each trial's validation accuracy rises with its temperature while its test
    accuracy falls with it, so a pruner reading test accuracy would stop the opposite trials."""
    from kdcore.training.engine import EpochMetrics

    def train(config, *, out_dir, on_epoch, should_stop, **kwargs):
        t = config.params.temperature / 16
        for epoch in range(1, config.epochs + 1):
            val, test = t * epoch / config.epochs, (1 - t) * epoch / config.epochs
            log.append((config.params.temperature, epoch))
            on_epoch(EpochMetrics(epoch, config.epochs, 1.0, {}, 1.0, test, 0.1, 100.0, 1.0, val))
            if should_stop():
                raise RunCancelled(f"cancelled during epoch {epoch + 1}")
        return None
    return train


def test_pruning_and_ranking_read_validation_accuracy_never_test_accuracy(monkeypatch, tmp_path):
    from kdcore.training import engine

    log = []
    monkeypatch.setattr(engine, "train", _fake_train(log))
    space = parse_space(["kd"], ["kd.temperature=log:1:16"])
    plan = SearchPlan(space, RECIPE, "teacher.pt", trials=16, sampler="random", pruner="successive-halving",
                      seed=3)
    records = run_search(plan, tmp_path)
    pruned = [r for r in records if r.status == "pruned"]
    completed = [r for r in records if r.status == "completed"]
    assert pruned and completed and len(pruned) + len(completed) == 16
    for record in pruned:
        # Stopped at the epoch it reported last, where a completed trial that ran before it scored higher on
        # validation (successive halving keeps the best third at each rung).
        epochs_run = max(epoch for temperature, epoch in log if temperature == record.params["kd.temperature"])
        assert record.last_epoch < 6 and epochs_run == record.last_epoch
        earlier = [r for r in records if r.number < record.number]
        assert any(r.val_curve[record.last_epoch - 1] > record.val_curve[-1] for r in earlier)
    # The best by validation is the hottest completed trial; by test it would have been the coldest.
    best = max(completed, key=lambda r: r.val_accuracy)
    assert best.params["kd.temperature"] == max(r.params["kd.temperature"] for r in completed)
    trials = [{"status": r.status, "val_accuracy": r.val_accuracy, "config": r.config} for r in records]
    assert top_configs(trials, 1)[0].params.temperature == best.params["kd.temperature"]
    assert min(r.params["kd.temperature"] for r in pruned) < min(r.params["kd.temperature"] for r in completed)


def test_a_hyperband_search_repeats_exactly(monkeypatch, tmp_path):
    # Hyperband puts each trial in a bracket by a hash of the study's name: an unnamed study (a random name)
    # pruned other trials on each run of the same command.
    from kdcore.training import engine

    monkeypatch.setattr(engine, "train", _fake_train([]))
    space = parse_space(["kd"], ["kd.temperature=log:1:16"])
    plan = SearchPlan(space, RECIPE, "teacher.pt", trials=12, sampler="random", pruner="hyperband", seed=3)
    outcomes = [[(r.status, r.last_epoch) for r in run_search(plan, tmp_path / str(i))] for i in range(4)]
    assert all(outcome == outcomes[0] for outcome in outcomes), outcomes


def test_confirmation_is_top_k_over_fresh_seeds_with_the_student_and_plain_kd():
    space = parse_space(["kd"], SPACE)
    configs = [space.config_for({"kd.temperature": t, "kd.distill_weight": 0.5}, RECIPE) for t in (4.0, 8.0)]
    spec = confirmation_spec(configs, confirmation_seeds(3, 42), epochs=10)
    assert spec.seeds == [0, 1, 2] and spec.epochs == 10 and spec.recipe["validation"] == 0.2
    assert spec.methods[:2] == ["student", "kd"]
    assert [entry.params["temperature"] for entry in spec.methods[2:]] == [4.0, 8.0]
    assert confirmation_seeds(3, 1) == [0, 2, 3]
    with pytest.raises(KDError, match="at least 2 seeds"):
        confirmation_seeds(1, 0)


def _kd(*args):
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        code = main(list(args))
    return code, stdout.getvalue(), stderr.getvalue()


def test_a_search_without_a_validation_split_or_over_budget_is_refused_and_writes_nothing(tmp_path,
                                                                                         teacher_checkpoint):
    common = ["search", "--method", "kd", "--teacher", str(teacher_checkpoint), "--space", SPACE[0],
              "--dataset", "synthetic", "--subset", "100", "--device", "cpu", "--out", str(tmp_path / "s")]
    code, _, err = _kd(*common, "--validation", "0")
    assert code == 2 and "a search needs a validation split" in err
    code, _, err = _kd(*common, "--trials", "30", "--max-runs", "40")
    assert code == 2 and "at most 55 runs (30 trials + 25 confirmation runs)" in err and "limit of 40 runs" in err
    assert not (tmp_path / "s" / "search.json").exists()


def test_kd_search_writes_trials_then_the_confirmation_groups(tmp_path, teacher_checkpoint):
    out = tmp_path / "search"
    code, stdout, stderr = _kd("search", "--method", "kd", "--teacher", str(teacher_checkpoint), "--space", SPACE[0],
                               "--space", SPACE[1], "--trials", "4", "--parallelism", "2", "--prune", "hyperband",
                               "--dataset", "synthetic", "--subset", "100", "--epochs", "2", "--device", "cpu",
                               "--top-k", "2", "--confirm-seeds", "2", "--confirm-epochs", "1", "--out", str(out))
    assert code == 0, stderr
    result = json.loads((out / "search.json").read_text())
    assert result["status"] == "completed"
    assert [t["number"] for t in result["trials"]] == [0, 1, 2, 3]
    for trial in result["trials"]:
        assert set(trial) >= {"number", "params", "status", "last_epoch", "val_accuracy"}
        assert trial["status"] in ("completed", "pruned") and set(trial["params"]) == {"kd.temperature",
                                                                                      "kd.distill_weight"}
        assert 1 <= trial["last_epoch"] <= 2 and len(trial["val_curve"]) == trial["last_epoch"]
    groups = result["confirmation"]["groups"]
    assert sorted(g["method"] for g in groups) == sorted(["student", "kd", *["kd"] * len(result["confirmation"]["configs"])])
    assert all(g["n"] == 2 and g["seeds"] == [0, 1] for g in groups)
    assert result["confirmation"]["verdict"]["text"].startswith("The search's winner")
    assert "| Method | Accuracy (%) |" in stdout and "note: trials are pruned and ranked on a validation split" in stderr
