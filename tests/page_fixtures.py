"""Helpers for the page tests and the page benchmark: a small HTML tree, and stored runs without training.

The tree is built with the standard library's html.parser; it also records unbalanced tags, so
tests can check that every page is well-formed rather than matching substrings.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.main import create_app
from app.settings import Settings
from app.store.db import new_session
from app.store.models import Epoch, Experiment, Run, utcnow
from kdcore.config import RunConfig
from kdcore.registry import METHODS
from kdcore.studies.study import baseline_key, group_key
from tests.app_fixtures import TEST_CLIENT_HOST

TEACHER_KIND = next(k for k, m in METHODS.items() if m.teaches)
STUDENT_KIND = next(k for k, m in METHODS.items() if not m.teaches and not m.needs_teacher)
KD_KINDS = [k for k, m in METHODS.items() if m.needs_teacher]

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: "Node | None" = None):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join(" ".join(parts).split())

    def iter(self):
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.iter()

    def find_all(self, tag: str | None = None, class_: str | None = None, **attrs: str | bool) -> list["Node"]:
        found = []
        for node in self.iter():
            if tag and node.tag != tag:
                continue
            if class_ and class_ not in node.classes:
                continue
            if all((name.replace("_", "-") in node.attrs) if want is True else
                   node.attrs.get(name.replace("_", "-")) == want for name, want in attrs.items()):
                found.append(node)
        return found

    def find(self, tag: str | None = None, class_: str | None = None, **attrs) -> "Node | None":
        nodes = self.find_all(tag, class_, **attrs)
        return nodes[0] if nodes else None

    def by_id(self, element_id: str) -> "Node":
        node = self.find(id=element_id)
        assert node is not None, f"no element with id {element_id!r}"
        return node

    def __repr__(self) -> str:
        return f"<{self.tag} {self.attrs}>"


class _TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.current = self.root
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Node(tag, dict(attrs), self.current))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if self.current.tag != tag:
            self.errors.append(f"</{tag}> closes <{self.current.tag}> at line {self.getpos()[0]}")
            node = self.current
            while node is not None and node.tag != tag:
                node = node.parent
            if node is None:
                return
            self.current = node
        self.current = self.current.parent or self.root

    def handle_data(self, data):
        self.current.children.append(data)


def parse_html(html: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    if builder.current is not builder.root:
        builder.errors.append(f"<{builder.current.tag}> never closed")
    builder.root.errors = builder.errors  # type: ignore[attr-defined]
    return builder.root


def well_formed(html: str) -> Node:
    doc = parse_html(html)
    assert doc.errors == [], doc.errors  # type: ignore[attr-defined]
    return doc


def make_settings(tmp: Path) -> Settings:
    return Settings(db_url=f"sqlite:///{tmp / 'kd.sqlite'}", data_dir=tmp / "data", runs_dir=tmp / "runs",
                    allowed_hosts=(TEST_CLIENT_HOST,))


def make_client(tmp: Path) -> TestClient:
    return TestClient(create_app(make_settings(tmp)))


@pytest.fixture
def client(tmp_path):
    with make_client(tmp_path) as client:
        yield client


@pytest.fixture
def db(client):
    with session_of(client) as session:
        yield session


def session_of(client: TestClient) -> Session:
    app = client.app
    return new_session(app.state.engine, app.state.settings)


def add_run(session: Session, kind: str, *, status: str = "completed", accuracy: float | None = 0.5,
            parameters: int | None = None, teacher: int | None = None, epochs: int = 3,
            experiment: int | None = None, error: str | None = None, study: int | None = None,
            dataset: str = "synthetic", **config) -> Run:
    """Store a run as the worker would leave it, with one epoch row per finished epoch. Runs given the same
    ``config`` (seed aside) and the same teacher configuration are replicates: one leaderboard group."""
    cfg = RunConfig(kind=kind, dataset=dataset, subset=200, epochs=epochs, device="cpu", **config)
    finished = status == "completed"
    done_epochs = epochs if finished else (1 if status == "running" else 0)
    if parameters is None:
        parameters = 1_200_000 if METHODS[kind].teaches else 300_000
    # Replicates share a group key, as app.runs.service.new_run gives them (the teacher's own key inside).
    teacher_run = session.get(Run, teacher) if teacher is not None else None
    teacher_key = teacher_run.group_key if teacher_run else None
    run = Run(kind=kind, status=status, config=cfg.to_json_dict(), dataset=cfg.dataset, epochs=cfg.epochs,
              architecture=cfg.architecture, seed=cfg.seed, group_key=group_key(cfg, teacher_key),
              baseline_key=baseline_key(cfg),
              teacher_run_id=teacher, experiment_id=experiment, study_id=study,
              num_classes=10, error=error, created_at=utcnow(), started_at=utcnow() if status != "queued" else None,
              finished_at=utcnow() if status in ("completed", "failed", "cancelled") else None,
              parameters=parameters if finished else None, final_accuracy=accuracy if finished else None,
              best_accuracy=accuracy if finished else None, best_epoch=epochs if finished else None,
              train_seconds=12.5 if finished else None, checkpoint="/nonexistent/checkpoint.pt" if finished else None)
    if status == "running":
        run.worker, run.heartbeat_at = "test:0:cpu", utcnow()
        run.progress_epoch, run.progress_epochs, run.progress_step, run.progress_steps = 2, epochs, 5, 10
        run.progress_at, run.eta_seconds = utcnow(), 30.0
    session.add(run)
    session.commit()
    for n in range(1, done_epochs + 1):
        add_epoch(session, run, n, accuracy=(accuracy or 0.5) * n / max(done_epochs, 1))
    return run


def add_epoch(session: Session, run: Run, n: int, accuracy: float = 0.5) -> Epoch:
    terms = {term: 2.0 / n + i * 0.1 for i, term in enumerate(METHODS[run.kind].loss_terms)}
    epoch = Epoch(run_id=run.id, epoch=n, train_loss=sum(terms.values()), train_terms=terms, test_loss=2.1 / n,
                  test_accuracy=accuracy, seconds=1.0, images_per_sec=200.0)
    session.add(epoch)
    session.commit()
    return epoch


def read_events(lines) -> list[tuple[str, str, str | None]]:
    """Parse server-sent events from an iterator of lines, up to and including "end"."""
    events, event, data, event_id = [], None, [], None
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line.startswith("id: "):
            event_id = line[4:]
        elif line == "" and event:
            events.append((event, "\n".join(data), event_id))
            if event == "end":
                return events
            event, data, event_id = None, [], None
    return events


def read_until(lines, event: str) -> str:
    """The stream's text from an iterator of its lines up to the end of its first ``event`` message; the
    iterator goes on from there."""
    seen = []
    for line in lines:
        seen.append(line)
        if line == "" and any(s == f"event: {event}" for s in seen):
            break
    return "\n".join(seen)


def add_experiment(session: Session) -> Experiment:
    experiment = Experiment(dataset="synthetic", subset=200, overrides={})
    session.add(experiment)
    session.commit()
    return experiment
