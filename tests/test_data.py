"""Datasets by name: generated, image folders, archives, subsets, and clear failures."""

import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kdcore.data import catalog
from kdcore.data.loader import load_dataset
from kdcore.errors import DatasetError


def _write_imagefolder(root: Path, size=(32, 32), classes=("cat", "dog", "eel"), per_class=(6, 2)) -> Path:
    rng = np.random.default_rng(0)
    for split, count in zip(("train", "test"), per_class):
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.full((size[1], size[0], 3), 40 * label, dtype=np.uint8) + rng.integers(0, 20, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


def test_synthetic_is_deterministic_and_balanced():
    first, second = load_dataset("synthetic"), load_dataset("synthetic")
    assert first.train_x.shape == (2000, 3, 32, 32) and first.test_x.shape == (500, 3, 32, 32)
    assert np.array_equal(first.train_x, second.train_x)
    assert np.bincount(first.train_y).tolist() == [200] * 10


def test_imagefolder_directory_and_archive(tmp_path):
    folder = _write_imagefolder(tmp_path / "pets")
    archive = tmp_path / "pets2.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder / "train", arcname="train")
        tar.add(folder / "test", arcname="test")
    names = [info.name for info in catalog.list_datasets(tmp_path)]
    assert {"synthetic", "cifar10", "pets", "pets2"} <= set(names)
    from_dir, from_tar = load_dataset("pets", tmp_path), load_dataset("pets2", tmp_path)
    assert from_dir.classes == from_tar.classes == ("cat", "dog", "eel")
    assert from_dir.train_x.shape == (18, 3, 32, 32) and from_dir.test_x.shape == (6, 3, 32, 32)
    assert np.array_equal(from_dir.train_x, from_tar.train_x)
    # Pixels survive decoding exactly (PNG is lossless).
    expected = np.asarray(Image.open(folder / "train" / "dog" / "0000.png")).transpose(2, 0, 1)
    assert np.array_equal(from_dir.train_x[6], expected)
    # The second load comes from the uint8 cache keyed by the archive's hash.
    assert list((tmp_path / ".kdcache").glob("pets2-*.npz"))
    assert np.array_equal(load_dataset("pets2", tmp_path).train_x, from_tar.train_x)


def test_larger_images_are_resized_and_say_so(tmp_path):
    _write_imagefolder(tmp_path / "big", size=(64, 48))
    dataset = load_dataset("big", tmp_path)
    assert dataset.train_x.shape[1:] == (3, 32, 32)
    assert "resized" in dataset.note and "64×48" in dataset.note


def test_subset_is_stratified_with_the_same_test_fraction():
    subset = load_dataset("synthetic", subset=500)
    assert np.bincount(subset.train_y).tolist() == [50] * 10
    assert np.bincount(subset.test_y).tolist() == [12] * 10  # a quarter of 50 per class, rounded
    assert np.array_equal(subset.train_x, load_dataset("synthetic", subset=500).train_x)
    with pytest.raises(DatasetError, match="subset"):
        load_dataset("synthetic", subset=5)


def test_missing_dataset_names_what_exists(tmp_path):
    with pytest.raises(DatasetError, match="'nope' not found.*synthetic, synthetic100, cifar10, cifar100"):
        load_dataset("nope", tmp_path)


def test_cifar10_offline_fails_with_a_clear_message(tmp_path, monkeypatch):
    import torchvision.datasets

    def unreachable(*args, **kwargs):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", unreachable)
    with pytest.raises(DatasetError, match="could not be downloaded.*cifar10-jpg"):
        load_dataset("cifar10", tmp_path)


def test_archive_without_layout_is_rejected(tmp_path):
    bad = tmp_path / "flat.tar"
    (tmp_path / "x.txt").write_text("hello")
    with tarfile.open(bad, "w") as tar:
        tar.add(tmp_path / "x.txt", arcname="x.txt")
    with pytest.raises(DatasetError, match="ImageFolder layout"):
        load_dataset("flat", tmp_path)
