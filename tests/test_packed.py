"""Packed training (kdcore.training.packing.trainer) against the same runs trained alone
(kdcore.training.engine.train), with both kinds of pack step: looped (a CPU's) and vmapped (a GPU's, which
runs on a CPU too).

The equivalence tests run in float64. In float32 the stacked (grouped) convolutions round differently
from a single run's, by about 1e-8 in a gradient; Adam's first steps turn that into weight differences of
up to a learning rate wherever a gradient is near zero (its update is about lr·sign(g)). In float64 the
same code agrees with the engine to about 1e-15, so these tests can ask for 1e-9 and still fail on any
real difference. They use resnet20 (batch norm, no dropout): a looped pack draws each run's dropout
masks and crops as the run draws them alone, but a vmapped one draws them from another stream.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from kdcore.config import RunConfig
from kdcore.errors import CheckpointError, ConfigError, NonFiniteLoss, RunCancelled
from kdcore.methods.base import Method
from kdcore.registry import METHODS
from kdcore.training.checkpoint import load_checkpoint
from kdcore.training.engine import RunResult, train
from kdcore.training.packing.key import differing_fields, pack_key
from kdcore.training.packing.trainer import train_packed
from kdcore.training.packing.vmapped import PackSteps
from tests.float64 import in_float64
from tests.torch_threads import one_thread  # noqa: F401  (autouse: one thread here)

# 20 images in batches of 8: two full steps and a partial one per epoch; 10 test images.
EXACT = dict(dataset="synthetic", subset=20, batch_size=8, epochs=1, device="cpu", architecture="resnet20")
SMALL = dict(dataset="synthetic", subset=20, batch_size=10, epochs=1, device="cpu", architecture="seed_student")
# In float64 a vmapped step sums in another order than a run alone; after three SGD steps WTTM's power
# transform (p_t^0.2 in log space) left one weight of 36,864 5.96e-11 away. Still a billion times below
# any difference float32 training could make.
TIGHT = dict(rtol=1e-8, atol=1e-10)


@pytest.fixture()
def float64():
    with in_float64():
        yield


@pytest.fixture(params=[False, True], ids=["looped", "vectorised"])
def vectorised(request):
    """Both kinds of pack step: looped (a CPU's default) and vmapped (a GPU's)."""
    return request.param


@pytest.fixture(scope="module")
def teacher64(tmp_path_factory):
    """A tiny teacher (the seed's student network, one epoch) that every distilling method can use."""
    out = tmp_path_factory.mktemp("teacher64")
    with in_float64():
        train(RunConfig(kind="teacher", **{**EXACT, "architecture": "seed_student"}, seed=5), out_dir=out)
    return out / "checkpoint.pt"


def _teacher_for(config, teacher):
    return teacher if config.method.needs_teacher else None


def _assert_same_run(packed: RunResult, packed_dir, alone: RunResult, alone_dir, label: str) -> None:
    assert len(packed.epochs) == len(alone.epochs), label
    for p, a in zip(packed.epochs, alone.epochs):
        assert p.epoch == a.epoch and set(p.train_terms) == set(a.train_terms), label
        assert p.train_loss == pytest.approx(a.train_loss, **{"rel": TIGHT["rtol"], "abs": TIGHT["atol"]}), label
        for name in a.train_terms:
            assert p.train_terms[name] == pytest.approx(a.train_terms[name], rel=TIGHT["rtol"], abs=TIGHT["atol"]), \
                f"{label}: {name}"
        assert p.test_loss == pytest.approx(a.test_loss, rel=TIGHT["rtol"], abs=TIGHT["atol"]), label
        assert p.test_accuracy == a.test_accuracy, label
        assert (p.val_loss is None) == (a.val_loss is None) and p.val_accuracy == a.val_accuracy, label
        if a.val_loss is not None:
            assert p.val_loss == pytest.approx(a.val_loss, rel=TIGHT["rtol"], abs=TIGHT["atol"]), label
    assert (packed.final_accuracy, packed.test_accuracy_at_best, packed.best_val_accuracy, packed.best_epoch,
            packed.best_epoch_label, packed.parameters) == \
        (alone.final_accuracy, alone.test_accuracy_at_best, alone.best_val_accuracy, alone.best_epoch,
         alone.best_epoch_label, alone.parameters), label
    ours, theirs = load_checkpoint(packed_dir / "checkpoint.pt"), load_checkpoint(alone_dir / "checkpoint.pt")
    assert set(ours) == set(theirs) and ours["config"] == theirs["config"], label
    assert (ours["epoch"], ours["parameters"]) == (theirs["epoch"], theirs["parameters"]), label
    # Batch-norm running statistics and batch counts are in the state dict: they stayed per run.
    assert list(ours["model"]) == list(theirs["model"]), label
    torch.testing.assert_close(ours["model"], theirs["model"], **TIGHT, msg=lambda m: f"{label}: {m}")
    if theirs["modules"] is None:
        assert ours["modules"] is None, label
    else:
        torch.testing.assert_close(ours["modules"], theirs["modules"], **TIGHT, msg=lambda m: f"{label}: {m}")
    # The optimiser state as the engine's own optimiser holds it, so that either can resume the other.
    assert ours["optimizer"]["param_groups"] == theirs["optimizer"]["param_groups"], label
    torch.testing.assert_close(ours["optimizer"]["state"], theirs["optimizer"]["state"], **TIGHT,
                               msg=lambda m: f"{label}: {m}")
    assert torch.equal(ours["rng"]["shuffle"], theirs["rng"]["shuffle"]), label
    # A run's slice is saved, not the whole stack it was a view of.
    size = (packed_dir / "checkpoint.pt").stat().st_size
    assert size < 1.1 * (alone_dir / "checkpoint.pt").stat().st_size, label


def test_every_method_trains_packed_as_it_trains_alone(tmp_path, float64, teacher64, vectorised):
    # A method's pre-stage keeps its run out of packs (test_stages.py); without one its main stage packs.
    # Methods that ask for extra views pack only among themselves (tests/test_views.py packs them). One that
    # ships more than the student's network (SimKD) trains alone (tests/test_simkd.py).
    configs = [RunConfig(kind=kind, seed=10 + i, params={"init_epochs": 0} if METHODS[kind].pre_stage else {}, **EXACT)
               for i, kind in enumerate(METHODS) if not METHODS[kind].views and METHODS[kind].deployed is None]
    # Two runs of one method with other hyperparameters: kd at another temperature, standardised.
    configs.append(RunConfig(kind="kd", seed=3, params={"temperature": 6.0, "standardize": True}, **EXACT))
    teachers = [_teacher_for(c, teacher64) for c in configs]
    steps = []
    results = train_packed(configs, out_dirs=[tmp_path / f"packed{i}" for i in range(len(configs))],
                           teacher_checkpoints=teachers, on_step=lambda i, s: steps.append((i, s.step, s.steps)),
                           vectorised=vectorised)
    assert [i for i, _, _ in steps] == list(range(len(configs))) * 3
    assert {(step, total) for _, step, total in steps} == {(1, 3), (2, 3), (3, 3)}
    for i, (config, result, teacher) in enumerate(zip(configs, results, teachers)):
        label = f"run {i} ({config.kind})"
        assert isinstance(result, RunResult), f"{label}: {result!r}"
        alone = train(config, out_dir=tmp_path / f"alone{i}", teacher_checkpoint=teacher)
        _assert_same_run(result, tmp_path / f"packed{i}", alone, tmp_path / f"alone{i}", label)
        # Without a validation split no best weights are kept (test_validation_... below has them).
        assert not (tmp_path / f"packed{i}" / "best.pt").exists() and not (tmp_path / f"alone{i}" / "best.pt").exists()
        assert result.notes == [f"trained packed with {len(configs) - 1} other runs"]


def test_validation_epochs_best_epoch_and_best_weights_are_those_of_the_runs_alone(tmp_path, float64, vectorised):
    # 40 images, a quarter held out (one per class): 30 train in batches of 8 (four steps), 10 validate.
    recipe = dict(EXACT, subset=40, epochs=3, validation=0.25)
    train(RunConfig(kind="teacher", **{**recipe, "architecture": "seed_student"}, seed=5), out_dir=tmp_path / "teacher")
    teacher = tmp_path / "teacher" / "checkpoint.pt"
    configs = [RunConfig(kind="teacher", seed=1, **recipe), RunConfig(kind="student", seed=2, **recipe),
               RunConfig(kind="kd", seed=3, teacher_weights="best", **recipe)]
    teachers = [_teacher_for(c, teacher) for c in configs]
    results = train_packed(configs, out_dirs=[tmp_path / f"packed{i}" for i in range(3)],
                           teacher_checkpoints=teachers, vectorised=vectorised)
    for i, (config, result, teacher_of) in enumerate(zip(configs, results, teachers)):
        label = f"run {i} ({config.kind})"
        assert isinstance(result, RunResult), f"{label}: {result!r}"
        alone = train(config, out_dir=tmp_path / f"alone{i}", teacher_checkpoint=teacher_of)
        assert all(m.val_accuracy is not None for m in alone.epochs) and alone.best_epoch_label == "best validation epoch"
        _assert_same_run(result, tmp_path / f"packed{i}", alone, tmp_path / f"alone{i}", label)
    best = [load_checkpoint(tmp_path / where / "best.pt") for where in ("packed0", "alone0")]
    assert best[0]["epoch"] == best[1]["epoch"] == results[0].best_epoch
    torch.testing.assert_close(best[0]["model"], best[1]["model"], **TIGHT)


def _diverging_loss(student, teacher, labels, params, progress, modules):
    ce = F.cross_entropy(student.logits, labels)
    # From the second step on, an infinite loss: its gradients fill this run's weights with NaN.
    return ce * torch.where(progress.step >= 1, float("inf"), 1.0), {"ce": ce}


def test_a_diverging_run_fails_alone_and_the_others_train_on_unchanged(tmp_path, float64, teacher64, monkeypatch):
    # The recipe is the pack's, so one run cannot have a larger learning rate: its method diverges instead.
    monkeypatch.setitem(METHODS, "diverges", Method(name="diverges", title="Diverges", description="test only",
                                                    loss=_diverging_loss))
    recipe = dict(EXACT, epochs=2, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="step",
                  milestones=(1,))
    configs = [RunConfig(kind="diverges", seed=1, **recipe), RunConfig(kind="student", seed=2, **recipe),
               RunConfig(kind="kd", seed=3, **recipe)]
    teachers = [_teacher_for(c, teacher64) for c in configs]
    epochs = []
    results = train_packed(configs, out_dirs=[tmp_path / f"packed{i}" for i in range(3)], teacher_checkpoints=teachers,
                           on_epoch=lambda i, m: epochs.append((i, m.epoch)))
    assert isinstance(results[0], NonFiniteLoss) and "epoch 1" in str(results[0])
    assert not (tmp_path / "packed0" / "checkpoint.pt").exists(), "a failed epoch writes nothing, as alone"
    assert epochs == [(1, 1), (2, 1), (1, 2), (2, 2)]
    for i in (1, 2):
        alone = train(configs[i], out_dir=tmp_path / f"alone{i}", teacher_checkpoint=teachers[i])
        _assert_same_run(results[i], tmp_path / f"packed{i}", alone, tmp_path / f"alone{i}", configs[i].kind)


def test_a_cancelled_run_leaves_the_pack_and_resumes_alone(tmp_path, float64, teacher64, vectorised):
    configs = [RunConfig(kind="kd", seed=4, **dict(EXACT, epochs=2)),
               RunConfig(kind="fitnet", seed=5, **dict(EXACT, epochs=2))]
    teachers = [teacher64, teacher64]
    seen: dict[int, list] = {0: [], 1: []}

    def stop_fitnet_in_epoch_two(index):
        last = seen[index][-1]
        return index == 1 and (last.epoch, last.step) == (2, 2)

    results = train_packed(configs, out_dirs=[tmp_path / "packed0", tmp_path / "packed1"], teacher_checkpoints=teachers,
                           on_step=lambda i, s: seen[i].append(s), should_stop=stop_fitnet_in_epoch_two,
                           vectorised=vectorised)
    assert isinstance(results[1], RunCancelled) and str(results[1]) == "cancelled during epoch 2"
    assert (len(seen[0]), len(seen[1])) == (6, 5)
    assert load_checkpoint(tmp_path / "packed1" / "checkpoint.pt")["epoch"] == 1
    # The kd run went on in a pack of one, from where it was in the middle of epoch 2.
    alone = train(configs[0], out_dir=tmp_path / "alone0", teacher_checkpoint=teacher64)
    _assert_same_run(results[0], tmp_path / "packed0", alone, tmp_path / "alone0", "kd")
    # The engine resumes the cancelled run from its packed checkpoint to the run it would have been alone.
    resumed = train(configs[1], out_dir=tmp_path / "packed1", teacher_checkpoint=teacher64, resume=True)
    whole = train(configs[1], out_dir=tmp_path / "alone1", teacher_checkpoint=teacher64)
    _assert_same_run(resumed, tmp_path / "packed1", whole, tmp_path / "alone1", "fitnet resumed")


def _pack_sizes(monkeypatch, fits: int | None):
    """Record the size of every pack's steps; packs larger than ``fits`` run out of memory."""
    sizes = []
    step = PackSteps.step

    def spying(self, index):
        sizes.append(len(self.runs))
        if fits is not None and len(self.runs) > fits:
            raise torch.OutOfMemoryError("out of memory (simulated)")
        return step(self, index)

    monkeypatch.setattr(PackSteps, "step", spying)
    return sizes


def test_out_of_memory_in_the_first_step_retries_in_halves(tmp_path, monkeypatch):
    configs = [RunConfig(kind="student", seed=s, **SMALL) for s in range(4)]
    sizes = _pack_sizes(monkeypatch, fits=2)
    results = train_packed(configs, out_dirs=[tmp_path / f"r{i}" for i in range(4)])
    assert all(isinstance(r, RunResult) for r in results), results
    assert sizes[0] == 4 and set(sizes[1:]) == {2} and len(sizes) == 1 + 2 * 2
    assert all(r.notes == ["trained packed with 1 other run"] for r in results)
    # The retried packs started from scratch: they equal a pack of two that never ran out of memory.
    monkeypatch.undo()
    again = train_packed(configs[:2], out_dirs=[tmp_path / "a0", tmp_path / "a1"])
    for i in range(2):
        assert again[i].epochs[0].train_loss == results[i].epochs[0].train_loss
        torch.testing.assert_close(load_checkpoint(tmp_path / f"a{i}/checkpoint.pt")["model"],
                                   load_checkpoint(tmp_path / f"r{i}/checkpoint.pt")["model"], rtol=0, atol=0)


def test_a_run_that_does_not_fit_alone_fails_with_the_memory_error(tmp_path, monkeypatch):
    configs = [RunConfig(kind="student", seed=s, **SMALL) for s in range(2)]
    sizes = _pack_sizes(monkeypatch, fits=0)
    results = train_packed(configs, out_dirs=[tmp_path / "r0", tmp_path / "r1"])
    assert sizes == [2, 1, 1] and all(isinstance(r, torch.OutOfMemoryError) for r in results)


def test_max_pack_splits_the_runs_into_packs(tmp_path, monkeypatch):
    configs = [RunConfig(kind="student", seed=s, **SMALL) for s in range(3)]
    sizes = _pack_sizes(monkeypatch, fits=None)
    results = train_packed(configs, out_dirs=[tmp_path / f"r{i}" for i in range(3)], max_pack=2)
    assert sizes == [2, 2, 1, 1] and all(isinstance(r, RunResult) for r in results)
    assert results[2].notes == [] and results[0].notes == ["trained packed with 1 other run"]


def test_a_run_with_a_bad_teacher_fails_alone(tmp_path, teacher64):
    configs = [RunConfig(kind="kd", seed=1, **SMALL), RunConfig(kind="kd", seed=2, **SMALL),
               RunConfig(kind="student", seed=3, **SMALL)]
    results = train_packed(configs, out_dirs=[tmp_path / f"r{i}" for i in range(3)],
                           teacher_checkpoints=[tmp_path / "missing.pt", teacher64, teacher64])
    assert isinstance(results[0], CheckpointError) and "does not exist" in str(results[0])
    assert isinstance(results[1], RunResult)
    assert isinstance(results[2], ConfigError) and "without a teacher" in str(results[2])
    assert results[1].notes == [], "it trained in a pack of one"


def test_runs_that_cannot_share_a_step_are_refused_before_anything_is_written(tmp_path):
    a = RunConfig(kind="student", **SMALL)
    b = RunConfig(kind="student", **{**SMALL, "lr": 0.01, "batch_size": 5})
    assert pack_key(a) != pack_key(b) and differing_fields([a, b, a]) == ["batch_size", "lr"]
    # Method, its hyperparameters, seed and teacher choice may differ.
    kd = RunConfig(kind="kd", seed=9, params={"temperature": 8.0}, teacher_weights="best", **SMALL)
    assert pack_key(kd) == pack_key(a)
    # A validation split changes the training images: runs with another one cannot share the step.
    assert differing_fields([a, RunConfig(kind="student", **SMALL, validation=0.1)]) == ["validation"]
    with pytest.raises(ConfigError, match="differ in batch_size, lr"):
        train_packed([a, b], out_dirs=[tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ConfigError, match="output folder of its own"):
        train_packed([a, a], out_dirs=[tmp_path / "a", tmp_path / "a"])
    with pytest.raises(ValueError, match="one entry per run"):
        train_packed([a, a], out_dirs=[tmp_path / "a"])
    assert not list(tmp_path.iterdir())


def test_pack_key_is_torch_free():
    code = ("import sys; from kdcore.config import RunConfig; from kdcore.training.packing.key import pack_key; "
            "pack_key(RunConfig(kind='student')); assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_looped_packs_draw_the_dropout_masks_and_crops_each_run_draws_alone(tmp_path, float64, teacher64):
    # The seed's CNNs have dropout; augmentation crops and flips; a cancelled run resumes alone.
    base = dict(EXACT, architecture="seed_student", augment=True, epochs=2)
    configs = [RunConfig(kind="fitnet", seed=1, **base), RunConfig(kind="kd", seed=2, **base),
               RunConfig(kind="student", seed=3, **base)]
    teachers = [teacher64, teacher64, None]
    steps = [0, 0, 0]

    def count(i, _):
        steps[i] += 1

    # The student stops after its first step of epoch 2.
    results = train_packed(configs, out_dirs=[tmp_path / f"packed{i}" for i in range(3)], teacher_checkpoints=teachers,
                           on_step=count, should_stop=lambda i: i == 2 and steps[i] == 4, vectorised=False)
    for i in (0, 1):
        alone = train(configs[i], out_dir=tmp_path / f"alone{i}", teacher_checkpoint=teachers[i])
        _assert_same_run(results[i], tmp_path / f"packed{i}", alone, tmp_path / f"alone{i}", configs[i].kind)
        # The generator state each checkpoint keeps: the run's own, as alone (a resumed run draws on from it).
        ours, theirs = (load_checkpoint(tmp_path / f"{side}{i}" / "checkpoint.pt") for side in ("packed", "alone"))
        assert torch.equal(ours["rng"]["torch"], theirs["rng"]["torch"]), configs[i].kind
    assert isinstance(results[2], RunCancelled)
    resumed = train(configs[2], out_dir=tmp_path / "packed2", resume=True)
    whole = train(configs[2], out_dir=tmp_path / "alone2")
    _assert_same_run(resumed, tmp_path / "packed2", whole, tmp_path / "alone2", "student resumed")


def test_the_tutorial_cnns_train_vmapped_as_alone_without_dropout(tmp_path, float64, teacher64, monkeypatch):
    """Dropout aside (vmap draws its masks per run, from another stream), the seed's CNNs pack exactly too."""
    monkeypatch.setattr(torch.nn.Dropout, "forward", lambda self, x: x)
    base = dict(EXACT, architecture="seed_student")
    configs = [RunConfig(kind="fitnet", seed=1, **base), RunConfig(kind="cosine", seed=2, **base)]
    results = train_packed(configs, out_dirs=[tmp_path / "packed0", tmp_path / "packed1"],
                           teacher_checkpoints=[teacher64, teacher64], vectorised=True)
    for i, config in enumerate(configs):
        alone = train(config, out_dir=tmp_path / f"alone{i}", teacher_checkpoint=teacher64)
        _assert_same_run(results[i], tmp_path / f"packed{i}", alone, tmp_path / f"alone{i}", config.kind)


def test_each_run_of_a_vmapped_pack_draws_its_own_dropout_masks(tmp_path):
    # Twins: one seed, so the same initial weights and data order. Only their dropout masks can differ.
    twins = [RunConfig(kind="student", seed=3, **SMALL)] * 2
    results = train_packed(twins, out_dirs=[tmp_path / "a", tmp_path / "b"], vectorised=True)
    assert results[0].epochs[0].train_loss != results[1].epochs[0].train_loss
    a, b = (load_checkpoint(tmp_path / name / "checkpoint.pt")["model"] for name in "ab")
    assert not torch.equal(a["classifier.0.weight"], b["classifier.0.weight"])


def test_dropout_networks_learn_vmapped_as_alone(tmp_path):
    """With dropout vmapped runs agree statistically: each learns, and about as well as its twin alone."""
    base = dict(dataset="synthetic", subset=1000, epochs=2, device="cpu")
    configs = [RunConfig(kind="student", seed=s, **base) for s in (1, 2)]
    packed = train_packed(configs, out_dirs=[tmp_path / "p1", tmp_path / "p2"], vectorised=True)
    for config, result in zip(configs, packed):
        alone = train(config, out_dir=tmp_path / f"alone{config.seed}")
        assert result.final_accuracy > 0.3, "10 classes: chance is 0.1"
        assert abs(result.final_accuracy - alone.final_accuracy) < 0.25
        assert result.epochs[0].train_loss == pytest.approx(alone.epochs[0].train_loss, rel=0.05)


def test_the_pack_works_without_resident_data(tmp_path, float64):
    configs = [RunConfig(kind="student", seed=s, resident_data=False, **EXACT) for s in (1, 2)]
    results = train_packed(configs, out_dirs=[tmp_path / "packed1", tmp_path / "packed2"])
    alone = train(configs[1], out_dir=tmp_path / "alone2")
    _assert_same_run(results[1], tmp_path / "packed2", alone, tmp_path / "alone2", "not resident")


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def cuda_teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("cuda-teacher")
    train(RunConfig(kind="teacher", dataset="synthetic", subset=500, epochs=1, device="cuda"), out_dir=out)
    return out / "checkpoint.pt"


@cuda
def test_cuda_graph_packs_equal_eager_packs(tmp_path, deterministic_cuda, cuda_teacher):
    # 500 images in batches of 32: 15 steps replayed from the pack's graph, then an eager partial batch.
    kinds = ["student", "kd", "fitnet", "dkd"]

    def pack(label, **switches):
        configs = [RunConfig(kind=kind, seed=i, dataset="synthetic", subset=500, epochs=2, device="cuda", **switches)
                   for i, kind in enumerate(kinds)]
        teachers = [_teacher_for(c, cuda_teacher) for c in configs]
        return train_packed(configs, out_dirs=[tmp_path / f"{label}{i}" for i in range(len(kinds))],
                            teacher_checkpoints=teachers)

    graph, eager = pack("graph"), pack("eager", cuda_graphs=False)
    for i, kind in enumerate(kinds):
        assert isinstance(graph[i], RunResult) and isinstance(eager[i], RunResult), (graph[i], eager[i])
        for g, e in zip(graph[i].epochs, eager[i].epochs):
            assert g.train_loss == pytest.approx(e.train_loss, rel=1e-4, abs=1e-5), kind
        torch.testing.assert_close(load_checkpoint(tmp_path / f"graph{i}/checkpoint.pt")["model"],
                                   load_checkpoint(tmp_path / f"eager{i}/checkpoint.pt")["model"], rtol=1e-3, atol=1e-4)


@cuda
def test_cuda_packs_train_as_runs_alone(tmp_path, deterministic_cuda, cuda_teacher):
    # SGD: in float32 Adam turns rounding differences into lr-sized steps where a gradient is near zero.
    base = dict(dataset="synthetic", subset=500, epochs=2, device="cuda", architecture="resnet20", optimizer="sgd",
                lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="step", milestones=(1,))
    configs = [RunConfig(kind="student", seed=1, **base), RunConfig(kind="at", seed=2, **base)]
    teachers = [None, cuda_teacher]
    packed = train_packed(configs, out_dirs=[tmp_path / "packed0", tmp_path / "packed1"], teacher_checkpoints=teachers)
    for i, config in enumerate(configs):
        alone = train(config, out_dir=tmp_path / f"alone{i}", teacher_checkpoint=teachers[i])
        for p, a in zip(packed[i].epochs, alone.epochs):
            assert p.train_loss == pytest.approx(a.train_loss, rel=1e-3), config.kind
            assert p.test_accuracy == pytest.approx(a.test_accuracy, abs=0.02), config.kind


def test_methods_asking_for_views_pack_among_themselves_and_a_looped_pack_trains_them_as_alone(
        tmp_path, float64, teacher64, vectorised):
    viewing = [kind for kind, method in METHODS.items() if method.views]
    configs = [RunConfig(kind=kind, seed=20 + i, **EXACT) for i, kind in enumerate(viewing)]
    configs.append(RunConfig(kind="mlkd", seed=3, params={"temperature": 2.0, "standardize": True}, **EXACT))
    mixed = [configs[0], RunConfig(kind="kd", seed=1, **EXACT)]
    assert pack_key(mixed[0]) != pack_key(mixed[1]) and differing_fields(mixed) == ["views"]
    with pytest.raises(ConfigError, match="differ in views"):
        train_packed(mixed, out_dirs=[tmp_path / "a", tmp_path / "b"], teacher_checkpoints=[teacher64] * 2)
    results = train_packed(configs, out_dirs=[tmp_path / f"packed{i}" for i in range(len(configs))],
                           teacher_checkpoints=[teacher64] * len(configs), vectorised=vectorised)
    for i, (config, result) in enumerate(zip(configs, results)):
        label = f"run {i} ({config.kind})"
        assert isinstance(result, RunResult), f"{label}: {result!r}"
        assert set(result.epochs[0].train_terms) == set(config.method.loss_terms), label
        assert all(math.isfinite(v) for v in result.epochs[0].train_terms.values()), label
        if not vectorised:  # a looped pack draws each run's views from the run's own generator: the run alone
            alone = train(config, out_dir=tmp_path / f"alone{i}", teacher_checkpoint=teacher64)
            _assert_same_run(result, tmp_path / f"packed{i}", alone, tmp_path / f"alone{i}", label)
