"""Extra augmented views (Method.views, kdcore.training.views): the strong view is random, made on the
images' device, and differs from the weak one; the engine gives both networks' outputs on it to the loss,
the teacher online; methods with views and a learnt value resume exactly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdcore.config import RunConfig
from kdcore.data.catalog import DEFAULT_NORMALIZATION, NORMALIZATIONS
from kdcore.errors import RunCancelled
from kdcore.methods.base import LOGITS, Method, TapChoice
from kdcore.registry import METHODS
from kdcore.training.augment import random_crop_flip
from kdcore.training.checkpoint import load_checkpoint
from kdcore.training.device_data import MEAN, STD
from kdcore.training.engine import train
from kdcore.training.views import _COLOUR, _GEOMETRIC, _geometric, strong_augment
from tests.torch_threads import one_thread  # noqa: F401  (autouse: one thread here)


def _images(n=16, seed=0):
    pixels = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    return (pixels - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def test_the_strong_view_is_random_per_image_and_differs_from_the_weak_one():
    images = _images()
    torch.manual_seed(1)
    weak = random_crop_flip(images, DEFAULT_NORMALIZATION)
    torch.manual_seed(1)
    strong = strong_augment(images, DEFAULT_NORMALIZATION)
    assert strong.shape == images.shape and strong.dtype == images.dtype and strong.device == images.device
    assert torch.isfinite(strong).all()
    # Still images as normalised pixels in [0, 1].
    pixels = strong * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    # The same draws make the weak view's crop and flip: what the strong view adds shows in every image.
    assert all(not torch.allclose(s, w) for s, w in zip(strong, weak))
    again = strong_augment(images, DEFAULT_NORMALIZATION)
    assert not torch.allclose(again, strong), "a new draw every call"
    torch.manual_seed(1)
    assert torch.equal(strong_augment(images, DEFAULT_NORMALIZATION), strong), "torch's generator decides it"
    # Each image draws its own operations: one image's change is not another's.
    same = strong_augment(images[:1].expand(8, -1, -1, -1).contiguous(), DEFAULT_NORMALIZATION)
    assert len({round(float(view.sum()), 3) for view in same}) > 4


def test_the_strong_view_leaves_and_reenters_the_datasets_normalisation(monkeypatch):
    # Its operations work on pixels: the batch is un-normalised and normalised again with its dataset's
    # statistics (here CIFAR-100's). With every operation an identity, the view is the weak view's crop and flip.
    from kdcore.training import views

    cifar100 = NORMALIZATIONS["cifar100"]
    pixels = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    images = (pixels - torch.tensor(cifar100.mean).view(1, 3, 1, 1)) / torch.tensor(cifar100.std).view(1, 3, 1, 1)
    monkeypatch.setattr(views, "_COLOUR", {})
    monkeypatch.setattr(views, "_geometric", lambda x, amount: x)
    monkeypatch.setattr(views, "_cutout", lambda x: x)
    torch.manual_seed(3)
    weak = random_crop_flip(images, cifar100)
    torch.manual_seed(3)
    torch.testing.assert_close(strong_augment(images, cifar100), weak, rtol=0, atol=1e-5)


def test_the_strong_view_is_made_without_reading_back_to_the_host():
    with torch.device("meta"):
        view = strong_augment(torch.empty(4, 3, 32, 32), DEFAULT_NORMALIZATION)
    assert view.device.type == "meta" and view.shape == (4, 3, 32, 32)


def test_geometric_operations_at_zero_leave_the_image_as_it_was():
    pixels = torch.rand(3, 3, 32, 32)
    zero = {name: torch.zeros(3) for name in ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")}
    assert torch.equal(_geometric(pixels, zero), pixels)
    shifted = _geometric(pixels, {**zero, "translate_x": torch.full((3,), 0.25)})
    # PIL's translate by 8 pixels: output column x reads input column x + 8; the last 8 are black.
    assert torch.equal(shifted[..., :24], pixels[..., 8:]) and shifted[..., 24:].abs().sum() == 0


def test_unknown_views_and_stray_reported_values_are_refused_at_declaration():
    with pytest.raises(ValueError, match="unknown views sideways"):
        Method(name="x", title="X", description="d", loss=None, views=("sideways",))
    with pytest.raises(ValueError, match="reports gamma"):
        Method(name="x", title="X", description="d", loss=None, loss_terms=("ce",), reported=("gamma",))


SMALL = dict(dataset="synthetic", subset=40, epochs=1, batch_size=20, device="cpu")


def test_the_loss_gets_both_networks_outputs_on_the_view_and_the_teacher_runs_online_for_it(
        tmp_path, teacher_checkpoint, monkeypatch):
    seen = []

    def looks(student, teacher, labels, params, progress, modules):
        view_s, view_t = student.views["strong"], teacher.views["strong"]
        seen.append((student.logits.shape, view_s.logits.shape, set(view_s.taps), view_t.logits.shape, set(view_t.taps),
                     torch.allclose(view_t.logits, teacher.logits)))
        ce = F.cross_entropy(student.logits, labels) + F.cross_entropy(view_s.logits, labels)
        return ce, {"ce": ce}

    monkeypatch.setitem(METHODS, "views_probe", Method(
        name="views_probe", title="Views probe", description="test only", loss=looks, needs_teacher=True,
        views=("strong",), taps=lambda s, t, p: TapChoice(student=("stage2",), teacher=(LOGITS, "stage2"))))
    result = train(RunConfig(kind="views_probe", **SMALL), out_dir=tmp_path, teacher_checkpoint=teacher_checkpoint)
    assert len(seen) == 2
    for s_shape, view_shape, s_taps, t_shape, t_taps, same in seen:
        assert s_shape == view_shape == t_shape == (20, 10) and s_taps == t_taps == {"stage2"}
        assert not same, "the teacher's outputs on the view are its own, not the batch's"
    assert any("runs online on the strong view" in note for note in result.notes)


def _stop_after_first_epoch(seen):
    return lambda: len(seen) > 0 and seen[-1].epoch == 2 and seen[-1].step == 1


@pytest.mark.parametrize("kind", ["mlkd", "ctkd"])
def test_a_run_stopped_after_epoch_one_resumes_to_the_uninterrupted_run_bit_for_bit(kind, tmp_path, teacher_checkpoint):
    config = RunConfig(kind=kind, **{**SMALL, "epochs": 2, "augment": kind == "ctkd"})
    whole = train(config, out_dir=tmp_path / "whole", teacher_checkpoint=teacher_checkpoint)
    seen = []
    with pytest.raises(RunCancelled):
        train(config, out_dir=tmp_path / "split", teacher_checkpoint=teacher_checkpoint, on_step=seen.append,
              should_stop=_stop_after_first_epoch(seen))
    resumed = train(config, out_dir=tmp_path / "split", teacher_checkpoint=teacher_checkpoint, resume=True)
    assert [m.train_terms for m in resumed.epochs] == [m.train_terms for m in whole.epochs]
    ours, theirs = load_checkpoint(tmp_path / "split/checkpoint.pt"), load_checkpoint(tmp_path / "whole/checkpoint.pt")
    for part in ("model", "modules"):
        if theirs[part] is None:
            assert ours[part] is None
            continue
        assert ours[part].keys() == theirs[part].keys()
        assert all(torch.equal(ours[part][k], theirs[part][k]) for k in theirs[part])
    if kind == "ctkd":  # the learnt temperature moved, is saved with the run, and is reported
        assert whole.epochs[0].train_terms["temperature"] != whole.epochs[1].train_terms["temperature"]
        assert set(theirs["modules"]) == {"temperature_logit"}


def test_a_plugin_method_with_a_view_and_a_reported_value_trains(tmp_path, teacher_checkpoint, monkeypatch):
    # The README's plugin example in miniature: one view asked for, one learnt value reported.
    base = METHODS["ctkd"]
    monkeypatch.setitem(METHODS, "ctkd_strong", dataclasses.replace(base, name="ctkd_strong", views=("strong",)))
    result = train(RunConfig(kind="ctkd_strong", **SMALL), out_dir=tmp_path, teacher_checkpoint=teacher_checkpoint)
    assert result.epochs[0].train_terms["temperature"] > 1


def _pil(image: torch.Tensor):
    from PIL import Image

    return Image.fromarray((image * 255).round().byte().permute(1, 2, 0).numpy())


def _levels(image: torch.Tensor) -> np.ndarray:
    return (image * 255).round().to(torch.int16).permute(1, 2, 0).numpy()


def test_each_operation_is_pils_on_8_bit_images():
    from PIL import Image, ImageEnhance, ImageOps

    generator = torch.Generator().manual_seed(2)
    images = (torch.rand(4, 3, 32, 32, generator=generator) ** 2 * 255).round() / 255
    images[1, :, :16] = 0.2  # flat regions, as photographs have
    pils = [_pil(image) for image in images]
    factor = torch.tensor([0.05, 0.3, 0.6, 0.95]).view(4, 1, 1, 1)
    exact = {"equalize": lambda p, f: ImageOps.equalize(p), "posterize": lambda p, f: ImageOps.posterize(p, int(f)),
             "solarize": lambda p, f: ImageOps.solarize(p, f)}
    levels = {"equalize": factor, "posterize": torch.tensor([4.0, 5.5, 6.2, 7.9]).view(4, 1, 1, 1),
              "solarize": torch.tensor([0.0, 60.0, 128.0, 250.0]).view(4, 1, 1, 1)}
    for name, pil_op in exact.items():
        ours = _COLOUR[name](images, levels[name])
        for i in range(4):
            assert np.array_equal(_levels(ours[i]), np.asarray(pil_op(pils[i], float(levels[name][i]))).astype(np.int16)), name
    # Blends with a grey or smoothed copy: PIL rounds the copy to 8 bits, so a level or two apart.
    close = {"autocontrast": lambda p, f: ImageOps.autocontrast(p),
             "brightness": lambda p, f: ImageEnhance.Brightness(p).enhance(f),
             "color": lambda p, f: ImageEnhance.Color(p).enhance(f),
             "contrast": lambda p, f: ImageEnhance.Contrast(p).enhance(f),
             "sharpness": lambda p, f: ImageEnhance.Sharpness(p).enhance(f)}
    for name, pil_op in close.items():
        ours = _COLOUR[name](images, factor)
        for i in range(4):
            difference = np.abs(_levels(ours[i]) - np.asarray(pil_op(pils[i], float(factor[i]))).astype(np.int16))
            assert difference.max() <= 2, (name, i, difference.max())
    # The geometric ones at random magnitudes: the same pixels but where PIL's and torch's rounding of a
    # coordinate that falls on a pixel's edge differ.
    zero = {name: torch.zeros(1) for name in _GEOMETRIC}
    draws = np.random.default_rng(0)
    for name, data in [("rotate", None), ("shear_x", lambda v: (1, v, 0, 0, 1, 0)),
                       ("shear_y", lambda v: (1, 0, 0, v, 1, 0)), ("translate_x", lambda v: (1, 0, 32 * v, 0, 1, 0)),
                       ("translate_y", lambda v: (1, 0, 0, 0, 1, 32 * v))]:
        for _ in range(5):
            value = float(draws.uniform(-30, 30) if name == "rotate" else draws.uniform(-0.3, 0.3))
            ours = _levels(_geometric(images[:1], {**zero, name: torch.tensor([value])})[0])
            pil = pils[0].rotate(value) if data is None else pils[0].transform(pils[0].size, Image.AFFINE, data(value))
            assert (ours != np.asarray(pil)).any(axis=2).mean() <= 0.005, (name, value)


def test_after_a_first_step_no_constant_is_copied_from_the_host(monkeypatch):
    # A CUDA graph captures the steps after warm-up ones; inside a capture, a tensor made from host values
    # needs a synchronising copy, which breaks it. Here any such tensor raises instead.
    images = _images(4)
    strong_augment(images, DEFAULT_NORMALIZATION)  # the warm-up makes the constants

    def from_host(*args, **kwargs):
        raise AssertionError("a constant made from host values inside the step")

    monkeypatch.setattr(torch, "tensor", from_host)
    assert strong_augment(images, DEFAULT_NORMALIZATION).shape == images.shape
    assert random_crop_flip(images, DEFAULT_NORMALIZATION).shape == images.shape
