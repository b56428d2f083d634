"""On the real CIFAR-10 JPEG archive from ../shared (skipped when it is absent)."""

import io
import tarfile

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def cifar_dir(real_archive, tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    (root / "cifar10-jpg.tar.xz").symlink_to(real_archive)
    return root


def test_archive_decodes_to_the_full_splits_with_exact_pixels(cifar_dir, real_archive):
    from kdcore.data.loader import load_dataset

    data = load_dataset("cifar10-jpg", cifar_dir)
    assert data.classes[:3] == ("airplane", "automobile", "bird") and data.num_classes == 10
    assert data.train_x.shape == (50000, 3, 32, 32) and data.test_x.shape == (10000, 3, 32, 32)
    assert np.bincount(data.train_y).tolist() == [5000] * 10 and np.bincount(data.test_y).tolist() == [1000] * 10
    with tarfile.open(real_archive) as archive:
        member = next(m for m in archive if m.isfile() and "/test/" in f"/{m.name}" and m.name.endswith(".jpg"))
        expected = np.asarray(Image.open(io.BytesIO(archive.extractfile(member).read())).convert("RGB"))
        label = data.classes.index(member.name.split("/")[-2])
    matches = [i for i in np.flatnonzero(data.test_y == label) if np.array_equal(data.test_x[i], expected.transpose(2, 0, 1))]
    assert matches, "a decoded test image equals PIL's decoding of the archive member"


def test_a_short_kd_run_on_real_images(cifar_dir, tmp_path):
    from kdcore.config import RunConfig
    from kdcore.engine import train

    teacher = train(RunConfig(kind="teacher", dataset="cifar10-jpg", subset=300, epochs=1, device="cpu"),
                    out_dir=tmp_path / "t", data_root=cifar_dir)
    student = train(RunConfig(kind="kd", dataset="cifar10-jpg", subset=1000, epochs=2, device="cpu"),
                    out_dir=tmp_path / "kd", data_root=cifar_dir, teacher_checkpoint=teacher.checkpoint)
    assert student.final_accuracy > 0.15 and all(np.isfinite(m.train_loss) for m in student.epochs)
