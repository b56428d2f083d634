"""CUDA-only checks of the fast path (skipped without a GPU): graph replay equals eager steps."""

import pytest
import torch

from kdcore.config import RunConfig
from kdcore.registry import METHODS
from kdcore.training.checkpoint import load_checkpoint
from kdcore.training.engine import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def gpu_teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-teacher")
    train(RunConfig(kind="teacher", dataset="synthetic", epochs=1, device="cuda"), out_dir=out)
    return out / "checkpoint.pt"


STUDENT_METHODS = [k for k, m in METHODS.items() if not m.teaches]


@pytest.mark.parametrize("kind", STUDENT_METHODS)
def test_cuda_graph_steps_equal_eager_steps(tmp_path, deterministic_cuda, gpu_teacher, kind):
    # 500 images: 15 full batches replayed from the graph, then an eager batch of 20, twice.
    base = dict(kind=kind, dataset="synthetic", subset=500, epochs=2, device="cuda")
    teacher = gpu_teacher if kind != "student" else None
    graph = train(RunConfig(**base), out_dir=tmp_path / "graph", teacher_checkpoint=teacher)
    eager = train(RunConfig(**base, cuda_graphs=False, cache_teacher=False),
                  out_dir=tmp_path / "eager", teacher_checkpoint=teacher)
    for g, e in zip(graph.epochs, eager.epochs):
        assert g.train_loss == pytest.approx(e.train_loss, rel=1e-4, abs=1e-5)
    a = load_checkpoint(tmp_path / "graph/checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "eager/checkpoint.pt")["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-3, atol=1e-4, msg=lambda m: f"{name}: {m}")


def test_gpu_run_learns_with_dropout(tmp_path):
    result = train(RunConfig(kind="student", dataset="synthetic", epochs=3, device="cuda"), out_dir=tmp_path)
    assert result.final_accuracy > 0.5 and result.device.startswith("cuda")


def test_concurrent_experiment_on_one_gpu(tmp_path):
    from kdcore.studies.experiment import experiment_configs, run_experiment

    configs = experiment_configs("synthetic", None, epochs=3, device="cuda")
    results = run_experiment(configs, tmp_path, concurrent=True)
    assert list(results) == ["teacher", "student", "kd", "cosine", "fitnet"]
    for kind, result in results.items():
        assert len(result.epochs) == 3 and all(m.train_loss == m.train_loss for m in result.epochs), kind
    assert min(results[k].final_accuracy for k in ("student", "kd", "cosine", "fitnet")) > 0.3


@pytest.mark.parametrize("kind", ["student", "dkd"])
def test_cuda_graphs_follow_a_schedule_and_sgd(tmp_path, deterministic_cuda, gpu_teacher, kind):
    # The learning rate changes between epochs: a graph replays it from a device tensor, as eager steps read it.
    base = dict(kind=kind, dataset="synthetic", subset=500, epochs=3, device="cuda", optimizer="sgd", lr=0.05,
                weight_decay=5e-4, schedule="step", milestones=(1, 2), warmup_epochs=0, architecture="resnet20")
    teacher = gpu_teacher if kind != "student" else None
    graph = train(RunConfig(**base), out_dir=tmp_path / "graph", teacher_checkpoint=teacher)
    eager = train(RunConfig(**base, cuda_graphs=False, cache_teacher=False),
                  out_dir=tmp_path / "eager", teacher_checkpoint=teacher)
    for g, e in zip(graph.epochs, eager.epochs):
        assert g.train_loss == pytest.approx(e.train_loss, rel=1e-3, abs=1e-4)
    lr = load_checkpoint(tmp_path / "graph/checkpoint.pt")["optimizer"]["param_groups"][0]["lr"]
    assert float(lr) == pytest.approx(0.0005)


def test_augmented_resnet_run_on_cuda_graphs(tmp_path):
    result = train(RunConfig(kind="student", dataset="synthetic", epochs=2, device="cuda", architecture="resnet20",
                             preset="crd-cifar"), out_dir=tmp_path)
    assert all(m.train_loss == m.train_loss for m in result.epochs) and result.final_accuracy > 0.2
