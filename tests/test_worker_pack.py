"""The worker's packs (--pack N, KD_PACK): compatible queued runs train together in one child
(kdcore.training.packing.trainer), and each keeps its own row, epochs, progress, cancel and ending."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlmodel import select

from app.executors.local.pool import WorkerPool
from app.settings import Settings
from app.store.models import Run
from app.store.queue import claim_next, claim_pack_mates
from kdcore.config import RunConfig
from kdcore.training.packing.key import pack_key
from tests.app_fixtures import SYNTHETIC_RUN, app, app_settings, client, session, wait_for  # noqa: F401

FINISHED = ("completed", "failed", "cancelled")
# Epochs enough for a cancel sent after the first to land before the last: an epoch of this pack takes
# about 0.05 s on the 2-core VM.
PACKED_RUN = {**SYNTHETIC_RUN, "kind": "student", "subset": 300, "epochs": 40, "batch_size": 20}


def _queue(client, **body) -> int:
    response = client.post("/api/runs", json={**PACKED_RUN, **body})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _run(client, run_id) -> dict:
    return client.get(f"/api/runs/{run_id}").json()


def _epochs(client, run_id) -> list[int]:
    return [e["epoch"] for e in client.get(f"/api/runs/{run_id}/epochs").json()["items"]]


def _add(session, config: RunConfig, **fields) -> int:
    run = Run(kind=config.kind, config=config.to_json_dict(), architecture=config.architecture, **fields)
    session.add(run)
    session.commit()
    return run.id


def test_pack_mates_share_the_pack_key_are_ready_and_not_resuming(session):
    base = dict(dataset="synthetic", subset=100, epochs=1, device="cpu", batch_size=50)
    first = _add(session, RunConfig(kind="student", seed=1, **base))
    teacher = _add(session, RunConfig(kind="teacher", seed=1, **{**base, "architecture": "seed_teacher"}))
    waiting = _add(session, RunConfig(kind="kd", seed=2, **base), teacher_run_id=teacher)  # its teacher is queued
    other_batch = _add(session, RunConfig(kind="student", seed=3, **{**base, "batch_size": 25}))
    resuming = _add(session, RunConfig(kind="student", seed=4, **base), resume=True)
    done = _add(session, RunConfig(kind="teacher", seed=2, **{**base, "architecture": "seed_teacher"}),
                status="completed")
    kd = _add(session, RunConfig(kind="kd", seed=5, params={"temperature": 4.0}, **base), teacher_run_id=done)
    mate = _add(session, RunConfig(kind="student", seed=6, **base))
    claimed = claim_next(session, "w")
    assert claimed.id == first
    # Another method, whose teacher has completed; and the limit holds.
    assert [r.id for r in claim_pack_mates(session, "w", claimed, 1)] == [kd]
    mates = claim_pack_mates(session, "w", claimed, 5)
    assert [r.id for r in mates] == [mate] and mates[0].status == "running" and mates[0].worker == "w"
    statuses = dict(session.exec(select(Run.id, Run.status)).all())
    assert [statuses[i] for i in (teacher, waiting, other_batch, resuming)] == ["queued"] * 4
    assert claim_pack_mates(session, "w", claimed, 0) == []


def test_three_runs_train_packed_one_cancelled_midway_the_others_complete(client, app, app_settings):
    ids = [_queue(client, seed=seed) for seed in (1, 2, 3)]
    alone = _queue(client, seed=4, batch_size=25)  # another batch size: it cannot join their pack
    pool = WorkerPool(replace(app_settings, pack=3), gpus=[], engine=app.state.engine)
    assert [slot.pack for slot in pool.slots] == [3]
    pool.start()
    try:
        # One CPU slot: three runs running at once can only be one pack.
        wait_for(lambda: all(_run(client, i)["status"] == "running" for i in ids), 60, what="the pack to start")
        assert _run(client, alone)["status"] == "queued"
        victim = ids[1]
        wait_for(lambda: _epochs(client, victim), 120, what="a first epoch of the run to cancel")
        assert client.post(f"/api/runs/{victim}/cancel").status_code in (200, 202)
        runs = {i: wait_for(lambda i=i: (r := _run(client, i))["status"] in FINISHED and r, 240,
                            what=f"run {i} to finish") for i in [*ids, alone]}
    finally:
        pool.stop()
    cancelled = runs[victim]
    assert cancelled["status"] == "cancelled" and cancelled["error"] == "cancelled by user"
    assert 1 <= len(_epochs(client, victim)) < PACKED_RUN["epochs"]
    assert cancelled["has_checkpoint"]  # its last finished epoch, for a retry to resume
    for i in (ids[0], ids[2], alone):
        run = runs[i]
        assert run["status"] == "completed", (i, run["error"])
        assert _epochs(client, i) == list(range(1, PACKED_RUN["epochs"] + 1))
        assert run["final_accuracy"] is not None and run["progress"]["fraction"] == 1.0 and run["has_checkpoint"]
    # Each run trained from its own seed: their curves are their own.
    finals = {runs[i]["final_accuracy"] for i in (ids[0], ids[2])}
    losses = {client.get(f"/api/runs/{i}/epochs").json()["items"][0]["train_loss"] for i in (ids[0], ids[2])}
    assert len(losses) == 2, (finals, losses)


def test_pack_size_defaults_per_device_and_reads_kd_pack(monkeypatch, app_settings):
    from app.executors.local.pool import Slot

    class Pool:  # what a Slot reads of its pool
        settings, engine, shutdown = app_settings, None, None

    assert Slot(Pool, "cpu", None).pack == 1 and Slot(Pool, "gpu0", "0").pack == 8
    Pool.settings = replace(app_settings, pack=2)
    assert Slot(Pool, "cpu", None).pack == 2 and Slot(Pool, "gpu0", "0").pack == 2
    monkeypatch.setenv("KD_PACK", "4")
    assert Settings.from_env().pack == 4
    monkeypatch.delenv("KD_PACK")
    assert Settings.from_env().pack is None


def _teacher_run(session, checkpoint) -> int:
    config = RunConfig(kind="teacher", dataset="synthetic", subset=200, epochs=1, device="cpu")
    return _add(session, config, status="completed", checkpoint=str(checkpoint))


def test_a_failing_run_fails_alone_and_its_pack_mates_complete(client, session, app, app_settings,
                                                               teacher_checkpoint):
    # At temperature 1e-40 the soft-target loss is NaN from the first step (see tests/test_sweep.py).
    teacher = _teacher_run(session, teacher_checkpoint)
    base = dict(dataset="synthetic", subset=100, epochs=2, device="cpu", batch_size=50)
    ids = [_add(session, RunConfig(kind="student", seed=1, **base)),
           _add(session, RunConfig(kind="kd", seed=2, params={"temperature": 1e-40}, **base), teacher_run_id=teacher),
           _add(session, RunConfig(kind="kd", seed=3, params={"temperature": 2.0}, **base), teacher_run_id=teacher)]
    configs = [RunConfig.model_validate(session.get(Run, i).config) for i in ids]
    assert len({pack_key(c) for c in configs}) == 1  # so the slot claims all three into one pack
    pool = WorkerPool(replace(app_settings, pack=3), gpus=[], engine=app.state.engine)
    pool.start()
    try:
        runs = [wait_for(lambda i=i: (r := _run(client, i))["status"] in FINISHED and r, 120, what=f"run {i}")
                for i in ids]
    finally:
        pool.stop()
    assert runs[1]["status"] == "failed" and "non-finite" in runs[1]["error"] and not _epochs(client, ids[1])
    for i in (0, 2):
        assert runs[i]["status"] == "completed", runs[i]["error"]
        assert _epochs(client, ids[i]) == [1, 2]


def test_stopping_the_worker_puts_every_run_of_its_pack_back_in_the_queue(client, app, app_settings):
    ids = [_queue(client, seed=seed, epochs=300) for seed in (1, 2)]
    pool = WorkerPool(replace(app_settings, pack=2), gpus=[], engine=app.state.engine)
    pool.start()
    try:
        wait_for(lambda: all(_epochs(client, i) for i in ids), 120, what="a first epoch of each run")
    finally:
        pool.stop()
    for i in ids:
        run = _run(client, i)
        assert run["status"] == "queued" and run["resume"] is True and run["worker"] is None, run
        assert _epochs(client, i)  # kept for the resumed run


def _served_pool(monkeypatch, tmp_path, *argv):
    """The executor ``kd serve ARGV`` would start (no server is started)."""
    import argparse

    import uvicorn

    import app.main
    from app import cli

    made = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: None)
    monkeypatch.setattr(app.main, "create_app", lambda settings, worker_pool=None: made.append(worker_pool))
    monkeypatch.setenv("KD_DB_URL", f"sqlite:///{tmp_path / 'kd.sqlite'}")
    parser = argparse.ArgumentParser()
    cli.register_serve(parser.add_subparsers())
    args = parser.parse_args(["serve", *argv])
    assert args.func(args) == 0
    return made[0]


def test_serve_pack_flag_reaches_the_slots(monkeypatch, tmp_path):
    pool = _served_pool(monkeypatch, tmp_path, "--gpus", "", "--pack", "3")
    assert pool.settings.pack == 3 and [slot.pack for slot in pool.slots] == [3]
    monkeypatch.setenv("KD_PACK", "2")
    assert [slot.pack for slot in _served_pool(monkeypatch, tmp_path, "--gpus", "").slots] == [2]
    with pytest.raises(SystemExit):
        _served_pool(monkeypatch, tmp_path, "--gpus", "", "--pack", "0")


def test_a_run_with_a_pre_stage_claims_no_pack_mates_and_is_claimed_by_none(session):
    # A pre-stage trains other parameters for other epochs than a pack's one step (kdcore.training.packing.key).
    base = dict(dataset="synthetic", subset=100, epochs=1, device="cpu", batch_size=50)
    done = _add(session, RunConfig(kind="teacher", seed=1, **{**base, "architecture": "seed_teacher"}),
                status="completed")
    plain = _add(session, RunConfig(kind="kd", seed=1, **base), teacher_run_id=done)
    staged = _add(session, RunConfig(kind="fsp", seed=2, **base), teacher_run_id=done)
    other_staged = _add(session, RunConfig(kind="fsp", seed=3, **base), teacher_run_id=done)
    other_plain = _add(session, RunConfig(kind="kd", seed=4, **base), teacher_run_id=done)
    first = claim_next(session, "w")
    assert first.id == plain and [r.id for r in claim_pack_mates(session, "w", first, 5)] == [other_plain]
    second = claim_next(session, "w")
    assert second.id == staged and claim_pack_mates(session, "w", second, 5) == []
    assert claim_next(session, "w").id == other_staged
