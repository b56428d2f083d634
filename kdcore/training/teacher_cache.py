"""Teacher outputs for every training image, computed once and reused.

Exact here: there is no augmentation and the frozen teacher runs in eval mode, so its output for an
image never changes. Any set of outputs can be asked for (``"logits"`` and tap names); those asked
together come from one pass, and each is computed once per (teacher checkpoint, data): the KD students
of an experiment share them. Kept in memory for the process and, on CPU where recomputing costs
seconds, on disk, one file per output, keyed by the teacher checkpoint's hash, the data's
fingerprint and the images' normalisation (the same images normalised otherwise give other outputs).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import torch

from kdcore.data.catalog import Normalization
from kdcore.methods.base import LOGITS

_memory: dict[tuple, dict[str, torch.Tensor]] = {}
_lock = threading.Lock()  # concurrent KD runs of one experiment wait for the first to compute
_BATCH = 1000


@torch.inference_mode()
def compute_teacher_outputs(teacher: torch.nn.Module, images: torch.Tensor, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """``{name: (N, ...)}`` for each asked output, in batches, in one pass."""
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    for start in range(0, len(images), _BATCH):
        logits, taps = teacher(images[start : start + _BATCH])
        for name in names:
            parts[name].append(logits if name == LOGITS else taps[name])
    return {name: torch.cat(chunks) for name, chunks in parts.items()}


def teacher_outputs(
    teacher: torch.nn.Module, images: torch.Tensor, names: tuple[str, ...], *, teacher_digest: str,
    data_fingerprint: str, normalization: Normalization, disk_dir: Path | None,
) -> dict[str, torch.Tensor]:
    """The outputs ``names`` of ``teacher`` on ``images``, which are the data ``data_fingerprint`` normalised
    with ``normalization``."""
    data_fingerprint = f"{data_fingerprint}|mean={normalization.mean}|std={normalization.std}"
    with _lock:
        key = (teacher_digest, data_fingerprint, str(images.device))
        if key not in _memory:
            _memory.clear()  # a process reuses one teacher's outputs at a time; a new teacher replaces them
            _memory[key] = {}
        known = _memory[key]
        missing = tuple(name for name in names if name not in known)
        if missing:
            known.update(_load_or_compute(teacher, images, missing, teacher_digest, data_fingerprint, disk_dir))
        return {name: known[name] for name in names}


def _file(disk_dir: Path, teacher_digest: str, data_fingerprint: str, name: str) -> Path:
    slug = hashlib.sha256(data_fingerprint.encode()).hexdigest()[:16]
    return disk_dir / f"teacher-{teacher_digest[:16]}-{slug}-{name}.pt"


def _load_or_compute(teacher, images, names, teacher_digest, data_fingerprint, disk_dir) -> dict[str, torch.Tensor]:
    found: dict[str, torch.Tensor] = {}
    if disk_dir is not None:
        for name in names:
            file = _file(disk_dir, teacher_digest, data_fingerprint, name)
            if file.is_file():
                found[name] = torch.load(file, map_location=images.device, weights_only=True)
    missing = tuple(name for name in names if name not in found)
    if not missing:
        return found
    computed = compute_teacher_outputs(teacher, images, missing)
    if images.is_cuda:
        torch.cuda.current_stream().synchronize()  # other runs read them from their own streams
    if disk_dir is not None:
        disk_dir.mkdir(parents=True, exist_ok=True)
        for name, tensor in computed.items():
            file = _file(disk_dir, teacher_digest, data_fingerprint, name)
            tmp = file.with_name(file.name + ".tmp")
            torch.save(tensor.cpu(), tmp)
            tmp.replace(file)
    return {**found, **computed}
