"""The throwaway PostgreSQL server (tests/fakes/pgserver.py) and its fixtures."""
from __future__ import annotations

import pytest

import psycopg


def test_postgres_throwaway_server_accepts_connections(postgres_db):
    with psycopg.connect(postgres_db) as conn:
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO items (name) VALUES (%s), (%s)", ("ä", "b"))
        conn.commit()
    with psycopg.connect(postgres_db) as conn:
        assert conn.execute("SELECT name FROM items ORDER BY id").fetchall() == [("ä",), ("b",)]
        assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)


def test_postgres_databases_are_separate(postgres_db, postgres_url):
    assert postgres_db != postgres_url and postgres_url.endswith("/spark")
    with psycopg.connect(postgres_db) as conn:
        assert conn.execute("SELECT to_regclass('items')").fetchone() == (None,)


def test_postgres_restart_keeps_data_and_url(postgres_server, postgres_db):
    url = postgres_db
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("CREATE TABLE kept (value int)")
    conn.execute("INSERT INTO kept VALUES (42)")
    postgres_server.restart()
    with pytest.raises(psycopg.OperationalError):  # the old connection is lost
        conn.execute("SELECT 1")
    conn.close()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT value FROM kept").fetchall() == [(42,)]


def test_postgres_stopped_server_refuses_then_starts_again(postgres_server, postgres_url):
    postgres_server.stop()
    try:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(postgres_url, connect_timeout=2)
    finally:
        postgres_server.start()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == ("spark", "spark")
