"""The PostgreSQL store against a real throwaway server: the same state as SQLite after the same curation, curation
from several processes at once, bad URLs, lost connections, and copies into a frozen file. (The store tests of
test_store.py and the curation tests of test_memory.py run on this backend too.)"""
import logging
import multiprocessing
import os
import signal
import socket
import time
import traceback

import psycopg
import pytest

from spark_eval.memory.leakage import LeakGuard
from spark_eval.memory.learning.curator import CurationPolicy, Curator
from spark_eval.memory.learning.learner import Candidate, insight_id
from spark_eval.memory.store.base import MemoryStoreError
from spark_eval.memory.store.open import copy_store, open_store
from spark_eval.memory.store.postgres import PostgresStore
from spark_eval.memory.store.sqlite import SQLiteStore
from tests.fakes.embedder import HashEmbedder
from tests.fakes.ports import free_port

TOPICS = ["groupby apply list", "merge on key columns", "pivot table aggregate", "numpy where mask nan",
          "argsort descending order", "reshape minus one", "concat ignore index", "cumsum along axis"]


def candidate(text, key, model, problem_id):
    return Candidate(title=text.split()[0].title(), content=f"Use {text} carefully", tags=(text.split()[0],),
                     applies_when="", library="Pandas", sources=({"problem_id": problem_id, "family": f"Pandas/{problem_id}",
                                                                  "record_key": key, "epoch": 0, "round": 0,
                                                                  "model": model},))


def curate_rounds(store, rounds=6, worker=0):
    """Scripted learning: each round adds two insights (one a near-duplicate of an earlier one), counts outcomes on
    what exists, and lets retirement act."""
    curator = Curator(store, HashEmbedder(), CurationPolicy(duplicate_threshold=0.9, retire_margin=2, max_insights=5),
                      LeakGuard())
    for r in range(rounds):
        fresh = candidate(TOPICS[r % len(TOPICS)], f"w{worker}/{r}/a", f"model-{worker}", r)
        again = candidate(TOPICS[(r + 3) % len(TOPICS)], f"w{worker}/{r}/b", f"model-{worker}", 100 + r)
        existing = [i.id for i in store.items("insight")]
        outcomes = {ident: (r % 2, 1) for ident in existing[:3]}
        with store.transaction():
            curator.apply([fresh, again], {}, outcomes, {"epoch": 0, "round": r}, graded=(1, 2))


def test_postgres_and_sqlite_curate_the_same_rounds_to_the_same_state(tmp_path, postgres_db):
    lite, server = SQLiteStore(tmp_path / "store.sqlite"), open_store(postgres_db)
    for store in (lite, server):
        curate_rounds(store)
    assert server.state_hash() == lite.state_hash() and server.count("insight", None) == lite.count("insight", None)
    assert server.items("insight", None) == lite.items("insight", None)
    assert server.count("insight", "retired") > 0  # retirement and merging happened, not just adds
    strip = lambda ops: [{k: v for k, v in op.items() if k != "time"} for op in ops]  # noqa: E731
    assert strip(server.ops()) == strip(lite.ops())
    assert server.get_meta("graded_outcomes") == lite.get_meta("graded_outcomes") == [6, 12]
    assert (server.snapshot(tmp_path / "pg")["hash"], lite.snapshot(tmp_path / "lite")["hash"]) == (
        server.state_hash(), server.state_hash())
    lite.close()
    server.close()


WORKERS = ("alpha", "bravo", "charlie", "delta")
ROUNDS = ("apple", "banana", "cherry", "damson", "elder", "fig", "guava", "hazel", "iris", "juniper")


def _curate_concurrently(location, worker, barrier, results):
    store = open_store(location)
    barrier.wait()
    curator = Curator(store, HashEmbedder(dim=4096), CurationPolicy(duplicate_threshold=0.95, retire_margin=1000),
                      LeakGuard())
    shared = insight_id("Shared", "Use the shared lesson carefully")
    for r in range(10):
        mine = candidate(f"{WORKERS[worker]} {ROUNDS[r]} lesson", f"w{worker}/{r}", f"model-{worker}", r)
        same = Candidate(title="Shared", content="Use the shared lesson carefully", tags=(), applies_when="",
                         library="Pandas", sources=({"problem_id": 900 + r, "family": "Pandas/900",
                                                     "record_key": f"shared/w{worker}/{r}", "epoch": 0, "round": r,
                                                     "model": f"model-{worker}"},))
        with store.transaction():  # a learner's whole curation step, as OnlineExperience makes it
            curator.apply([mine, same], {}, {shared: (1, 1)}, {"epoch": 0, "round": r}, graded=(1, 1))
    store.close()
    results.put(worker)


def test_concurrent_curators_in_several_processes_lose_no_update(store_location):
    """Four learners curate into one store at once: every merge, counter and the base rate count exactly."""
    workers, rounds = 4, 10
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(workers), context.Queue()
    processes = [context.Process(target=_curate_concurrently, args=(store_location, w, barrier, results))
                 for w in range(workers)]
    for p in processes:
        p.start()
    assert sorted(results.get(timeout=300) for _ in processes) == list(range(workers))
    for p in processes:
        p.join()
    store = open_store(store_location)
    shared = store.get_items([insight_id("Shared", "Use the shared lesson carefully")])[0]
    steps = workers * rounds
    assert shared.endorsements == steps and len(shared.provenance) == steps
    assert sorted(shared.contributors) == [f"model-{w}" for w in range(workers)]
    # every step but the one that added it counted (1, 1) on it (an outcome for an insight not yet there is dropped)
    assert (shared.helpful, shared.harmful) == (steps - 1, steps - 1)
    assert store.count("insight") == steps + 1 and store.get_meta("graded_outcomes") == [steps, steps]
    store.close()


def test_postgres_bad_urls_are_one_line_naming_the_url_without_its_password(postgres_server):
    unreachable = f"postgresql://spark:hunter2@127.0.0.1:{free_port()}/spark"
    with pytest.raises(MemoryStoreError) as error:
        open_store(unreachable)
    message = str(error.value)
    assert message.startswith("memory store postgresql://spark:***@127.0.0.1:") and "hunter2" not in message
    assert "\n" not in message and "start the server or fix memory.store" in message
    with pytest.raises(MemoryStoreError, match=r'cannot be reached \(.*database "nowhere" does not exist'):
        open_store(postgres_server.url_for("nowhere"))


def test_postgres_database_of_something_else_is_refused_untouched(postgres_db):
    with psycopg.connect(postgres_db, autocommit=True) as raw:
        raw.execute("CREATE TABLE invoices (id int)")
    with pytest.raises(MemoryStoreError, match="database of something else .tables: invoices"):
        open_store(postgres_db)
    with psycopg.connect(postgres_db) as raw:
        assert [t for (t,) in raw.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")] == ["invoices"]


def test_postgres_lost_connection_is_reopened_and_the_call_made_again(postgres_server, postgres_db):
    store = open_store(postgres_db)
    curate_rounds(store, rounds=2)
    before = store.state_hash()
    postgres_server.restart()  # every open connection is gone
    assert store.state_hash() == before
    curate_rounds(store, rounds=1)  # a transaction on the new connection
    assert store.state_hash() != before
    store.close()


def test_postgres_that_stays_away_stops_the_caller_with_one_line(postgres_server, postgres_db):
    store = PostgresStore(postgres_db, retries=2, backoff_s=0.05, connect_timeout_s=1)
    store.put_items([])
    postgres_server.stop()
    try:
        with pytest.raises(MemoryStoreError, match=r"cannot be reached .*start the server or fix memory.store"):
            store.items("insight")
        with pytest.raises(MemoryStoreError, match="cannot be reached"):
            with store.transaction():
                store.set_meta("never", 1)
    finally:
        postgres_server.start()
    assert store.get_meta("never") is None  # back: nothing of the failed transaction was written
    store.close()


def test_postgres_store_is_copied_into_a_frozen_sqlite_file(tmp_path, postgres_db):
    store = open_store(postgres_db)
    curate_rounds(store, rounds=3)
    store.put_embeddings("m", {"h": HashEmbedder().embed(["x"])[0]})
    state = copy_store(postgres_db, tmp_path / "frozen.sqlite")
    copy = SQLiteStore(tmp_path / "frozen.sqlite")
    assert state == store.state_hash() == copy.state_hash()
    assert copy.ops() == store.ops() and copy.traces() == store.traces()
    assert list(copy.get_embeddings("m", ["h"])) == ["h"]
    copy.close()
    store.close()


def test_postgres_writer_waits_for_the_lock_at_most_lock_wait_s_then_names_the_holder(postgres_db):
    store = PostgresStore(postgres_db, lock_wait_s=0.2)
    holder = psycopg.connect(postgres_db, autocommit=True, application_name="holder-app")
    holder.execute("SELECT pg_advisory_lock(%s)", (0x5350524B,))  # another writer holds the writers' lock
    holder_pid = holder.info.backend_pid
    with pytest.raises(MemoryStoreError) as error:
        store.set_meta("x", 1)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"memory store {postgres_db}: waited 0.2s for the write lock")
    assert f"held by holder-app (server pid {holder_pid}, from 127.0.0.1, idle)" in message
    assert f"pg_terminate_backend({holder_pid})" in message and "raise memory.lock_wait_s" in message
    assert store.get_meta("x") is None  # readers are not blocked
    holder.close()
    store.set_meta("x", 1)  # the connection is not left inside the abandoned transaction
    assert store.get_meta("x") == 1
    store.close()


def _hold_the_write_lock(location, ready):
    store = PostgresStore(location)
    with store.transaction():
        store.set_meta("holder", "in")
        ready.set()
        time.sleep(600)  # stopped or killed by the test long before


def test_postgres_member_stopped_while_holding_the_write_lock_is_named_to_the_one_waiting(postgres_db):
    """A member stopped (SIGSTOP) inside its write transaction: the other member stops waiting with one line that
    names it by its pid and machine, and goes on once it is gone."""
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    member = context.Process(target=_hold_the_write_lock, args=(postgres_db, ready))
    waiting = PostgresStore(postgres_db, lock_wait_s=0.5)
    member.start()
    try:
        assert ready.wait(timeout=120)
        os.kill(member.pid, signal.SIGSTOP)
        with pytest.raises(MemoryStoreError, match="waited 0.5s for the write lock") as error:
            with waiting.transaction():
                waiting.set_meta("waiting", "in")
        assert f"held by spark_eval {member.pid}@{socket.gethostname()} (server pid " in str(error.value)
        assert "idle in transaction" in str(error.value)
    finally:
        os.kill(member.pid, signal.SIGKILL)
        member.join()
    waiting.set_meta("waiting", "in")  # the killed member's session ended: its lock and its write are gone
    assert (waiting.get_meta("holder"), waiting.get_meta("waiting")) == (None, "in")
    waiting.close()


def test_postgres_connections_keep_alive_and_bound_lock_waits(postgres_db):
    store = PostgresStore(postgres_db, lock_wait_s=7)
    client = store._db.info.get_parameters()
    assert (client["keepalives_idle"], client["keepalives_interval"], client["keepalives_count"]) == ("30", "10", "3")
    server = store._db.execute("SELECT current_setting('lock_timeout'), current_setting('tcp_keepalives_idle'), "
                               "current_setting('application_name')").fetchone()
    assert server == ("7s", "30", f"spark_eval {os.getpid()}@{socket.gethostname()}")
    store.close()
    own = PostgresStore(f"{postgres_db}?keepalives_idle=5&application_name=member-a")  # the URL's own settings win
    assert own._db.info.get_parameters()["keepalives_idle"] == "5"
    assert own._db.execute("SHOW application_name").fetchone() == ("member-a",)
    own.close()


def test_postgres_nul_in_an_insight_is_cleaned_alike_on_both_backends(tmp_path, postgres_db, caplog):
    """A learner's reply with a NUL character: the curation step goes through on PostgreSQL (it refused such text)
    and both backends reach the same state, with one warning each."""
    lite, server = SQLiteStore(tmp_path / "store.sqlite"), open_store(postgres_db)
    dirty = Candidate(title="Pivot\x00", content="Use pivot_table\x00 with aggfunc", tags=("pivot\x00",),
                      applies_when="reshaping\x00", library="Pandas",
                      sources=({"problem_id": 7, "family": "Pandas/7", "record_key": "7/e0/r0", "epoch": 0, "round": 0,
                                "model": "m"},))
    with caplog.at_level(logging.WARNING, logger="spark_eval.memory.store"):
        for store in (lite, server):
            curator = Curator(store, HashEmbedder(), CurationPolicy(), LeakGuard())
            with store.transaction():
                curator.apply([dirty], {}, {}, {"epoch": 0, "round": 0}, graded=(0, 1))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("NUL characters removed from the title, content, tags, meta of insight ins:" in w for w in warnings)
    assert server.state_hash() == lite.state_hash()
    [item] = server.items("insight")
    assert (item.title, item.content, item.tags, item.meta["applies_when"]) == (
        "Pivot", "Use pivot_table with aggfunc", ("pivot",), "reshaping")
    assert server.items("insight") == lite.items("insight")
    lite.close()
    server.close()


def _chain_text(error):
    return "".join(traceback.format_exception(error))


def test_postgres_password_libpq_cannot_read_is_never_echoed(postgres_server):
    for password in ("pa%zzss", "pa%00ss", "pa%C3ss"):  # a bad escape, a NUL, not UTF-8
        url = f"postgresql://spark:{password}@127.0.0.1:{postgres_server.port}/spark"
        with pytest.raises(MemoryStoreError, match="is not a valid PostgreSQL URL") as error:
            PostgresStore(url)
        assert str(error.value).startswith("memory store postgresql://spark:***@127.0.0.1:")
        assert password not in _chain_text(error.value)  # nor in a traceback of its causes
    # unencoded @ and /: libpq reads another password and host; refused before anything echoes them
    for password in ("sec@ret9", "sec/ret9"):
        url = f"postgresql://spark:{password}@127.0.0.1:{postgres_server.port}/spark"
        with pytest.raises(MemoryStoreError, match="libpq reads the URL's password otherwise than it is written; "
                                                   "percent-encode its @, / and %") as error:
            PostgresStore(url)
        assert "sec" not in str(error.value) and "ret9" not in _chain_text(error.value)


def test_postgres_url_with_a_password_is_warned_about_once_and_never_shown(postgres_server, postgres_db, caplog):
    url = postgres_db.replace("postgresql://spark@", "postgresql://spark:hunter2@") + "?sslpassword=keypass"
    with caplog.at_level(logging.INFO):
        for _ in range(2):
            store = open_store(url)  # trust authentication: the password is not needed
            store.set_meta("k", 1)
            assert "hunter2" not in store.path and "keypass" not in store.path
            store.close()
        unreachable = url.replace(f":{postgres_server.port}/", f":{free_port()}/")
        with pytest.raises(MemoryStoreError) as error:
            PostgresStore(unreachable, retries=0, connect_timeout_s=1)
    warnings = [r.getMessage() for r in caplog.records if "carries a password" in r.getMessage()]
    assert len(warnings) == 2  # once for each URL, not for each time it is opened
    assert warnings[0].startswith("memory store postgresql://spark:***@127.0.0.1:") and "PGPASSWORD" in warnings[0]
    assert not any(secret in caplog.text + _chain_text(error.value) for secret in ("hunter2", "keypass"))
