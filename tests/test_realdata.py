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
    from kdcore.training.engine import train

    teacher = train(RunConfig(kind="teacher", dataset="cifar10-jpg", subset=300, epochs=1, device="cpu"),
                    out_dir=tmp_path / "t", data_root=cifar_dir)
    student = train(RunConfig(kind="kd", dataset="cifar10-jpg", subset=1000, epochs=2, device="cpu"),
                    out_dir=tmp_path / "kd", data_root=cifar_dir, teacher_checkpoint=teacher.checkpoint)
    assert student.final_accuracy > 0.15 and all(np.isfinite(m.train_loss) for m in student.epochs)


@pytest.fixture(scope="module")
def real_resnet_teacher(cifar_dir, tmp_path_factory):
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("resnet-teacher")
    result = subprocess.run([sys.executable, "-m", "kdcore.cli", "train", "teacher", "--arch", "resnet20",
                             "--dataset", "cifar10-jpg", "--data-dir", str(cifar_dir), "--subset", "500",
                             "--epochs", "1", "--batch-size", "100", "--device", "cpu", "--out", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return out / "checkpoint.pt"


@pytest.mark.parametrize("kind", ["dkd", "at", "pkt", "rkd", "dist"])
def test_each_new_method_trains_from_the_cli_on_real_images(kind, cifar_dir, real_resnet_teacher, tmp_path):
    import json
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "kdcore.cli", "train", kind, "--arch", "resnet20",
                             "--teacher", str(real_resnet_teacher), "--dataset", "cifar10-jpg", "--data-dir",
                             str(cifar_dir), "--subset", "500", "--epochs", "1", "--batch-size", "100", "--device",
                             "cpu", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["kind"] == kind and summary["parameters"] == 278_324 - 90 * 65
    metrics = json.loads((tmp_path / "metrics.json").read_text())[0]
    assert np.isfinite(metrics["train_loss"]) and all(np.isfinite(v) for v in metrics["train_terms"].values())
