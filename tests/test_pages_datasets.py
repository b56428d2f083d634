"""Which dataset the launch and seed-experiment forms preselect, given what the data directory holds."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from page_fixtures import STUDENT_KIND, make_client, well_formed



def write_tiny_imagefolder(archive: Path) -> None:
    # The catalog reads only the member names to list classes, so placeholder bytes are enough here.
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:xz") as tar:
        for split in ("train", "test"):
            for label in ("cat", "dog"):
                data = b"not decoded by the catalog"
                member = tarfile.TarInfo(f"{split}/{label}/0.jpg")
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))


def selected(doc, form_id: str) -> tuple[str, str]:
    prefix = "" if form_id == "launch-form" else "exp-"
    field = doc.by_id(form_id).find(class_="field", id=f"{prefix}field-dataset")
    option = field.find("option", selected=True)
    help_node = field.find(class_="help")
    return option.attrs["value"], help_node.text() if help_node and "hidden" not in help_node.attrs else ""


def forms(tmp_path: Path) -> dict[str, tuple[str, str]]:
    with make_client(tmp_path) as client:
        doc = well_formed(client.get("/launch").text)
        return {form: selected(doc, form) for form in ("launch-form", "experiment")}


@pytest.mark.parametrize("form", ["launch-form", "experiment"])
def test_offline_without_local_data_keeps_cifar10_and_says_it_downloads(tmp_path, form):
    value, note = forms(tmp_path)[form]
    assert value == "cifar10"
    assert "needs internet" in note


@pytest.mark.parametrize("form", ["launch-form", "experiment"])
def test_a_local_imagefolder_archive_is_preselected_when_cifar10_is_not_downloaded(tmp_path, form):
    write_tiny_imagefolder(tmp_path / "data" / "tiny-jpg.tar.xz")
    value, note = forms(tmp_path)[form]
    assert value == "tiny-jpg"
    assert "local images" in note


def test_a_downloaded_cifar10_stays_the_default(tmp_path):
    write_tiny_imagefolder(tmp_path / "data" / "tiny-jpg.tar.xz")
    (tmp_path / "data" / "cifar-10-batches-py").mkdir()
    assert {form: value for form, (value, _) in forms(tmp_path).items()} == {"launch-form": "cifar10",
                                                                               "experiment": "cifar10"}


def test_each_dataset_option_carries_its_note_and_the_api_keeps_runconfigs_default(tmp_path):
    write_tiny_imagefolder(tmp_path / "data" / "tiny-jpg.tar.xz")
    with make_client(tmp_path) as client:
        doc = well_formed(client.get("/launch").text)
        options = {o.attrs["value"]: o.attrs.get("data-note") for o in doc.by_id("in-dataset").find_all("option")}
        assert "generated" in options["synthetic"] and "needs internet" in options["cifar10"]
        assert "local images" in options["tiny-jpg"]
        created = client.post("/api/runs", json={"kind": STUDENT_KIND})
        assert created.status_code == 201 and created.json()["config"]["dataset"] == "cifar10"
        # A form posted with the preselected dataset trains on it.
        launched = client.post("/launch", data={"kind": STUDENT_KIND, "dataset": selected(doc, "launch-form")[0]},
                               follow_redirects=False)
        run_id = int(launched.headers["location"].rsplit("/", 1)[1])
        assert client.get(f"/api/runs/{run_id}").json()["dataset"] == "tiny-jpg"
