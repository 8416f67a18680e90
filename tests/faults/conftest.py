"""Fixtures of the fault tests: the whole system as processes over PostgreSQL."""
from __future__ import annotations

from typing import Iterator

import pytest

from activities.store import open_store
from api.auth import Tokens
from api.db import Database
from api.idempotency import IdempotencyKeys
from projections.runner import ReadModels
from tests.faults.system import System


def create_tables() -> None:
    """Every table, made here first: processes starting side by side on a fresh database
    would race PostgreSQL's CREATE TABLE IF NOT EXISTS (a unique violation in pg_type)."""
    from activities.outbox import Outbox

    for part in (open_store(), ReadModels(), Outbox()):
        part.close()
    db = Database()
    try:
        Tokens(db)
        IdempotencyKeys(db)
    finally:
        db.close()


@pytest.fixture
def system(tmp_path, use_store) -> Iterator[System]:
    """The dev server, worker, API and projection runner up, over a fresh PostgreSQL store;
    on a failure each process's log is in the test's data directory."""
    use_store("postgres")
    create_tables()
    system = System(tmp_path)
    try:
        system.start_all()
        yield system
    finally:
        system.close()


@pytest.fixture
def tokens(system: System) -> dict[str, str]:
    db = Database()
    try:
        return {staff: Tokens(db).issue(staff) for staff in ("C001", "S001", "E001")}
    finally:
        db.close()


@pytest.fixture
def store(system: System):
    app = open_store()
    models = ReadModels()
    yield app, models
    models.close()
    app.close()
