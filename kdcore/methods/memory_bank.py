"""Per-image state for indexed methods (``Method.indexed``): momentum memory banks, values fixed at the first
step, and negatives drawn from the other classes of the training set. Everything runs on the device without
reading a value back to the host, so it works inside a CUDA graph.

Negatives are not drawn from torch's generator but hashed from a key, the step count and the images: a key
drawn once from the run's seeded generator when its modules are built (a buffer, so the checkpoint keeps it).
The draws are then the same whether the run trains alone or packed (looped or vmapped, where a generator would
be shared by the pack's runs), eagerly or replayed in a CUDA graph, and after a resume.

torch is imported inside the functions: the registry imports this file, and the web process never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only
    import torch

# murmur3's 64-bit finaliser constants, as the signed int64 values of the same bits.
_MIX1 = 0xFF51AFD7ED558CCD - 2**64
_MIX2 = 0xC4CEB9FE1A85EC53 - 2**64
_INT64_MIN = -(2**63)


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    # A logical shift: torch's >> on int64 copies the sign bit in.
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def mix64(x: torch.Tensor) -> torch.Tensor:
    """murmur3's finaliser on int64 tensors (wrapping arithmetic): a bijection of the 64-bit values whose
    output bits each depend on every input bit."""
    x = x ^ _shift_right(x, 33)
    x = x * _MIX1
    x = x ^ _shift_right(x, 33)
    x = x * _MIX2
    return x ^ _shift_right(x, 33)


def draw_key() -> torch.Tensor:
    """A 0-d int64 key from torch's generator (seeded by the run when its modules are built)."""
    import torch

    return torch.randint(-(2**62), 2**62, (), dtype=torch.long)


def image_keys(size: int) -> torch.Tensor:
    """(size,) distinct int64 values standing for the training images in ``sample_keys``: hashed once per run,
    so that each step's (B, size) keys take only a few operations per element."""
    import torch

    return mix64(torch.arange(size, dtype=torch.long))


def sample_keys(key: torch.Tensor, step: torch.Tensor, index: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """(B, N) int64 pseudo-random keys, one per (image of the batch, training image), a pure function of the
    run's ``key``, the ``step`` count (a float tensor, as ``Progress.step``), the batch's ``index`` and the
    training images' ``image_keys``. Within a row the keys are distinct (XOR with the row's value, a product
    with an odd constant and an xorshift are bijections of the 64-bit values), so ranking them meets no tie."""
    rows = mix64(mix64(key ^ mix64(step.long())) ^ index.long())
    keys = (rows.unsqueeze(1) ^ images).mul_(_MIX1)
    return keys.bitwise_xor_(_shift_right(keys, 29))


def other_class_negatives(key: torch.Tensor, step: torch.Tensor, index: torch.Tensor, labels: torch.Tensor,
                          train_labels: torch.Tensor, images: torch.Tensor, count: int) -> torch.Tensor:
    """(B, count) training-set positions, for each image of the batch ``count`` distinct images of other
    classes, uniformly at random without replacement (RepDistiller's "exact" sampling of CRD's negatives):
    the ``count`` highest keys of ``sample_keys`` among the images whose label differs from the row's.
    ``images``: ``image_keys`` of the training set. ``count`` must not exceed the number of images outside the
    largest class (``negatives_available``)."""
    keys = sample_keys(key, step, index, images)
    keys.masked_fill_(train_labels.unsqueeze(0) == labels.unsqueeze(1), _INT64_MIN)
    return keys.topk(count, dim=1, sorted=False).indices


def negatives_available(train_labels: torch.Tensor) -> int:
    """How many negatives of other classes every image has: the training set less its largest class."""
    import torch

    return int(train_labels.shape[0] - torch.bincount(train_labels).max().item())


def uniform_bank(size: int, dim: int) -> torch.Tensor:
    """A (size, dim) memory bank's first contents: uniform in ±1/√(dim/3), as RepDistiller's ContrastMemory
    starts (unit variance per row), from torch's generator."""
    import torch

    bound = 1.0 / (dim / 3) ** 0.5
    return torch.rand(size, dim).mul_(2 * bound).add_(-bound)


def momentum_update(bank: torch.Tensor, index: torch.Tensor, values: torch.Tensor, momentum: float) -> None:
    """In place: each row ``index[i]`` of ``bank`` becomes momentum·row + (1 − momentum)·values[i], scaled to
    unit length (RepDistiller's ContrastMemory update). ``index`` holds distinct positions (a batch)."""
    import torch

    with torch.no_grad():
        mixed = bank.index_select(0, index).mul_(momentum).add_(values.detach() * (1 - momentum))
        # The bank's rows and the values are unit vectors mixed with momentum < 1: the norm stays > 0 except
        # for exactly opposite vectors at momentum ½; the floor keeps even that finite.
        norm = mixed.pow(2).sum(1, keepdim=True).sqrt().clamp_min(1e-12)
        bank.index_copy_(0, index, mixed.div_(norm))


def set_once(slot: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``slot``'s value, which is ``value`` (detached) the first time, while ``slot`` still holds a negative
    number (unset), and stays so: RepDistiller sets CRD's normalisation constants from the first batch with
    ``.item()``, a host read every step; a device-side select under the flag needs none. In place; returns
    the values to use."""
    import torch

    fixed = torch.where(slot < 0, value.detach(), slot)
    slot.copy_(fixed)
    return fixed
