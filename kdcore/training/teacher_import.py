"""Teachers trained elsewhere: a reference framework's checkpoint (RepDistiller, mdistiller) or a bare state dict,
mapped onto a zoo network and written as this project's teacher checkpoint.

The two frameworks name the modules of a network alike (their CIFAR model files are the same code), and
differently from this project: ``conv1``/``bn1``/``layer1``/``downsample`` for the ResNets, ``block1.layer``/
``convShortcut`` for the WideResNets, ``block0`` for VGG, ``blocks``/``conv2`` for mobile_half, ``conv1``…
``bn5`` for ShuffleNetV2's units. ``REFERENCE_RENAMES`` holds those differences as data, per architecture file;
the tensors themselves are the same, in the same layouts.

Files are read with ``torch.load(weights_only=True)``: tensors, numbers, strings and containers only.
"""

from __future__ import annotations

import functools
import os
import pickle
import re
from pathlib import Path
from typing import Mapping

import torch

from kdcore.architectures import build, canonical, registry
from kdcore.config import RunConfig
from kdcore.data.catalog import file_sha256
from kdcore.errors import CheckpointError, ConfigError
from kdcore.training.checkpoint import save_checkpoint
from kdcore.training.run_files import CHECKPOINT, IMPORT_FORMATS as FORMATS

STATE_DICT = "state_dict"
# The dataset an imported teacher's configuration names when none was given: not a guess from its class count.
UNKNOWN_DATASET = "unknown"

_STAGES_3 = (("layer1", "stages.0"), ("layer2", "stages.1"), ("layer3", "stages.2"))
_STEM = (("conv1", "stem.0"), ("bn1", "stem.1"))

# From the reference frameworks' module paths to this project's, per file of kdcore/architectures. Each rule is
# (reference, ours): dotted module paths anchored at the start of a key, where {a} and {b} stand for any index.
# The rules apply in order, each to what the ones before left; reversed and swapped, they map back.
REFERENCE_RENAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "resnet": (*_STEM, ("layer{a}.{b}.downsample", "layer{a}.{b}.shortcut"), *_STAGES_3),
    "resnet_bottleneck": (*_STEM, *_STAGES_3, ("layer4", "stages.3"), ("linear", "fc")),
    "wrn": (("conv1", "stem"), ("block1.layer", "stages.0"), ("block2.layer", "stages.1"),
            ("block3.layer", "stages.2"), ("stages.{a}.{b}.convShortcut", "stages.{a}.{b}.projection"), ("bn1", "bn")),
    "vgg": (("block{a}", "blocks.{a}"),),
    "mobilenetv2": (("conv1", "stem"), ("blocks", "groups"), ("conv2", "head"), ("classifier.0", "classifier")),
    "shufflenetv1": (*_STEM, *_STAGES_3, ("linear", "fc")),
    "shufflenetv2": (
        # A stage's first unit halves the resolution in two branches: conv1…bn2 on the left, conv3…bn5 on the right.
        ("layer{a}.0.conv1", "layer{a}.0.left.0"), ("layer{a}.0.bn1", "layer{a}.0.left.1"),
        ("layer{a}.0.conv2", "layer{a}.0.left.2"), ("layer{a}.0.bn2", "layer{a}.0.left.3"),
        ("layer{a}.0.conv3", "layer{a}.0.right.0"), ("layer{a}.0.bn3", "layer{a}.0.right.1"),
        ("layer{a}.0.conv4", "layer{a}.0.right.3"), ("layer{a}.0.bn4", "layer{a}.0.right.4"),
        ("layer{a}.0.conv5", "layer{a}.0.right.5"), ("layer{a}.0.bn5", "layer{a}.0.right.6"),
        # The other units transform half their channels in one branch.
        ("layer{a}.{b}.conv1", "layer{a}.{b}.branch.0"), ("layer{a}.{b}.bn1", "layer{a}.{b}.branch.1"),
        ("layer{a}.{b}.conv2", "layer{a}.{b}.branch.3"), ("layer{a}.{b}.bn2", "layer{a}.{b}.branch.4"),
        ("layer{a}.{b}.conv3", "layer{a}.{b}.branch.5"), ("layer{a}.{b}.bn3", "layer{a}.{b}.branch.6"),
        *_STEM, ("conv2", "head.0"), ("bn2", "head.1"), *_STAGES_3, ("linear", "fc"),
    ),
}
# Keys PyTorch before 0.4.1 did not write; a network in eval mode never reads them.
_OPTIONAL = re.compile(r"(^|\.)num_batches_tracked$")


def _pattern(template: str) -> re.Pattern:
    parts = re.split(r"(\{[a-z]\})", template)
    body = "".join(f"(?P<{p[1]}>\\d+)" if re.fullmatch(r"\{[a-z]\}", p) else re.escape(p) for p in parts)
    return re.compile(f"^{body}(?=\\.)")


def _apply(rules: tuple[tuple[str, str], ...], key: str) -> str:
    for source, target in rules:
        key = _pattern(source).sub(lambda match: target.format(**match.groupdict()), key, count=1)
    return key


def _family(architecture: str) -> str | None:
    """The file of kdcore/architectures that defines the network (None: a plugin's)."""
    prefix, known = "kdcore.architectures.", registry()
    if architecture not in known:
        raise ConfigError(f"unknown architecture {architecture!r}; choose one of: {', '.join(known)}")
    module = known[architecture][0].__module__  # the factory, defined beside its network
    return module.removeprefix(prefix) if module.startswith(prefix) else None


def _rules(architecture: str, fmt: str) -> tuple[tuple[str, str], ...]:
    if fmt not in FORMATS:
        raise CheckpointError(f"unknown checkpoint format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if fmt == STATE_DICT:
        return ()
    family = _family(architecture)
    if family not in REFERENCE_RENAMES:
        raise CheckpointError(f"{fmt} has no network {architecture!r}: import its weights with format "
                              f"{STATE_DICT!r} (this project's key names)")
    return REFERENCE_RENAMES[family]


def to_reference_names(state: Mapping[str, torch.Tensor], architecture: str, fmt: str) -> dict[str, torch.Tensor]:
    """A state dict of this project's network under ``fmt``'s key names: what that framework's model loads."""
    rules = tuple((ours, theirs) for theirs, ours in reversed(_rules(canonical(architecture), fmt)))
    return {_apply(rules, key): value for key, value in state.items()}


def state_dict_of(loaded: object, name: str = "the checkpoint") -> dict[str, torch.Tensor]:
    """The network's weights inside what a framework saved: ``{"model": ...}`` (RepDistiller, mdistiller, this
    project), ``{"state_dict": ...}`` or a bare state dict; DataParallel's ``module.`` prefix removed, and of
    mdistiller's whole distiller (``student.``, ``teacher.``, the method's modules) the student's."""
    if isinstance(loaded, dict):
        for wrapper in ("model", "state_dict"):
            if isinstance(loaded.get(wrapper), dict):
                loaded = loaded[wrapper]
                break
    if not isinstance(loaded, dict) or not loaded or not all(
            isinstance(k, str) and torch.is_tensor(v) for k, v in loaded.items()):
        raise CheckpointError(f"{name} holds no state dict (a mapping of names to tensors), bare or under "
                              "'model' or 'state_dict'")
    state = {k.removeprefix("module."): v for k, v in loaded.items()}
    if any(k.startswith("student.") for k in state):
        state = {k.removeprefix("student."): v for k, v in state.items() if k.startswith("student.")}
    return state


@functools.lru_cache(maxsize=64)
def _expected(architecture: str, num_classes: int) -> dict[str, torch.Size]:
    """The network's keys and shapes, once per process (a build initialises every weight: 0.2 s for ResNet-50)."""
    return {k: v.shape for k, v in build(architecture, num_classes).state_dict().items()}


def _shape(shape) -> str:
    return f"({', '.join(map(str, shape))}{',' if len(shape) == 1 else ''})"


def convert_state_dict(state: Mapping[str, torch.Tensor], architecture: str, num_classes: int,
                       fmt: str) -> dict[str, torch.Tensor]:
    """The zoo network's state dict from a checkpoint's (wrapped as the frameworks save it, or bare) in format
    ``fmt``: every key of the network filled with a tensor of its shape, and nothing left over. The first
    mismatch, in the network's order, raises CheckpointError naming the key as the file names it."""
    architecture = canonical(architecture)
    if num_classes < 2:
        raise ConfigError(f"a classifier has at least 2 classes, not {num_classes}")
    expected = _expected(architecture, num_classes)  # raises ConfigError for an unknown network
    rules = _rules(architecture, fmt)
    weights = state_dict_of(state)
    renamed = {_apply(rules, key): key for key in weights}
    where = f"{architecture} ({fmt} names, {num_classes} classes)"
    converted: dict[str, torch.Tensor] = {}
    for ours, shape in expected.items():
        theirs = renamed.get(ours)
        if theirs is None:
            if _OPTIONAL.search(ours):
                converted[ours] = torch.zeros((), dtype=torch.long)
                continue
            [wanted] = to_reference_names({ours: None}, architecture, fmt)
            raise CheckpointError(f"the checkpoint does not fit {where}: it has no key {wanted!r}"
                                  + (f" (this project's {ours!r})" if wanted != ours else "") + _hint(weights, fmt))
        found = weights[theirs].shape
        if found != shape:
            classes = (" (a classifier for a different --num-classes?)"
                       if ours == next(reversed(expected)) or ours == list(expected)[-2] else "")
            raise CheckpointError(f"the checkpoint does not fit {where}: key {theirs!r} has shape {_shape(found)}, "
                                  f"the network's is {_shape(shape)}{classes}" + _hint(weights, fmt))
        converted[ours] = weights[theirs]
    extra = next((theirs for ours, theirs in renamed.items() if ours not in expected), None)
    if extra is not None:
        raise CheckpointError(f"the checkpoint does not fit {where}: unexpected key {extra!r}" + _hint(weights, fmt))
    return converted


def _hint(weights: Mapping[str, torch.Tensor], fmt: str) -> str:
    """The zoo networks whose keys and shapes the file does fit, if any (a wrong --arch is the usual mistake)."""
    fitting = []
    classifier = next(reversed(weights.values())).shape  # the last key: the classifier's bias
    classes = classifier[0] if len(classifier) == 1 else 10
    for name in registry():
        try:
            rules = _rules(name, fmt)
        except CheckpointError:
            continue
        found = {_apply(rules, key): value.shape for key, value in weights.items()}
        wanted = _expected(name, classes)
        if found.keys() == wanted.keys() and all(found[k] == wanted[k] for k in wanted):
            fitting.append(name)
    return f"; it fits {' and '.join(fitting)} with {classes} classes" if fitting else ""


def read_checkpoint_file(path: str | os.PathLike) -> object:
    """A file as torch.load reads it with weights_only=True: what needs arbitrary pickled objects is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path.name} needs arbitrary pickled objects, which are not loaded "
                              f"(torch.load weights_only=True: {reason[:200]}); save the state dict alone "
                              "(torch.save(model.state_dict(), PATH)) and import that") from None
    except Exception as exc:
        raise CheckpointError(f"{path.name} is not a readable PyTorch file ({type(exc).__name__})") from None


def import_teacher(source: str | os.PathLike, architecture: str, num_classes: int, fmt: str,
                   out_dir: str | os.PathLike, *, dataset: str | None = None,
                   data_root: str | os.PathLike | None = None) -> Path:
    """Write ``out_dir/checkpoint.pt``: a teacher checkpoint of the zoo network ``architecture`` with the weights
    of ``source`` (in format ``fmt``), usable as any teacher here, with an ``origin`` entry (the file's name,
    sha256 and format). With ``dataset`` the network is evaluated on its test split first, and the checkpoint
    keeps ``test_accuracy`` and ``test_loss``. Nothing is written when the file does not fit."""
    from kdcore.data.loader import load_dataset
    from kdcore.training.device_data import Split
    from kdcore.training.engine import deployed_parameters, evaluate, resolve_device
    from kdcore.training.networks import build_model

    source = Path(source)
    config = RunConfig(kind="teacher", architecture=architecture, dataset=dataset or UNKNOWN_DATASET)
    weights = convert_state_dict(state_dict_of(read_checkpoint_file(source), source.name), config.architecture,
                                 num_classes, fmt)
    model = build_model(config.architecture, num_classes, config.seed)
    model.load_state_dict(weights)
    model.eval()
    payload = {"config": config.to_json_dict(), "num_classes": num_classes, "classes": None, "data_fingerprint": None,
               "parameters": deployed_parameters(model), "epoch": 0, "model": model.state_dict(), "modules": None,
               "metrics": [], "test_accuracy": None, "test_loss": None,
               "normalization": None,  # not known without a dataset: the one it is evaluated on says it
               "origin": {"file": source.name, "sha256": file_sha256(source), "format": fmt}}
    if dataset is not None:
        data = load_dataset(dataset, data_root)
        if data.num_classes != num_classes:
            raise ConfigError(f"dataset {dataset!r} has {data.num_classes} classes, the teacher {num_classes}")
        device = resolve_device("auto")
        with torch.no_grad():
            # The dataset's normalisation, as the reference frameworks train with (CIFAR-100's own statistics).
            loss, accuracy = evaluate(model.to(device), Split(data.test_x, data.test_y, device, resident=True,
                                                              normalization=data.normalization))
        payload.update(classes=list(data.classes), data_fingerprint=data.fingerprint, test_accuracy=accuracy,
                       normalization=data.normalization.to_json_dict(),
                       test_loss=loss, model={k: v.detach().cpu() for k, v in model.state_dict().items()})
    out = Path(out_dir) / CHECKPOINT
    save_checkpoint(out, payload)
    return out
