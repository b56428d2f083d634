"""An archive in the data directory that cannot be read (half-copied, damaged, not laid out as ImageFolder):
read through once per content, its reason kept, and the reason shown in the dataset list, the form and the
422; listing the datasets does not decompress it again."""

from __future__ import annotations

import io
import random
import tarfile
from pathlib import Path

import pytest
from page_fixtures import STUDENT_KIND, make_client, well_formed

from kdcore.data import catalog
from kdcore.data.catalog import find_dataset, list_datasets
from kdcore.errors import DatasetError

FILES = 200  # 100 per split, two classes


def write_archive(path: Path, mode: str = "w:xz") -> bytes:
    """An ImageFolder archive of incompressible placeholder files (the catalog reads only their names)."""
    rng = random.Random(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as tar:
        for i in range(FILES):
            data = rng.randbytes(3000)
            member = tarfile.TarInfo(f"{('train', 'test')[i % 2]}/{('cat', 'dog')[i // 2 % 2]}/{i}.jpg")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path.read_bytes()


@pytest.fixture
def scans(monkeypatch):
    """The archives opened for reading (each time, a decompression of the whole file), by file name."""
    counted, original = [], tarfile.open

    def counting_open(name=None, mode="r", fileobj=None, **kwargs):
        if not mode.startswith("w"):
            counted.append(Path(name or fileobj.name).name)
        return original(name, mode, fileobj, **kwargs)

    monkeypatch.setattr(tarfile, "open", counting_open)
    return counted


@pytest.mark.parametrize("suffix, mode", [(".tar.xz", "w:xz"), (".tar.gz", "w:gz"), (".tar", "w")])
def test_a_half_copied_archive_is_listed_with_its_reason_and_read_once(tmp_path, scans, suffix, mode):
    data = tmp_path / "data"
    whole = write_archive(data / f"pets{suffix}", mode)
    (data / f"pets{suffix}").write_bytes(whole[: len(whole) * 9 // 10])
    for _ in range(3):
        pets = next(info for info in list_datasets(data) if info.name == "pets")
        assert pets.problem.startswith(f"pets{suffix}: truncated archive, it ends after ")
        assert pets.problem.endswith(" files (is it still being copied?)")
        assert not pets.ready and pets.classes == ()
        with pytest.raises(DatasetError, match="truncated archive"):
            find_dataset("pets", data)
    assert scans == [f"pets{suffix}"]
    # The copy completes: a new size and time, read again, and usable.
    (data / f"pets{suffix}").write_bytes(whole)
    assert find_dataset("pets", data).classes == ("cat", "dog") and find_dataset("pets", data).problem == ""
    assert scans == [f"pets{suffix}"] * 2


def test_a_damaged_archive_says_where_and_what(tmp_path, scans):
    data = tmp_path / "data"
    damaged = bytearray(write_archive(data / "pets.tar.xz"))
    middle = len(damaged) // 2
    damaged[middle:middle + 64] = bytes(64)
    (data / "pets.tar.xz").write_bytes(bytes(damaged))
    listed = {info.name: info.problem for info in list_datasets(data)}
    assert listed["pets"].startswith("pets.tar.xz: corrupt archive at ")
    assert "% of its" in listed["pets"] and listed["pets"].endswith("(LZMAError: Corrupt input data)")
    percent = int(listed["pets"].split(" at ")[1].split(" %")[0])
    assert 30 <= percent <= 70
    assert not any(problem for name, problem in listed.items() if name != "pets")


def test_an_archive_without_the_layout_is_read_once(tmp_path, scans):
    data = tmp_path / "data"
    data.mkdir()
    with tarfile.open(data / "flat.tar", "w") as tar:
        member = tarfile.TarInfo("x.txt")
        member.size = 5
        tar.addfile(member, io.BytesIO(b"hello"))
    for _ in range(2):
        with pytest.raises(DatasetError, match=r"flat.tar: no train/<class>/<image> files \(ImageFolder layout"):
            find_dataset("flat", data)
    assert scans == ["flat.tar"]


def test_a_file_system_error_is_not_kept(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_archive(data / "pets.tar.xz")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(catalog, "open", denied, raising=False)  # the module's own name wins over the builtin
    with pytest.raises(DatasetError, match="pets.tar.xz: cannot be read \\(Permission denied\\)"):
        find_dataset("pets", data)
    monkeypatch.delattr(catalog, "open")
    assert find_dataset("pets", data).classes == ("cat", "dog")


def test_the_api_the_form_and_the_422_say_why(tmp_path, scans):
    whole = write_archive(tmp_path / "data" / "cifar10-jpg.tar.xz")
    (tmp_path / "data" / "cifar10-jpg.tar.xz").write_bytes(whole[: len(whole) // 2])
    with make_client(tmp_path) as client:
        listed = {item["name"]: item for item in client.get("/api/datasets").json()["items"]}
        reason = listed["cifar10-jpg"]["problem"]
        assert reason.startswith("cifar10-jpg.tar.xz: truncated archive") and listed["cifar10-jpg"]["ready"] is False
        assert listed["synthetic"]["problem"] == ""
        assert "path" not in listed["cifar10-jpg"]

        doc = well_formed(client.get("/launch").text)
        option = next(o for o in doc.by_id("in-dataset").find_all("option") if o.attrs["value"] == "cifar10-jpg")
        assert option.text() == "cifar10-jpg · unreadable" and option.attrs["data-note"] == reason

        refused = client.post("/api/runs", json={"kind": STUDENT_KIND, "dataset": "cifar10-jpg"})
        assert refused.status_code == 422
        assert {"loc": ["body", "dataset"], "msg": f"dataset 'cifar10-jpg' cannot be used: {reason}",
                "type": "dataset"} in refused.json()["detail"]
        assert client.post("/api/runs", json={"kind": STUDENT_KIND, "dataset": "synthetic"}).status_code == 201
        form = client.post("/launch", data={"kind": STUDENT_KIND, "dataset": "cifar10-jpg"})
        assert reason in well_formed(form.text).by_id("err-dataset").text()
    assert scans == ["cifar10-jpg.tar.xz"]
