"""Load a dataset by name into uint8 arrays (N, 3, 32, 32) with integer labels.

Image folders and archives are decoded once and cached as ``.npz`` keyed by the source's
hash, so later runs start in a fraction of a second.
"""

from __future__ import annotations

import io
import os
import tarfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import numpy as np

from kdcore.data import catalog, synthetic
from kdcore.errors import DatasetError

SIZE = 32
# The most an image may be, checked before it is read or decoded: the networks see 32×32, and one 1.1 MB
# archive of a few huge images once took a worker to 1.47 GB before PIL refused one. 40 million pixels is a
# 48-megapixel photo's 8000×6000, 120 MB decoded; 64 MiB of file is more than such a photo's.
MAX_IMAGE_PIXELS = 40_000_000
MAX_IMAGE_BYTES = 64 * 2**20


@dataclass(frozen=True)
class ArrayDataset:
    name: str
    classes: tuple[str, ...]
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    fingerprint: str  # identifies the exact images, for caches keyed on data
    note: str = ""
    # Training images held out to choose epochs on (``hold_out``); None without a validation split.
    val_x: np.ndarray | None = None
    val_y: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def normalization(self) -> catalog.Normalization:
        """What its images are normalised with on the device (kdcore.training.device_data)."""
        return catalog.normalization_for(self.name)


def load_dataset(name: str, root: str | os.PathLike | None = None, subset: int | None = None,
                 validation: float = 0.0) -> ArrayDataset:
    """The dataset ``name``: ``subset`` training images (with the same fraction of the test split), of
    which the fraction ``validation`` is held out as a validation split (``hold_out``)."""
    info = catalog.find_dataset(name, root)
    stat = Path(info.path).stat() if info.path and Path(info.path).is_file() else None
    key = (info, subset, validation, stat and (stat.st_size, stat.st_mtime_ns))
    with _recent_lock:
        if key not in _recent:
            _recent.clear()  # the runs of one experiment share a dataset; keep only the latest
            dataset = _load(info, root, subset)
            _recent[key] = hold_out(dataset, validation) if validation else dataset
        return _recent[key]


_recent: dict[tuple, "ArrayDataset"] = {}
_recent_lock = threading.Lock()


def _load(info: catalog.DatasetInfo, root, subset: int | None) -> ArrayDataset:
    if info.source == "synthetic":
        dataset = ArrayDataset(info.name, info.classes, *synthetic.generate(info.num_classes),
                               fingerprint=f"{info.name}-v1")
    elif info.source == "torchvision":
        dataset = _load_torchvision(info.name, catalog.data_dir(root))
    else:
        dataset = _load_imagefolder(info, catalog.cache_dir(root))
    return take_subset(dataset, subset) if subset else dataset


def take_subset(dataset: ArrayDataset, size: int) -> ArrayDataset:
    """``size`` training images stratified by class, and the same fraction of each test class.

    The choice depends only on the data, so a teacher and its students see the same subset.
    """
    total = len(dataset.train_y)
    if size < dataset.num_classes or size > total:
        raise DatasetError(
            f"subset must be between {dataset.num_classes} (one per class) and {total} for {dataset.name!r}, got {size}"
        )
    if size == total:
        return dataset
    rng = np.random.default_rng(0)
    per_class = np.full(dataset.num_classes, size // dataset.num_classes)
    per_class[: size % dataset.num_classes] += 1
    fraction = size / total

    def pick(labels: np.ndarray, counts) -> np.ndarray:
        chosen = []
        for label, count in enumerate(counts):
            members = np.flatnonzero(labels == label)
            chosen.append(rng.permutation(members)[: min(count, len(members))])
        return np.sort(np.concatenate(chosen))

    train = pick(dataset.train_y, per_class)
    test_counts = [max(1, round(fraction * np.sum(dataset.test_y == c))) for c in range(dataset.num_classes)]
    test = pick(dataset.test_y, test_counts)
    return replace(
        dataset,
        train_x=dataset.train_x[train], train_y=dataset.train_y[train],
        test_x=dataset.test_x[test], test_y=dataset.test_y[test],
        fingerprint=f"{dataset.fingerprint}/subset{size}",
    )


# The validation split's draw. Fixed, not the run's seed: every run of the same data and subset (the seeds of
# a study, a teacher and its students) holds out the same images, so their best epochs are chosen alike.
SPLIT_SEED = 20240601


def hold_out(dataset: ArrayDataset, fraction: float, split_seed: int = SPLIT_SEED) -> ArrayDataset:
    """Move ``fraction`` of each class's training images (rounded, at least one) to a validation split.

    The draw depends only on the data (its fingerprint names the subset too) and ``split_seed``. The training
    split keeps its images in their order, less those held out; so does the validation split.
    """
    if not 0 < fraction < 1:
        raise DatasetError(f"validation must be a fraction between 0 and 1, got {fraction}")
    rng = np.random.default_rng(split_seed)
    held: list[np.ndarray] = []
    for label in range(dataset.num_classes):
        members = np.flatnonzero(dataset.train_y == label)
        count = max(1, round(fraction * len(members)))
        if len(members) - count < 1:
            raise DatasetError(
                f"validation {fraction:g} leaves no training image of class {dataset.classes[label]!r} "
                f"({len(members)} in {dataset.name!r}{' subset' if '/subset' in dataset.fingerprint else ''}): "
                f"each class needs at least 2 training images")
        held.append(rng.permutation(members)[:count])
    val = np.sort(np.concatenate(held))
    train = np.setdiff1d(np.arange(len(dataset.train_y)), val, assume_unique=True)
    return replace(
        dataset,
        train_x=dataset.train_x[train], train_y=dataset.train_y[train],
        val_x=dataset.train_x[val], val_y=dataset.train_y[val],
        fingerprint=f"{dataset.fingerprint}/validation{fraction:g}-{split_seed}",
    )


def _load_torchvision(name: str, root: Path) -> ArrayDataset:
    from torchvision import datasets

    _, folder, title, _ = catalog.TORCHVISION[name]
    dataset_class = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
    try:
        train = dataset_class(str(root), train=True, download=True)
        test = dataset_class(str(root), train=False, download=True)
    except Exception as exc:  # urllib/socket/ssl errors differ by platform; all mean "not reachable"
        raise DatasetError(
            f"{title} is not in {root.resolve() / folder} and could not be downloaded "
            f"({type(exc).__name__}: {exc}). Offline, put an ImageFolder archive such as {name}-jpg.tar.xz "
            f"in the data directory (KD_DATA_DIR) and use --dataset {name}-jpg"
        ) from None
    return ArrayDataset(
        name, tuple(train.classes),
        train.data.transpose(0, 3, 1, 2).copy(), np.asarray(train.targets, dtype=np.int64),
        test.data.transpose(0, 3, 1, 2).copy(), np.asarray(test.targets, dtype=np.int64),
        fingerprint=f"torchvision-{name}",
    )


def _load_imagefolder(info: catalog.DatasetInfo, cache_root: Path) -> ArrayDataset:
    source = Path(info.path)
    digest = catalog.source_fingerprint(source)
    cached = cache_root / f"{info.name}-{digest[:16]}.npz"
    if cached.is_file():
        with np.load(cached) as arrays:
            parts = {key: arrays[key] for key in arrays.files}
    else:
        parts = _decode(source, info.classes)
        cache_root.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(cached.name + ".tmp.npz")
        np.savez(tmp, **parts)
        tmp.replace(cached)
    note = str(parts.pop("note")) if "note" in parts else ""
    return ArrayDataset(info.name, info.classes, parts["train_x"], parts["train_y"], parts["test_x"],
                        parts["test_y"], fingerprint=f"{info.name}-{digest}", note=note)


def _iter_images(source: Path):
    """Yield (split, class, file name, bytes) for every file under train/ or test/."""
    if source.is_dir():
        for split in ("train", "test"):
            for file in sorted((source / split).glob("*/*")):
                if file.is_file():
                    _check_file_size(source, f"{split}/{file.parent.name}/{file.name}", file.stat().st_size)
                    yield split, file.parent.name, file.name, file.read_bytes()
        return
    try:
        with tarfile.open(source) as archive:
            for member in archive:
                parts = [p for p in PurePosixPath(member.name).parts if p != "."]
                if not member.isfile() or len(parts) < 3 or parts[-3] not in ("train", "test"):
                    continue
                _check_file_size(source, member.name, member.size)
                yield parts[-3], parts[-2], parts[-1], archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DatasetError(f"cannot read archive {source}: {exc}") from exc


def _check_file_size(source: Path, name: str, size: int) -> None:
    # From the archive's header or the file system: a file of zeros compresses to almost nothing.
    if size > MAX_IMAGE_BYTES:
        raise DatasetError(f"{source}: {name} is {size:,} bytes; an image may have at most {MAX_IMAGE_BYTES:,}")


def _check_image_size(source: Path, name: str, image) -> None:
    # Image.open has read the header only: nothing is decoded until convert() below.
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise DatasetError(f"{source}: {name} is {width:,}×{height:,} pixels; an image may have at most "
                           f"{MAX_IMAGE_PIXELS:,} (the networks see {SIZE}×{SIZE})")


def _decode(source: Path, classes: tuple[str, ...]) -> dict[str, np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    index = {name: i for i, name in enumerate(classes)}
    records: dict[str, list] = {"train": [], "test": []}
    resized_from: set[tuple[int, int]] = set()
    for split, label, file_name, data in _iter_images(source):
        if label not in index:
            raise DatasetError(f"{source}: class {label!r} appears in {split}/ but not in train/")
        name = f"{split}/{label}/{file_name}"
        try:
            with Image.open(io.BytesIO(data)) as image:
                _check_image_size(source, name, image)
                image = image.convert("RGB")
                if image.size != (SIZE, SIZE):
                    resized_from.add(image.size)
                    image = image.resize((SIZE, SIZE), Image.BILINEAR)
                pixels = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
        except Image.DecompressionBombError as exc:  # PIL's own limit, past twice its MAX_IMAGE_PIXELS
            raise DatasetError(f"{source}: {name} is too large to decode ({exc})") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetError(f"{source}: {name} is not a readable image ({exc})") from None
        records[split].append((index[label], file_name, pixels))
    parts: dict[str, np.ndarray] = {}
    for split, items in records.items():
        if not items:
            raise DatasetError(f"{source} has no images under {split}/ (ImageFolder layout expected)")
        items.sort(key=lambda item: (item[0], item[1]))
        parts[f"{split}_x"] = np.stack([pixels for _, _, pixels in items])
        parts[f"{split}_y"] = np.array([label for label, _, _ in items], dtype=np.int64)
    if resized_from:
        sizes = ", ".join(f"{w}×{h}" for w, h in sorted(resized_from))
        parts["note"] = np.array(f"images resized to 32×32 for the models (found {sizes})")
    return parts
