"""Shared fixtures: the real DS-1000 file, the real configs, the grading interpreter when it exists."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from spark_eval.config import PROJECT_ROOT, compose_config, register_configs
from spark_eval.data.ds1000 import read_dataset
from spark_eval.execution.isolation import bwrap_works

CONF_DIR = PROJECT_ROOT / "conf"
DS1000 = PROJECT_ROOT / "data" / "ds1000" / "ds1000.jsonl.gz"  # the copy the project carries
GRADING_PYTHON = Path(os.environ.get("SPARK_EVAL_GRADING_PYTHON", PROJECT_ROOT / ".venvs" / "grading" / "bin" / "python"))

register_configs()


@pytest.fixture(scope="session")
def problems():
    return read_dataset(compose_config().dataset)


@pytest.fixture(scope="session")
def grading_python() -> str:
    if not GRADING_PYTHON.exists():
        pytest.skip("grading environment missing: run `make setup`")
    return str(GRADING_PYTHON)


@pytest.fixture(scope="session")
def harness_python() -> str:
    """This interpreter, used as a stand-in grading interpreter for sandbox tests that need no libraries."""
    return sys.executable


needs_bwrap = pytest.mark.skipif(not bwrap_works(), reason="bubblewrap is not installed or cannot make namespaces")


@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway PostgreSQL server for the session (tests/fakes/pgserver.py); skipped without the binaries."""
    from tests.fakes.pgserver import PostgresUnavailable, ThrowawayPostgres

    try:
        server = ThrowawayPostgres()
    except PostgresUnavailable as error:
        pytest.skip(f"PostgreSQL server binaries missing: {error}")
    with server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server) -> str:
    """The url of the session server's `spark` database."""
    return postgres_server.url


@pytest.fixture
def postgres_db(postgres_server) -> str:
    """The url of a fresh database on the session server, so tests do not see each other's tables."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex}"
    with psycopg.connect(postgres_server.url_for("postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_server.url_for(name)


@pytest.fixture(params=["sqlite", "postgres"])
def store_location(request, tmp_path) -> str:
    """Where a memory store lives: a new SQLite file, or a new database on the throwaway PostgreSQL server. A test
    that takes it runs on both backends (`-k postgres` selects the server's)."""
    if request.param == "sqlite":
        return str(tmp_path / "memory.sqlite")
    return request.getfixturevalue("postgres_db")
