"""Data migrations run at start-up, after the schema upgrade (app.db). Each is idempotent.

Runs stored before methods and architectures became plugins hold flat configs (``temperature``,
``ce_weight`` and ``distill_weight`` beside the other fields, no ``architecture``). RunConfig reads them
still; rewriting them once in today's shape keeps every reader (pages, exports, the worker) on one form.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError
from sqlalchemy import Engine, update
from sqlmodel import Session, select

from app.models import Run
from kdcore.config import RunConfig

log = logging.getLogger(__name__)
BATCH = 500


def migrate_run_configs(engine: Engine) -> int:
    """Rewrite the configs of runs that have no ``architecture`` column yet. Returns how many changed."""
    changed, after = 0, 0
    with Session(engine) as session:
        while True:
            # By id, so that a row left as it was (a method no longer installed) is not fetched again.
            rows = session.exec(select(Run.id, Run.config).where(Run.architecture.is_(None), Run.id > after)
                                .order_by(Run.id).limit(BATCH)).all()
            if not rows:
                return changed
            for run_id, stored in rows:
                after = run_id
                try:
                    config = RunConfig.model_validate(stored)
                except ValidationError as exc:
                    log.warning("run %s keeps its stored config, which no longer validates: %s", run_id,
                                exc.errors()[0]["msg"])
                    continue
                session.execute(update(Run).where(Run.id == run_id)
                                .values(config=config.to_json_dict(), architecture=config.architecture))
                changed += 1
            session.commit()
