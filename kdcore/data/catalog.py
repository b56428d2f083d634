"""Which datasets exist, by name, and their classes. Torch-free, so the web process can use it.

Names: ``synthetic`` (generated), ``cifar10`` (torchvision's, downloaded into the data
directory when reachable), and every ImageFolder-layout directory or ``.tar``/``.tar.gz``/
``.tar.xz`` archive in the data directory, named after its file stem.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import tarfile
import threading
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from kdcore.errors import DatasetError
from kdcore.flights import SingleFlight

ARCHIVE_SUFFIXES = (".tar.xz", ".tar.gz", ".tgz", ".tar")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish",
    "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange",
    "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm",
)
SYNTHETIC_CLASSES = tuple(f"pattern{i}" for i in range(10))
SYNTHETIC100_CLASSES = tuple(f"pattern{i}" for i in range(100))
CIFAR10_FOLDER = "cifar-10-batches-py"
# torchvision's datasets: name -> (class names, the folder a download creates, title for messages,
# training-split size); the sizes are known without loading, so a run's subset is checked at submit.
TORCHVISION = {"cifar10": (CIFAR10_CLASSES, CIFAR10_FOLDER, "CIFAR-10", 50000),
               "cifar100": (CIFAR100_CLASSES, "cifar-100-python", "CIFAR-100", 50000)}
# Generated datasets: name -> (class names, note); their sizes are kdcore.data.synthetic.SIZES'.
GENERATED = {"synthetic": (SYNTHETIC_CLASSES, "generated 32×32 patterns, 2,000 train / 500 test"),
             "synthetic100": (SYNTHETIC100_CLASSES, "generated 32×32 patterns in 100 classes, 5,000 train / "
                              "1,000 test (tests of 100-class models)")}
GENERATED_TRAIN_SIZES = {"synthetic": 2000, "synthetic100": 5000}
BUILT_IN = (*GENERATED, *TORCHVISION)


@dataclass(frozen=True)
class Normalization:
    """The per-channel mean and standard deviation images are normalised with, on the 0..1 scale (as
    torchvision's ToTensor then Normalize(mean, std))."""
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def to_json_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}


# ImageNet's statistics, the image-classification tutorial's choice: every dataset without its own below keeps
# them, so that results from before datasets had their own normalisation stay what they were.
DEFAULT_NORMALIZATION = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# A dataset's own statistics where the field's reference code normalises with them: CIFAR-100's as RepDistiller
# and mdistiller (and the methods built on them) do, so that their checkpoints see the inputs they were trained
# on and our runs follow the benchmark's recipe. Keyed by dataset name.
NORMALIZATIONS = {"cifar100": Normalization((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))}


def data_dir(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get("KD_DATA_DIR") or "data")


def cache_dir(data_root: str | os.PathLike | None = None) -> Path:
    env = os.environ.get("KD_CACHE_DIR")
    return Path(env) if env else data_dir(data_root) / ".kdcache"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    source: str  # "synthetic", "torchvision" or "imagefolder"
    classes: tuple[str, ...]
    path: str | None
    ready: bool  # False: usable only after a download, or (with a problem) not at all
    note: str = ""
    train_size: int | None = None  # images in the training split, when known
    problem: str = ""  # why it cannot be used (an archive that cannot be read), "" when it can

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def normalization(self) -> Normalization:
        return normalization_for(self.name)

    def to_json_dict(self) -> dict:
        data = asdict(self)
        data["classes"] = list(self.classes)
        data["num_classes"] = self.num_classes
        data["normalization"] = self.normalization.to_json_dict()
        return data


def normalization_for(dataset: str | DatasetInfo) -> Normalization:
    """The normalisation a dataset's images get (by its name or DatasetInfo): its own, else the default."""
    return NORMALIZATIONS.get(dataset if isinstance(dataset, str) else dataset.name, DEFAULT_NORMALIZATION)


def _stem(path: Path) -> str | None:
    for suffix in ARCHIVE_SUFFIXES:
        if path.name.endswith(suffix) and path.is_file():
            return path.name[: -len(suffix)]
    if path.is_dir() and (path / "train").is_dir() and (path / "test").is_dir():
        return path.name
    return None


def _local_sources(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if root.is_dir():
        for entry in sorted(root.iterdir()):
            name = _stem(entry)
            if name and name not in BUILT_IN:
                found.setdefault(name, entry)
    return found


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_fingerprint(path: Path) -> str:
    """A cheap identity for a data source: content hash for archives, listing for folders."""
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _is_train_image(member: tarfile.TarInfo) -> bool:
    # The loader's rule (loader._iter_images): a file at .../train/<class>/<file>.
    parts = [p for p in PurePosixPath(member.name).parts if p != "."]
    return member.isfile() and len(parts) >= 3 and parts[-3] == "train"


def _layout_of(path: Path, root: Path) -> tuple[tuple[str, ...], int]:
    """The classes of an ImageFolder directory or archive, and the number of training images."""
    if path.is_dir():
        # Listed afresh each time (a folder may change); scandir's entry types need no stat per image.
        with os.scandir(path / "train") as entries:
            class_dirs = sorted((entry.name, entry.path) for entry in entries if entry.is_dir())
        train_size = 0
        for _, class_dir in class_dirs:
            with os.scandir(class_dir) as entries:
                train_size += sum(1 for entry in entries if entry.is_file())
        return tuple(name for name, _ in class_dirs), train_size
    stat = path.stat()
    index = cache_dir(root) / "classes.json"
    # An archive is read through once per content (size and time of change): what it holds, or why it cannot
    # be used, is kept in the index, so that listing the datasets does not decompress it again.
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    entry = _indexed(index, key) or _scans.run(key, lambda: _indexed(index, key) or _scan_into(index, key, path))
    if "problem" in entry:
        raise DatasetError(entry["problem"])
    return tuple(entry["classes"]), entry["train_size"]


# One scan per archive at a time: listings that arrive together wait for it rather than decompress it again.
_scans = SingleFlight()
_index_lock = threading.Lock()  # the index is read, changed and written back by threads of one process
# What a damaged archive's decompression raises, as opposed to an error of the file system (not kept: a
# file made readable again has the same size and time).
_CONTENT_ERRORS = (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, gzip.BadGzipFile)


def _indexed(index: Path, key: str) -> dict | None:
    """The index's entry for ``key``; entries from before image counts were kept (bare lists) are read again."""
    try:
        entry = json.loads(index.read_text()).get(key) if index.is_file() else None
    except (OSError, ValueError):
        return None  # a damaged index: read the archives again
    return entry if isinstance(entry, dict) else None


def _scan_into(index: Path, key: str, path: Path) -> dict:
    entry = _scan(path)
    try:
        with _index_lock:
            known = json.loads(index.read_text()) if index.is_file() else {}
            known[key] = entry
            index.parent.mkdir(parents=True, exist_ok=True)
            tmp = index.with_name(f".{index.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known))
            tmp.replace(index)
    except (OSError, ValueError):
        pass  # a read-only or damaged cache costs a scan per listing, nothing more
    return entry


def _scan(path: Path) -> dict:
    """``{"classes", "train_size"}`` of an archive, or ``{"problem": why it cannot be used}``."""
    classes: set[str] = set()
    train_size = files = 0
    member = None
    size = path.stat().st_size
    try:
        with open(path, "rb") as raw, tarfile.open(fileobj=raw) as archive:
            try:
                for member in archive:
                    files += 1
                    parts = Path(member.name).parts
                    parts = parts[1:] if parts and parts[0] == "." else parts
                    if "train" in parts[:2]:
                        at = parts.index("train")
                        if len(parts) > at + 2:
                            classes.add(parts[at + 1])
                    train_size += _is_train_image(member)
            except _CONTENT_ERRORS as exc:
                read = raw.tell()
                if read < size:
                    return {"problem": f"{path.name}: corrupt archive at {100 * read // size} % of its {size:,} "
                                       f"bytes, after {files:,} files ({type(exc).__name__}: {exc})"}
                return {"problem": _truncated(path, files)}
            if archive.fileobj is raw and member is not None and member.offset_data + member.size > size:
                # A plain tar cut short: tarfile seeks over a file's data without reading it, and a cut
                # inside a header reads as the archive's end. Its last file then ends after the file does.
                return {"problem": _truncated(path, files)}
    except _CONTENT_ERRORS as exc:
        return {"problem": f"{path.name}: not a readable tar archive ({type(exc).__name__}: {exc})"}
    except OSError as exc:
        raise DatasetError(f"{path.name}: cannot be read ({exc.strerror or exc})") from exc
    if not classes:
        return {"problem": f"{path.name}: no train/<class>/<image> files (ImageFolder layout expected)"}
    return {"classes": sorted(classes), "train_size": train_size}


def _truncated(path: Path, files: int) -> str:
    return f"{path.name}: truncated archive, it ends after {files:,} files (is it still being copied?)"


def validation_error(info: DatasetInfo, subset: int | None, validation: float) -> str | None:
    """Why a validation split cannot be held out of this data (None: it can, as far as is known before loading).
    Holding out needs two training images of each class; a subset gives each class ``subset // classes``."""
    if not validation or subset is None or subset // info.num_classes >= 2:
        return None
    return (f"a validation split needs at least 2 training images per class: subset must be at least "
            f"{2 * info.num_classes} for the {info.num_classes} classes of dataset {info.name!r}")


def list_datasets(root: str | os.PathLike | None = None) -> list[DatasetInfo]:
    """Every dataset here; one that cannot be used (an unreadable archive) too, with its ``problem``."""
    base = data_dir(root)
    infos = [find_dataset(name, base) for name in BUILT_IN]
    for name, path in _local_sources(base).items():
        try:
            infos.append(_local_dataset(name, path, base))
        except DatasetError as exc:
            infos.append(DatasetInfo(name, "imagefolder", (), str(path), False, problem=str(exc)))
    return infos


def find_dataset(name: str, root: str | os.PathLike | None = None) -> DatasetInfo:
    base = data_dir(root)
    if name in GENERATED:
        classes, note = GENERATED[name]
        return DatasetInfo(name, "synthetic", classes, None, True, note, GENERATED_TRAIN_SIZES[name])
    if name in TORCHVISION:
        classes, folder, _, train_size = TORCHVISION[name]
        ready = (base / folder).is_dir()
        note = "" if ready else "downloaded into the data directory on first use (needs internet)"
        return DatasetInfo(name, "torchvision", classes, str(base), ready, note, train_size)
    sources = _local_sources(base)
    if name not in sources:
        names = ", ".join([*BUILT_IN, *sources])
        raise DatasetError(f"dataset {name!r} not found in {base.resolve()}; available: {names}")
    return _local_dataset(name, sources[name], base)


def _local_dataset(name: str, path: Path, root: Path) -> DatasetInfo:
    classes, train_size = _layout_of(path, root)
    return DatasetInfo(name, "imagefolder", classes, str(path), True, train_size=train_size)
