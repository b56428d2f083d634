"""Teacher outputs for every training image, computed once and reused.

Exact here: there is no augmentation and the frozen teacher runs in eval mode, so its
output for an image never changes. One forward pass yields both outputs (logits for soft
targets, the feature map for the hidden-representation methods), so the three KD students
of an experiment share a single pass. Kept in memory for the process and, on CPU where
recomputing costs seconds, on disk keyed by the teacher checkpoint's hash and the data's
fingerprint.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import torch

OUTPUTS = ("logits", "features")
_memory: dict[tuple, dict[str, torch.Tensor]] = {}
_lock = threading.Lock()  # concurrent KD runs of one experiment wait for the first to compute
_BATCH = 1000


@torch.inference_mode()
def compute_teacher_outputs(teacher: torch.nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"logits": (N, classes), "features": (N, 32, 8, 8)}`` in batches, in one pass."""
    parts = [teacher(images[i : i + _BATCH]) for i in range(0, len(images), _BATCH)]
    return {name: torch.cat([part[position] for part in parts]) for position, name in enumerate(OUTPUTS)}


def teacher_outputs(
    teacher: torch.nn.Module, images: torch.Tensor, *, teacher_digest: str, data_fingerprint: str,
    disk_dir: Path | None,
) -> dict[str, torch.Tensor]:
    with _lock:
        key = (teacher_digest, data_fingerprint, str(images.device))
        if key not in _memory:
            _memory.clear()  # a process reuses one teacher's outputs at a time; a new teacher replaces them
            _memory[key] = _load_or_compute(teacher, images, teacher_digest, data_fingerprint, disk_dir)
        return _memory[key]


def _load_or_compute(teacher, images, teacher_digest, data_fingerprint, disk_dir) -> dict[str, torch.Tensor]:
    slug = hashlib.sha256(data_fingerprint.encode()).hexdigest()[:16]
    file = disk_dir / f"teacher-{teacher_digest[:16]}-{slug}.pt" if disk_dir else None
    if file is not None and file.is_file():
        return torch.load(file, map_location=images.device, weights_only=True)
    outputs = compute_teacher_outputs(teacher, images)
    if images.is_cuda:
        torch.cuda.current_stream().synchronize()  # other runs read them from their own streams
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(file.name + ".tmp")
        torch.save({name: tensor.cpu() for name, tensor in outputs.items()}, tmp)
        tmp.replace(file)
    return outputs
