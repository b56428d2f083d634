"""The architecture catalog's disk copy is keyed by a plugin's source, not only its name and version: an
editable install whose network was edited is described again, and its runs get the new tap shapes."""

from __future__ import annotations

import pytest

import kdcore.architectures as architectures
import kdcore.architectures.shapes  # noqa: F401  (torch: networks are described in this process)
from tests.plugin_install import install_plugin

NETWORK = """
    import torch
    from torch import nn

    class Edited(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.stage1 = nn.Conv2d(3, 8, 3, padding=1)
            self.classifier = nn.Linear(8, num_classes)

        def forward(self, x):
            stage1 = self.stage1(x)
            return self.classifier(stage1.mean((2, 3))), {"stage1": stage1}

    ARCHITECTURES = {"edited_cnn": (Edited, "one conv")}
"""


@pytest.fixture(autouse=True)
def fingerprint_of_this_process():
    """The fingerprint computed here (with the built-in networks left out) must not outlive the test."""
    yield
    architectures._fingerprint.cache_clear()


def _new_process_catalog(monkeypatch) -> dict:
    # What a new process starts with: no fingerprint, no catalog in memory, the plugin not yet imported.
    architectures._fingerprint.cache_clear()
    monkeypatch.setattr(architectures, "_catalogs", {})
    return architectures.catalog(10)


def test_an_edited_plugin_network_is_described_again(tmp_path, monkeypatch):
    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(site))
    # The built-in networks left out, so that only the plugin's is described (here, where torch is loaded).
    monkeypatch.setattr(architectures, "__path__", [str(tmp_path / "no-built-in-networks")])
    monkeypatch.setenv("KD_CACHE_DIR", str(tmp_path / "cache"))
    points = {"kdcore.architectures": {"edited_cnn": "kd_edited_plugin.network"}}
    install_plugin(site, "kd_edited_plugin", {"network": NETWORK}, points)
    assert _new_process_catalog(monkeypatch)["edited_cnn"]["taps"] == {"stage1": [8, 32, 32]}
    # Edited in place, same version, same file size: only the contents tell.
    edited = NETWORK.replace("nn.Conv2d(3, 8,", "nn.Conv2d(3, 9,").replace("nn.Linear(8,", "nn.Linear(9,")
    install_plugin(site, "kd_edited_plugin", {"network": edited}, points)
    assert _new_process_catalog(monkeypatch)["edited_cnn"]["taps"] == {"stage1": [9, 32, 32]}


def test_a_plugin_network_that_cannot_run_is_left_out_not_the_catalog(tmp_path, monkeypatch, caplog):
    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(architectures, "__path__", [str(tmp_path / "no-built-in-networks")])
    monkeypatch.setenv("KD_CACHE_DIR", str(tmp_path / "cache"))
    broken = NETWORK.replace('"edited_cnn": (Edited, "one conv")', '"broken_cnn": (Broken, "fails")').replace(
        "stage1 = self.stage1(x)", "stage1 = self.stage1(x[:, :2])").replace("class Edited", "class Broken")
    install_plugin(site, "kd_two_networks", {"network": NETWORK, "broken": broken},
                   {"kdcore.architectures": {"edited_cnn": "kd_two_networks.network",
                                             "broken_cnn": "kd_two_networks.broken"}})
    described = _new_process_catalog(monkeypatch)
    assert list(described) == ["edited_cnn"]
    [warning] = [r.getMessage() for r in caplog.records if r.name == architectures.__name__]
    assert warning.startswith("kdcore.architectures plugin network 'broken_cnn' left out: it fails at 10 classes: ")
