"""Teacher outputs for every training image, computed once and reused.

Exact here: there is no augmentation and the frozen teacher runs in eval mode, so its
output for an image never changes. Kept in memory for the process (one ``kd experiment``
runs three KD students) and, on CPU where recomputing costs seconds, on disk keyed by the
teacher checkpoint's hash and the data's fingerprint.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch

_memory: dict[tuple, torch.Tensor] = {}
_lock = threading.Lock()  # concurrent KD runs of one experiment wait for the first to compute
_BATCH = 1000


@torch.inference_mode()
def compute_teacher_outputs(teacher: torch.nn.Module, images: torch.Tensor, output: str) -> torch.Tensor:
    """``output`` is "logits" or "features" (the conv feature map)."""
    position = 0 if output == "logits" else 1
    return torch.cat([teacher(images[i : i + _BATCH])[position] for i in range(0, len(images), _BATCH)])


def teacher_outputs(
    teacher: torch.nn.Module, images: torch.Tensor, output: str, *, teacher_digest: str,
    data_fingerprint: str, disk_dir: Path | None,
) -> torch.Tensor:
    with _lock:
        return _teacher_outputs_locked(teacher, images, output, teacher_digest, data_fingerprint, disk_dir)


def _teacher_outputs_locked(teacher, images, output, teacher_digest, data_fingerprint, disk_dir):
    key = (teacher_digest, data_fingerprint, output, str(images.device))
    if key in _memory:
        return _memory[key]
    file = disk_dir / f"teacher-{teacher_digest[:16]}-{_slug(data_fingerprint)}-{output}.pt" if disk_dir else None
    if file is not None and file.is_file():
        outputs = torch.load(file, map_location=images.device, weights_only=True)
    else:
        outputs = compute_teacher_outputs(teacher, images, output)
        if outputs.is_cuda:
            torch.cuda.current_stream().synchronize()  # other runs read it from their own streams
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp = file.with_name(file.name + ".tmp")
            torch.save(outputs.cpu(), tmp)
            tmp.replace(file)
    if any(known[:2] != key[:2] for known in _memory):
        _memory.clear()  # a process reuses one teacher's outputs at a time; a new teacher replaces them
    _memory[key] = outputs
    return outputs


def _slug(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]
