"""Extra augmented views of a batch that a method asks for (``Method.views``), made on the device.

``strong`` is MLKD's strong view (Jin et al. 2023; the authors' transform, after FixMatch): a random
crop and flip of its own, then RandAugment(2, ·), two operations drawn per image from fourteen, each at
a random magnitude, then a Cutout of random size. Each image draws its own operations and magnitudes
from torch's generator on the images' device, and every operation is computed for the whole batch and
kept where the image chose it: no value is read back to the host, no shape depends on a draw, so the
step stays graph-capturable. Each operation is PIL's (tests/test_views.py compares them on 8-bit images);
the differences from the authors' transform, none of which changes what the view is for: the images stay
in float between operations (equalize and posterize work on 8-bit levels, as PIL's), the two operations
apply in a fixed order (an image that draws one operation twice gets it once), and the five geometric
ones are composed into one resampling.

The weak view is the batch as the run's recipe gives it (``augment``). A teacher's cached outputs
cannot serve a view drawn afresh every step: the teacher runs online on it (the run's notes say so).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from kdcore.data.catalog import Normalization
from kdcore.methods.base import Outputs
from kdcore.training.augment import random_crop_flip
from kdcore.training.device_data import device_constant

# The authors' list (mdistiller/dataset/cifar100.py, augment_list): name, low and high magnitude.
OPERATIONS = (
    ("autocontrast", 0.0, 1.0), ("brightness", 0.05, 0.95), ("color", 0.05, 0.95), ("contrast", 0.05, 0.95),
    ("equalize", 0.0, 1.0), ("identity", 0.0, 1.0), ("posterize", 4.0, 8.0), ("rotate", -30.0, 30.0),
    ("sharpness", 0.05, 0.95), ("shear_x", -0.3, 0.3), ("shear_y", -0.3, 0.3), ("solarize", 0.0, 256.0),
    ("translate_x", -0.3, 0.3), ("translate_y", -0.3, 0.3),
)
CHOSEN = 2  # operations per image, RandAugment's n
CUTOUT_MAX = 0.5  # of the image's side
CUTOUT_GRAY = (125 / 255, 123 / 255, 114 / 255)  # the authors' fill
LUMA = (0.299, 0.587, 0.114)  # PIL's conversion to grey
SMOOTH = (1.0, 1.0, 1.0, 1.0, 5.0, 1.0, 1.0, 1.0, 1.0)  # PIL's ImageFilter.SMOOTH, over 13


def strong_augment(images: torch.Tensor, normalization: Normalization) -> torch.Tensor:
    """A strongly augmented copy of a batch of images normalised with ``normalization`` (see the module's
    docstring), normalised with it too. The operations work on pixels: the batch is un-normalised first."""
    n = images.shape[0]
    device = images.device
    mean = device_constant(normalization.mean, device, images.dtype).view(1, 3, 1, 1)
    std = device_constant(normalization.std, device, images.dtype).view(1, 3, 1, 1)
    x = (random_crop_flip(images, normalization) * std + mean).clamp(0, 1)
    drawn = torch.randint(0, len(OPERATIONS), (n, CHOSEN), device=device)
    low = device_constant(tuple(op[1] for op in OPERATIONS), device, images.dtype)
    high = device_constant(tuple(op[2] for op in OPERATIONS), device, images.dtype)
    magnitude = low + (high - low) * torch.rand(n, len(OPERATIONS), device=device, dtype=images.dtype)
    names = [op[0] for op in OPERATIONS]

    def chose(name: str) -> torch.Tensor:  # (n, 1, 1, 1): which images apply it
        return (drawn == names.index(name)).any(dim=1).view(n, 1, 1, 1)

    def level(name: str) -> torch.Tensor:  # (n, 1, 1, 1): its magnitude for each image
        return magnitude[:, names.index(name)].view(n, 1, 1, 1)

    for name, apply in _COLOUR.items():
        x = torch.where(chose(name), apply(x, level(name)), x)
    x = _geometric(x, {name: torch.where(chose(name), level(name), 0.0).view(n) for name in _GEOMETRIC})
    x = _cutout(x)
    return ((x - mean) / std).contiguous()


def _grey(x: torch.Tensor) -> torch.Tensor:
    luma = device_constant(LUMA, x.device, x.dtype).view(1, 3, 1, 1)
    return (x * luma).sum(dim=1, keepdim=True)


def _blend(degenerate: torch.Tensor, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    # PIL's ImageEnhance: degenerate + factor·(image − degenerate), clipped.
    return (degenerate + factor * (x - degenerate)).clamp(0, 1)


def _autocontrast(x, _):
    low, high = x.amin(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
    flat = high <= low  # a flat channel is left as it is
    return torch.where(flat, x, (x - low) / torch.where(flat, 1.0, high - low))


def _equalize(x, _):
    """PIL's ImageOps.equalize, channel by channel on the 8-bit values: a lookup table from the cumulative
    histogram, lut[v] = (step // 2 + pixels below v) // step, step = (pixels − those at the top value) // 255;
    a channel whose step is 0 (one value, or nearly) is left as it is."""
    n, c, h, w = x.shape
    levels = (x * 255).round().long().clamp(0, 255).reshape(n * c, h * w)
    histogram = torch.zeros(n * c, 256, device=x.device, dtype=torch.long).scatter_add_(
        1, levels, torch.ones_like(levels))
    at_top = histogram.gather(1, levels.amax(dim=1, keepdim=True))
    step = torch.div(h * w - at_top, 255, rounding_mode="floor")
    below = histogram.cumsum(dim=1) - histogram
    lut = torch.div(torch.div(step, 2, rounding_mode="floor") + below, step.clamp(min=1), rounding_mode="floor")
    lut = torch.where(step > 0, lut.clamp(max=255), torch.arange(256, device=x.device))
    return (lut.gather(1, levels).to(x.dtype) / 255).reshape(n, c, h, w)


def _posterize(x, bits):
    step = torch.exp2(8 - bits.floor())  # keep the top ⌊bits⌋ bits of 8
    return torch.floor(x * 255 / step) * step / 255


def _sharpness(x, factor):
    kernel = device_constant(SMOOTH, x.device, x.dtype).view(1, 1, 3, 3)
    smooth = x.clone()  # PIL's filter leaves the border pixels as they are
    smooth[..., 1:-1, 1:-1] = F.conv2d(x, kernel.expand(3, 1, 3, 3), groups=3) / 13
    return _blend(smooth, x, factor)


_COLOUR: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "autocontrast": _autocontrast,
    "brightness": lambda x, f: _blend(torch.zeros_like(x), x, f),
    "color": lambda x, f: _blend(_grey(x).expand_as(x), x, f),
    "contrast": lambda x, f: _blend(_grey(x).mean(dim=(2, 3), keepdim=True).expand_as(x), x, f),
    "equalize": _equalize,
    "posterize": _posterize,
    "sharpness": _sharpness,
    "solarize": lambda x, threshold: torch.where(x * 255 >= threshold, 1 - x, x),
}
_GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")


def _geometric(x: torch.Tensor, amount: dict[str, torch.Tensor]) -> torch.Tensor:
    """Rotation (degrees, about the centre), shears and translations (fractions of the side), zero for an
    image that did not draw them, composed into one affine map per image and resampled once (nearest
    pixel, black outside, as PIL's transforms)."""
    n, _, h, w = x.shape
    one, zero = torch.ones_like(amount["rotate"]), torch.zeros_like(amount["rotate"])

    def matrix(rows):  # (n, 3, 3) from rows of per-image entries
        return torch.stack([torch.stack(row, dim=1) for row in rows], dim=1)

    angle = amount["rotate"] * (math.pi / 180)
    cx, cy = w / 2, h / 2  # in PIL's continuous coordinates: pixel (i, j) spans [i, i + 1) × [j, j + 1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Each maps an output pixel's centre (x, y, 1) to the input point it reads, as PIL's affine transforms.
    # Counter-clockwise by the angle, as PIL's rotate.
    rotate = matrix([[cos, -sin, cx - cos * cx + sin * cy], [sin, cos, cy - sin * cx - cos * cy], [zero, zero, one]])
    shear_x = matrix([[one, amount["shear_x"], zero], [zero, one, zero], [zero, zero, one]])
    shear_y = matrix([[one, zero, zero], [amount["shear_y"], one, zero], [zero, zero, one]])
    translate = matrix([[one, zero, amount["translate_x"] * w], [zero, one, amount["translate_y"] * h],
                        [zero, zero, one]])
    source = rotate @ shear_x @ shear_y @ translate
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device, dtype=x.dtype),
                            torch.arange(w, device=x.device, dtype=x.dtype), indexing="ij")
    centres = torch.stack([xs + 0.5, ys + 0.5, torch.ones_like(xs)]).reshape(3, h * w)
    # The pixel containing the point (PIL truncates), addressed by its centre so that sampling picks it exactly.
    mapped = (source @ centres)[:, :2].floor() + 0.5  # (n, 2, h·w)
    grid = torch.stack([2 * mapped[:, 0] / w - 1, 2 * mapped[:, 1] / h - 1], dim=-1).view(n, h, w, 2)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _cutout(x: torch.Tensor) -> torch.Tensor:
    """A grey square of side up to half the image's, at a random place (clipped at the borders)."""
    n, _, h, w = x.shape
    side = torch.rand(n, 1, 1, device=x.device, dtype=x.dtype) * CUTOUT_MAX * w
    left = (torch.rand(n, 1, 1, device=x.device, dtype=x.dtype) * w - side / 2).clamp(min=0).floor()
    top = (torch.rand(n, 1, 1, device=x.device, dtype=x.dtype) * h - side / 2).clamp(min=0).floor()
    cols = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w)
    rows = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1)
    box = (cols >= left) & (cols < left + side) & (rows >= top) & (rows < top + side)
    grey = device_constant(CUTOUT_GRAY, x.device, x.dtype).view(1, 3, 1, 1)
    return torch.where(box.unsqueeze(1), grey, x)


VIEWS: dict[str, Callable[[torch.Tensor, Normalization], torch.Tensor]] = {"strong": strong_augment}


def with_views(names: tuple[str, ...], images: torch.Tensor, student_on: Callable[[torch.Tensor], Outputs],
               teacher_on: Callable[[torch.Tensor], Outputs | None], student: Outputs,
               teacher: Outputs | None, *, normalization: Normalization) -> tuple[Outputs, Outputs | None]:
    """The student's and the teacher's outputs with their ``views``: for each name, both networks'
    outputs on that view of ``images`` (the batch before the recipe's own augmentation, normalised with
    ``normalization``)."""
    made = {name: VIEWS[name](images, normalization) for name in names}
    student = student._replace(views={name: student_on(view) for name, view in made.items()})
    if teacher is not None:
        teacher = teacher._replace(views={name: teacher_on(view) for name, view in made.items()})
    return student, teacher
