"""Describing the networks for a class count takes a subprocess of seconds: one description per count at
a time, the callers of a count waiting for it, and nobody waiting on another count (a launch, which
validates against the 10-class catalog, was held 30 s by eight look-ups of other counts). Only the class
counts of the datasets here are described."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

import kdcore.architectures as architectures
from app.main import create_app
from app.settings import Settings
from kdcore.flights import SingleFlight
from tests.app_fixtures import TEST_CLIENT_HOST

DESCRIBED = {"tutorial_student": {"description": "a CNN", "parameters": 1000, "taps": {"feat": [8, 4, 4]},
                                  "flops": 5000, "macs": 2500}}


def test_one_computation_per_key_and_none_waits_on_another_key():
    flights, calls, release = SingleFlight(), [], threading.Event()
    results = {}

    def slow():
        calls.append("slow")
        release.wait(10)
        return "slow result"

    waiters = [threading.Thread(target=lambda i=i: results.__setitem__(i, flights.run("a", slow))) for i in range(3)]
    for thread in waiters:
        thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    assert flights.run("b", lambda: "other") == "other"  # while "a" is still being computed
    assert time.monotonic() - started < 1
    release.set()
    for thread in waiters:
        thread.join(10)
    assert results == {0: "slow result", 1: "slow result", 2: "slow result"} and calls == ["slow"]


def test_a_failure_reaches_the_waiters_and_is_not_kept():
    flights, release = SingleFlight(), threading.Event()
    errors = []

    def failing():
        release.wait(10)
        raise RuntimeError("describing failed")

    def call():
        try:
            flights.run("k", failing)
        except RuntimeError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    release.set()
    for thread in threads:
        thread.join(10)
    assert errors == ["describing failed"] * 2
    assert flights.run("k", lambda: "again") == "again"


@pytest.fixture
def slow_describer(monkeypatch):
    """The catalog with a describer that holds 7 classes until released, and counts its calls."""
    calls, release = [], threading.Event()

    def describe(fingerprint, num_classes):
        calls.append(num_classes)
        if num_classes == 7:
            release.wait(20)
        return {name: {**info, "parameters": info["parameters"] + num_classes} for name, info in DESCRIBED.items()}

    monkeypatch.setattr(architectures, "_catalogs", {})
    monkeypatch.setattr(architectures, "_load_or_describe", describe)
    yield calls, release
    release.set()


def test_a_count_being_described_holds_up_neither_another_count_nor_validation(slow_describer):
    calls, release = slow_describer
    seven = [threading.Thread(target=architectures.catalog, args=(7,)) for _ in range(4)]
    for thread in seven:
        thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    assert architectures.catalog(10)["tutorial_student"]["parameters"] == 1010
    assert architectures.names() == ("tutorial_student",)  # what RunConfig validates architectures against
    assert time.monotonic() - started < 1
    release.set()
    for thread in seven:
        thread.join(10)
    assert sorted(calls) == [7, 10]  # four callers of 7 classes, one description


def _client(tmp_path, class_counts=()):
    data = tmp_path / "data"
    for count in class_counts:
        for label in range(count):
            (data / f"classes{count}" / "train" / f"c{label}").mkdir(parents=True)
            (data / f"classes{count}" / "test" / f"c{label}").mkdir(parents=True)
    return TestClient(create_app(Settings(db_url=f"sqlite:///{tmp_path / 'kd.sqlite'}", data_dir=data,
                                          runs_dir=tmp_path / "runs", allowed_hosts=(TEST_CLIENT_HOST,))))


def test_only_the_class_counts_of_datasets_here_are_described(tmp_path, slow_describer):
    calls, release = slow_describer
    release.set()
    with _client(tmp_path, class_counts=(7,)) as client:
        for count in (7, 100, 10):
            response = client.get("/api/architectures", params={"num_classes": count})
            assert response.status_code == 200 and response.json()["num_classes"] == count
        refused = client.get("/api/architectures", params={"num_classes": 37})
        assert refused.status_code == 422
        assert refused.json()["detail"] == [{
            "loc": ["query", "num_classes"], "type": "num_classes",
            "msg": "no dataset here has 37 classes; the datasets' class counts are 7, 10, 100"}]
        assert client.get("/api/architectures", params={"num_classes": 1}).status_code == 422
    assert 37 not in calls and sorted(set(calls)) == [7, 10, 100]
