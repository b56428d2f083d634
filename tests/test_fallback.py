"""Every speed path falls back to the plain eager path when it raises (kdcore.training.fallback): the run
completes with the result a run without that path gives and says which fallback happened ("fallback: ..."
in its notes, one warning in the log); tests/test_pages_fallback.py has the dashboard show it. No web code
here: bench/gpu_check.sh runs this file on a GPU machine.

Each path is forced to raise as it would on a GPU where it is broken: the capture (after its warm-up
steps moved the weights, moments, counters and random numbers), the vmapped step, bfloat16 autocast, the
fused optimiser's constructor, the channels-last conversion (halfway). On a CPU a run never captures a
CUDA graph, so there the capture is forced on and replaced by what a failed one leaves; on a GPU
(bench/gpu_check.sh) the real capture fails on a host read inside it. Float64, so that "the same result"
can be asked to the last digits (tests/test_packed.py says why float32 cannot).
"""

from __future__ import annotations

import logging

import pytest
import torch

from kdcore.config import RunConfig
from kdcore.errors import RunCancelled
from kdcore.methods.base import Method
from kdcore.registry import METHODS
from kdcore.training import engine, networks
from kdcore.training.checkpoint import load_checkpoint
from kdcore.training.engine import train
from kdcore.training.fallback import AUTOCAST, CHANNELS_LAST, CUDA_GRAPHS, FUSED, NOTE_PREFIX, VMAPPED
from kdcore.training.packing import vmapped
from kdcore.training.packing.trainer import train_packed
from kdcore.training.packing.vmapped import PackedStep
from kdcore.training.steps import StepRunner
from tests.float64 import in_float64
from tests.torch_threads import one_thread  # noqa: F401  (autouse: one thread here)

# 20 images in batches of 8: two full steps and a partial one per epoch, two epochs.
BASE = dict(dataset="synthetic", subset=20, batch_size=8, epochs=2, architecture="resnet20")
TIGHT = dict(rel=1e-9, abs=1e-11)
LOGGER = "kdcore.training.fallback"


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                              reason="needs a CUDA GPU"))])
def device(request):
    if request.param == "cuda":
        request.getfixturevalue("deterministic_cuda")
    return request.param


@pytest.fixture()
def float64():
    with in_float64():
        yield


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    with in_float64():
        train(RunConfig(kind="teacher", **{**BASE, "architecture": "seed_student", "epochs": 1}, device="cpu",
                        seed=5), out_dir=out)
    return out / "checkpoint.pt"


# How each path is broken. Each returns nothing and leaves the break in place until the test ends.

def break_capture(monkeypatch, device: str) -> None:
    if device == "cuda":
        real_body = StepRunner._body

        def reading_body(self, index):
            if torch.cuda.is_current_stream_capturing():
                self.sums.sum().item()  # a read back to the host, which a capture refuses
            real_body(self, index)

        monkeypatch.setattr(StepRunner, "_body", reading_body)
        return

    def failed_capture(self, batch_size):
        # What a capture that fails leaves: its warm-up steps taken (weights, Adam's moments, the step
        # counter, batch-norm statistics and the random numbers moved), then the error.
        self.static_index = torch.arange(batch_size, device=self.split.device) % len(self.split)
        for _ in range(3):
            self._body(self.static_index)
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing")

    for module in (engine, vmapped):
        monkeypatch.setattr(module, "graphs_apply", lambda config, device: True)
    monkeypatch.setattr(StepRunner, "_capture", failed_capture)


def break_autocast(monkeypatch, device: str) -> None:
    real = torch.autocast

    def no_bfloat16(device_type, dtype=None, enabled=True, cache_enabled=None):
        if enabled and dtype == torch.bfloat16:
            raise RuntimeError("Current CUDA Device does not support bfloat16. Please switch dtype to float16.")
        return real(device_type, dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

    monkeypatch.setattr(torch, "autocast", no_bfloat16)


def break_fused(monkeypatch, device: str) -> None:
    def unfusable(optimizer):
        class Unfusable(optimizer):
            def __init__(self, *args, fused=None, **kwargs):
                if fused:
                    raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of "
                                       "supported devices")
                super().__init__(*args, fused=fused, **kwargs)
        return Unfusable

    monkeypatch.setattr(torch.optim, "Adam", unfusable(torch.optim.Adam))
    monkeypatch.setattr(torch.optim, "SGD", unfusable(torch.optim.SGD))


def break_channels_last(monkeypatch, device: str) -> None:
    def halfway(module):
        first = next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d))
        first.to(memory_format=torch.channels_last)
        raise RuntimeError("required rank 4 tensor to use channels_last format")

    monkeypatch.setattr(networks, "to_channels_last", halfway)


# path: (how it is broken, what the run asks for, what a run without that path asks instead). The fused
# optimiser has no switch: its fallback is compared with the fused run itself, which it equals to rounding.
CASES = {
    CUDA_GRAPHS: (break_capture, {}, {"cuda_graphs": False}),
    AUTOCAST: (break_autocast, {"precision": "bfloat16"}, {"precision": "float32"}),
    FUSED: (break_fused, {}, {}),
    CHANNELS_LAST: (break_channels_last, {}, {"channels_last": False}),
}


def assert_same_epochs(ours, theirs, exact: bool) -> None:
    assert len(ours.epochs) == len(theirs.epochs)
    for a, b in zip(ours.epochs, theirs.epochs):
        if exact:
            assert (a.train_loss, a.train_terms, a.test_loss) == (b.train_loss, b.train_terms, b.test_loss)
        else:
            assert a.train_loss == pytest.approx(b.train_loss, **TIGHT)
            assert a.test_loss == pytest.approx(b.test_loss, **TIGHT)
        assert a.test_accuracy == b.test_accuracy
    assert ours.final_accuracy == theirs.final_accuracy


def assert_same_weights(ours, theirs, exact: bool) -> None:
    a, b = (load_checkpoint(path)["model"] for path in (ours, theirs))
    assert a.keys() == b.keys()
    for name in a:
        if exact:
            assert torch.equal(a[name], b[name]), name
        else:
            torch.testing.assert_close(a[name], b[name], rtol=1e-9, atol=1e-11, msg=lambda m: f"{name}: {m}")


def fallback_notes(notes: list[str]) -> list[str]:
    return [note for note in notes if note.startswith(NOTE_PREFIX)]


def logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def exact_on(device: str, path: str) -> bool:
    # A GPU's kernels may differ between two runs in the last digits (cuDNN, atomics); the fused
    # optimiser's arithmetic differs from the default kernels' by rounding.
    return device == "cpu" and path != FUSED


@pytest.mark.parametrize("path", list(CASES))
@pytest.mark.parametrize("kind, fields", [
    ("student", {}), ("student", {"architecture": "seed_student", "augment": True}),
    ("fitnet", {"architecture": "seed_student"})], ids=["batchnorm", "dropout-and-crops", "method-modules"])
def test_a_run_whose_speed_path_raises_trains_as_a_run_without_it_and_says_so(tmp_path, monkeypatch, caplog, float64,
                                                                           teacher, device, path, kind, fields):
    breaks, asks, plain = CASES[path]
    config = dict(BASE, **fields, device=device, kind=kind)
    teacher_checkpoint = teacher if kind == "fitnet" else None
    reference = train(RunConfig(**{**config, **asks, **plain}), out_dir=tmp_path / "plain",
                      teacher_checkpoint=teacher_checkpoint)
    assert not fallback_notes(reference.notes)
    breaks(monkeypatch, device)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    result = train(RunConfig(**config, **asks), out_dir=tmp_path / "fell-back", teacher_checkpoint=teacher_checkpoint)

    (note,) = fallback_notes(result.notes)
    assert note.startswith(f"fallback: {path} raised RuntimeError: ")
    assert logged(caplog) == [f"{tmp_path / 'fell-back'}: {note}"]
    exact = exact_on(device, path)
    assert_same_epochs(result, reference, exact)
    assert_same_weights(tmp_path / "fell-back" / "checkpoint.pt", tmp_path / "plain" / "checkpoint.pt", exact)
    saved = load_checkpoint(tmp_path / "fell-back" / "checkpoint.pt")
    if path == CHANNELS_LAST:
        assert all(w.is_contiguous() for w in saved["model"].values())
    if path == FUSED:
        assert not saved["optimizer"]["param_groups"][0]["fused"]


def _train_pack_cancelling_the_first(configs, out_dirs, **kwargs):
    """Two runs packed; the first is cancelled after its second step, so the second goes on in a smaller pack
    (which must not try a path the pack fell back from again)."""
    steps = {0: 0, 1: 0}

    def on_step(index, progress):
        steps[index] += 1

    return train_packed(configs, out_dirs=out_dirs, on_step=on_step, should_stop=lambda i: i == 0 and steps[0] >= 2,
                        **kwargs)


@pytest.mark.parametrize("path", list(CASES))
def test_a_pack_whose_speed_path_raises_trains_as_a_pack_without_it_and_says_so_once(tmp_path, monkeypatch, caplog,
                                                                                  float64, device, path):
    breaks, asks, plain = CASES[path]

    def configs(**extra):
        return [RunConfig(**BASE, **extra, device=device, kind="student", seed=seed) for seed in (1, 2)]

    reference = _train_pack_cancelling_the_first(configs(**{**asks, **plain}), [tmp_path / "p0", tmp_path / "p1"],
                                                 vectorised=False)
    breaks(monkeypatch, device)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    results = _train_pack_cancelling_the_first(configs(**asks), [tmp_path / "f0", tmp_path / "f1"], vectorised=False)

    assert isinstance(results[0], RunCancelled) and isinstance(reference[0], RunCancelled)
    (note,) = fallback_notes(results[1].notes)
    assert note.startswith(f"fallback: {path} raised RuntimeError: ")
    assert logged(caplog) == [f"{tmp_path / 'f0'}, {tmp_path / 'f1'}: {note}"]
    exact = exact_on(device, path)
    assert_same_epochs(results[1], reference[1], exact)
    assert_same_weights(tmp_path / "f1" / "checkpoint.pt", tmp_path / "p1" / "checkpoint.pt", exact)


def test_a_pack_whose_vmapped_step_raises_trains_looped_as_a_looped_pack_does(tmp_path, monkeypatch, caplog, float64,
                                                                             teacher, device):
    def configs():
        return [RunConfig(**BASE, device=device, kind=kind, seed=seed)
                for kind, seed in (("student", 1), ("student", 2), ("kd", 1))]

    teachers = [None, None, teacher]
    looped = train_packed(configs(), out_dirs=[tmp_path / f"l{i}" for i in range(3)], teacher_checkpoints=teachers,
                          vectorised=False)

    def unbatchable(self, params, buffers, images):
        raise RuntimeError("vmap: Batching rule not implemented for aten::_some_op")

    monkeypatch.setattr(PackedStep, "_one", unbatchable)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    results = train_packed(configs(), out_dirs=[tmp_path / f"v{i}" for i in range(3)], teacher_checkpoints=teachers,
                           vectorised=True)

    for i, (result, alone) in enumerate(zip(results, looped)):
        assert fallback_notes(result.notes) == [
            f"fallback: {VMAPPED} raised RuntimeError: vmap: Batching rule not implemented for aten::_some_op; "
            "the pack's runs take their steps one after another (looped)"]
        assert "trained packed with 2 other runs" in result.notes
        assert_same_epochs(result, alone, exact=device == "cpu")
        assert_same_weights(tmp_path / f"v{i}" / "checkpoint.pt", tmp_path / f"l{i}" / "checkpoint.pt",
                            exact=device == "cpu")
    # One line for the pack, and none for the vmapped pack's capture that its own step broke (on a GPU).
    assert len(logged(caplog)) == 1


def test_a_step_that_fails_by_itself_is_not_blamed_on_a_speed_path(tmp_path, monkeypatch, caplog, float64, device):
    def broken_loss(student, teacher, labels, params, progress, modules):
        raise ValueError("the method's own bug")

    monkeypatch.setitem(METHODS, "broken", Method(name="broken", title="Broken", description="test only",
                                                  loss=broken_loss, params=METHODS["student"].params,
                                                  loss_terms=("ce",)))
    break_capture(monkeypatch, device)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with pytest.raises(ValueError, match="own bug"):
        train(RunConfig(**BASE, device=device, kind="broken"), out_dir=tmp_path / "alone")
    with pytest.raises(ValueError, match="own bug"):
        train_packed([RunConfig(**BASE, device=device, kind="broken", seed=s) for s in (1, 2)],
                     out_dirs=[tmp_path / "p0", tmp_path / "p1"], vectorised=True)
    assert logged(caplog) == []


def test_an_autocast_pass_that_fails_in_float32_too_is_the_networks_problem(tmp_path, monkeypatch, caplog, float64):
    def no_forward(self, x):
        raise RuntimeError("the network's own bug")

    monkeypatch.setattr(torch.nn.Conv2d, "forward", no_forward)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with pytest.raises(RuntimeError, match="own bug"):
        train(RunConfig(**BASE, device="cpu", kind="student", precision="bfloat16"), out_dir=tmp_path)
    assert logged(caplog) == []
