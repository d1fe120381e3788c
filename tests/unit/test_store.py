import json
import logging
import multiprocessing
import sqlite3

import numpy as np
import pytest

from spark_eval.memory.store.base import (Item, MemoryStoreError, mask_database_urls, mask_secrets, shown_url,
                                          url_secrets)
from spark_eval.memory.store.open import open_store
from spark_eval.memory.store.sqlite import SQLiteStore

ROUNDS, WRITERS = 25, 8


def doc(item_id, library="Numpy", content="text", **kw):
    return Item(id=item_id, kind="doc", library=library, title=item_id, content=content,
                meta={"qualname": item_id, "section": "parameters"}, **kw)


def insight(item_id, content="use axis=None", families=(("Numpy", 3),), **kw):
    provenance = tuple({"problem_id": i, "family": list(f), "record_key": f"{i}/e0/r0", "round": 0, "epoch": 0}
                       for i, f in enumerate(families))
    return Item(id=item_id, kind="insight", library=None, title="tip", content=content, tags=("axis",),
                meta={"applies_when": "reducing"}, provenance=provenance, **kw)


@pytest.fixture
def store(store_location):
    s = open_store(store_location)
    yield s
    s.close()


def test_items_round_trip_in_the_order_asked_and_by_id(store):
    items = [doc("doc:numpy:b"), insight("ins:1", families=(("Numpy", 3), ("Pandas", 7), ("Numpy", 3))),
             doc("doc:pandas:a", library="Pandas")]
    store.put_items(items)
    assert store.get_items(["ins:1", "nope", "doc:numpy:b"]) == [items[1], items[0]]
    assert [i.id for i in store.items()] == ["doc:numpy:b", "doc:pandas:a", "ins:1"]
    assert [i.id for i in store.items("doc")] == ["doc:numpy:b", "doc:pandas:a"]
    assert store.get_items(["ins:1"])[0].families == ("Numpy/3", "Pandas/7")
    assert store.count() == 3 and store.count("insight") == 1
    assert store.count_by_library("doc") == {"Numpy": 1, "Pandas": 1}
    assert store.count_by_library("insight") == {"general": 1}


def test_put_replaces_by_id_and_bad_kinds_are_refused(store):
    store.put_items([insight("ins:1", content="old")])
    store.put_items([insight("ins:1", content="new")])
    assert [i.content for i in store.items()] == ["new"]
    with pytest.raises(ValueError, match="kind 'note'"):
        store.put_items([Item(id="x", kind="note", library=None, title="", content="")])


def test_counters_add_up_and_status_filters(store):
    store.put_items([insight("ins:1"), insight("ins:2")])
    store.add_counters({"ins:1": (2, 1), "ins:2": (0, 3), "ins:missing": (1, 1)})
    store.add_counters({"ins:1": (1, 0)})
    store.set_status(["ins:2"], "retired")
    assert [(i.id, i.helpful, i.harmful) for i in store.items(status=None)] == [("ins:1", 3, 1), ("ins:2", 0, 3)]
    assert [i.id for i in store.items("insight")] == ["ins:1"]
    assert store.count(status="retired") == 1 and store.count(status=None) == 2
    with pytest.raises(ValueError):
        store.set_status(["ins:1"], "deleted")


def test_ops_traces_meta_and_embeddings_round_trip(store):
    store.log_ops([{"op": "ADD", "item_id": "ins:1", "round": 0, "epoch": 0, "detail": {"why": "new"}},
                   {"op": "RETIRE", "item_id": "ins:2", "round": 1, "epoch": 0, "detail": {}}])
    ops = store.ops()
    assert [(o["seq"], o["op"], o["item_id"], o["round"], o["detail"]) for o in ops] == [
        (1, "ADD", "ins:1", 0, {"why": "new"}), (2, "RETIRE", "ins:2", 1, {})]
    assert all(isinstance(o["time"], float) for o in ops)
    with pytest.raises(ValueError, match="op 'DROP'"):
        store.log_ops([{"op": "DROP"}])

    assert store.add_traces([{"key": "b", "x": 1}, {"key": "a", "x": 2}]) == ["b", "a"]
    assert store.add_traces([{"key": "a", "x": 3}, {"key": "c", "x": 4}]) == ["c"]
    assert store.traces() == [{"key": "b", "x": 1}, {"key": "a", "x": 2}, {"key": "c", "x": 4}]
    assert store.known_traces(["a", "z", "c"] + [f"k{i}" for i in range(1200)]) == {"a", "c"}
    assert store.known_traces([]) == set()

    store.set_meta("built", {"chunks": 3, "libs": ["Numpy"]})
    assert store.get_meta("built") == {"chunks": 3, "libs": ["Numpy"]}
    assert store.get_meta("absent", 7) == 7

    vectors = {"h1": np.arange(4, dtype=np.float64), "h2": np.ones(4, dtype=np.float32)}
    store.put_embeddings("minilm", vectors)
    got = store.get_embeddings("minilm", ["h2", "h3", "h1"])
    assert list(got) == ["h2", "h1"] and got["h1"].dtype == np.float32
    np.testing.assert_array_equal(got["h1"], [0, 1, 2, 3])
    assert store.get_embeddings("other-model", ["h1"]) == {}


def test_state_hash_follows_content_counters_and_status(store):
    store.put_items([doc("doc:numpy:a"), insight("ins:1")])
    first, docs = store.state_hash(), store.state_hash("doc")
    store.put_items([insight("ins:1", content="changed")])
    changed = store.state_hash()
    assert changed != first and store.state_hash("doc") == docs
    store.add_counters({"ins:1": (1, 0)})
    counted = store.state_hash("insight")
    store.set_status(["ins:1"], "retired")
    assert len({first, changed, store.state_hash()}) == 3 and store.state_hash("insight") != counted
    store.put_items([insight("ins:1")])
    assert store.state_hash() == first  # same content again: the cached digest does not stick


def test_state_hash_is_the_same_for_the_same_content_in_any_order(tmp_path, store_location):
    items = [doc(f"doc:numpy:{i}", content=f"c{i}") for i in range(30)] + [insight("ins:a"), insight("ins:b")]
    one, two = SQLiteStore(tmp_path / "one.sqlite"), open_store(store_location)  # and across backends
    one.put_items(items)
    for item in reversed(items):
        two.put_items([item])
    two.state_hash()  # a cached digest of an earlier state must not survive the next write
    two.put_items([items[0]])
    kinds = (None, "doc", "insight")
    assert [one.state_hash(k) for k in kinds] == [two.state_hash(k) for k in kinds]
    one.close()
    two.close()


def test_state_hash_sees_writes_by_other_connections(store_location):
    location = store_location
    mine, theirs = open_store(location), open_store(location)
    mine.put_items([doc("doc:numpy:a")])
    before = mine.state_hash("doc")
    theirs.add_counters({"doc:numpy:a": (1, 0)})
    after = mine.state_hash("doc")
    assert after != before
    edit_by_hand(location, "UPDATE items SET content = 'edited by hand'")
    assert mine.state_hash("doc") not in (before, after)
    mine.close()
    theirs.close()


def test_nested_transactions_join_and_roll_back_their_own_part(store):
    with store.transaction():
        store.put_items([insight("ins:kept")])
        with pytest.raises(KeyError):
            with store.transaction():
                store.put_items([insight("ins:inner")])
                raise KeyError("inner")
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.put_items([insight("ins:outer")])
            raise RuntimeError("outer")
    assert [i.id for i in store.items()] == ["ins:kept"]


def test_snapshot_writes_insights_ops_traces_and_state(store, tmp_path):
    store.put_items([doc("doc:numpy:a"), insight("ins:1"), insight("ins:2")])
    store.set_status(["ins:2"], "retired")
    store.log_ops([{"op": "RETIRE", "item_id": "ins:2", "round": 0, "epoch": 0, "detail": {}}])
    store.add_traces([{"key": "0/e0/r0", "code": "x = 1"}])
    state = store.snapshot(tmp_path / "snap")
    files = {p.name for p in (tmp_path / "snap").iterdir()}
    assert files == {"insights.jsonl", "ops.jsonl", "traces.jsonl", "state.json"}
    lines = [json.loads(x) for x in (tmp_path / "snap" / "insights.jsonl").read_text().splitlines()]
    assert [(x["id"], x["status"]) for x in lines] == [("ins:1", "active"), ("ins:2", "retired")]
    assert [json.loads(x)["op"] for x in (tmp_path / "snap" / "ops.jsonl").read_text().splitlines()] == ["RETIRE"]
    assert json.loads((tmp_path / "snap" / "traces.jsonl").read_text()) == {"key": "0/e0/r0", "code": "x = 1"}
    assert json.loads((tmp_path / "snap" / "state.json").read_text()) == state
    assert state["hash"] == store.state_hash() and state["hashes"]["doc"] == store.state_hash("doc")
    assert state["counts"] == {"doc": {"active": 1, "retired": 0}, "insight": {"active": 1, "retired": 1},
                               "ops": 1, "traces": 1}


def edit_by_hand(location, sql):
    """Change the store's database behind its back, as a person with a SQL shell would."""
    if location.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(location, autocommit=True) as raw:
            raw.execute(sql)
        return
    raw = sqlite3.connect(location)
    with raw:
        raw.execute(sql)
    raw.close()


def _write_concurrently(location, worker, barrier, results):
    """One of WRITERS processes: small transactions of every kind, all aimed at the same store at once."""
    store = open_store(location)
    barrier.wait()
    shared = []
    for r in range(ROUNDS):
        store.put_items([insight(f"ins:w{worker}r{r}")])
        store.add_counters({"doc:numpy:shared": (1, 2)})
        store.log_ops([{"op": "ADD", "item_id": f"ins:w{worker}r{r}", "round": r, "epoch": 0, "detail": {}}])
        shared += [k for k in store.add_traces([{"key": f"w{worker}/{r}"}, {"key": f"shared/{r}"}])
                   if k.startswith("shared/")]
        with store.transaction():
            store.set_meta("n", store.get_meta("n", 0) + 1)
    store.close()
    results.put(shared)


def test_concurrent_writers_in_several_processes_lose_nothing(store_location):
    location = store_location
    store = open_store(location)
    store.put_items([doc("doc:numpy:shared")])
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(WRITERS), context.Queue()
    workers = [context.Process(target=_write_concurrently, args=(location, w, barrier, results)) for w in range(WRITERS)]
    for w in workers:
        w.start()
    shared = [key for _ in workers for key in results.get(timeout=300)]
    for w in workers:
        w.join()
    assert [w.exitcode for w in workers] == [0] * WRITERS
    total = WRITERS * ROUNDS
    assert store.count("insight") == total
    assert [(i.helpful, i.harmful) for i in store.get_items(["doc:numpy:shared"])] == [(total, 2 * total)]
    assert [o["seq"] for o in store.ops()] == list(range(1, total + 1))
    assert len(store.traces()) == total + ROUNDS
    assert sorted(shared) == sorted(f"shared/{r}" for r in range(ROUNDS))  # each added by exactly one writer
    assert store.get_meta("n") == total
    store.close()


def _real_store_with_damaged(path, offset):
    store = SQLiteStore(path)
    store.put_items([doc(f"doc:numpy:{i}", content="x" * 500) for i in range(50)])
    store.close()
    data = bytearray(path.read_bytes())
    data[offset : offset + 4096] = bytes(range(256)) * 16
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["garbage", "header", "table page"])
def test_a_damaged_file_is_one_line_error_and_left_as_it_was(tmp_path, damage):
    path = tmp_path / "memory.sqlite"
    if damage == "garbage":
        path.write_bytes(b"not a database at all\n" * 400)
    else:
        _real_store_with_damaged(path, 0 if damage == "header" else 4096)
    before = path.read_bytes()
    with pytest.raises(MemoryStoreError) as error:
        store = SQLiteStore(path)  # a damaged header is found here, at open
        assert damage == "table page"
        store.items("doc")  # a damaged page when it is read
    message = str(error.value)
    assert message.startswith(f"memory store {path} is not a readable SQLite database (") and "\n" not in message
    assert message.endswith("move it aside or point memory.store at a new file")
    assert path.read_bytes() == before


def test_other_databases_and_newer_schemas_are_refused_untouched(tmp_path):
    other, newer = tmp_path / "cache.sqlite", tmp_path / "newer.sqlite"
    for path, sql in ((other, "CREATE TABLE responses (key TEXT)"), (newer, "PRAGMA user_version = 99")):
        with sqlite3.connect(path) as db:
            db.execute(sql)
    before = other.read_bytes(), newer.read_bytes()
    with pytest.raises(MemoryStoreError, match="database of something else .tables: responses"):
        SQLiteStore(other)
    with pytest.raises(MemoryStoreError, match="schema version 99, unknown"):
        SQLiteStore(newer)
    assert (other.read_bytes(), newer.read_bytes()) == before


def test_a_store_held_by_another_writer_is_a_locked_error(tmp_path):
    path = tmp_path / "memory.sqlite"
    SQLiteStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    store = SQLiteStore(path, timeout_s=0.2)
    try:
        with pytest.raises(MemoryStoreError, match=r"is locked: another process has held it") as error:
            store.put_items([insight("ins:1")])
        assert str(path) in str(error.value) and "\n" not in str(error.value)
        assert store.count() == 0  # readers are not blocked
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.put_items([insight("ins:1")])
    assert store.count() == 1
    store.close()


def test_nul_characters_are_removed_before_storing_with_one_warning_naming_the_item(store, caplog):
    """A model's reply with NUL characters (PostgreSQL's text cannot hold them) is stored without them, the same way
    on every backend, with one warning naming the item."""
    dirty = Item(id="ins:nul", kind="insight", library="Pandas", title="ti\x00p", content="use\x00 axis=None\x00",
                 tags=("ax\x00is",), meta={"applies_when": "reduc\x00ing", "k\x00ey": ["v\x00"]},
                 provenance=({"problem_id": 3, "family": ["Numpy", 3], "model": "m\x00"},))
    clean = Item(id="ins:nul", kind="insight", library="Pandas", title="tip", content="use axis=None", tags=("axis",),
                 meta={"applies_when": "reducing", "key": ["v"]},
                 provenance=({"problem_id": 3, "family": ["Numpy", 3], "model": "m"},))
    with caplog.at_level(logging.WARNING, logger="spark_eval.memory.store"):
        store.put_items([dirty, insight("ins:plain")])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "insight ins:nul" in warnings[0] and "title, content, tags, meta, provenance" in warnings[0]
    assert store.get_items(["ins:nul"]) == [clean]
    hashed = store.state_hash()
    store.put_items([clean])
    assert store.state_hash() == hashed  # what was stored is exactly the cleaned item


def test_database_urls_are_shown_without_their_secrets():
    assert shown_url("postgresql://spark:hunter2@db:5432/mem") == "postgresql://spark:***@db:5432/mem"
    # an unencoded @ or / in the password: nothing of it is left shown
    assert shown_url("postgresql://spark:p@ss/w0rd@db/mem") == "postgresql://spark:***@db/mem"
    assert shown_url("postgres://spark@db/mem?sslpassword=keypass&sslmode=require&password=pw") == (
        "postgres://spark@db/mem?sslpassword=***&sslmode=require&password=***")
    assert shown_url("postgresql://spark@db:5432/mem") == "postgresql://spark@db:5432/mem"  # nothing to hide
    assert shown_url("results/run/memory/store.sqlite") == "results/run/memory/store.sqlite"
    assert url_secrets("postgresql://spark:pa%2Fss@db/mem?sslpassword=keypass") == ["keypass", "pa%2Fss", "pa/ss"]
    line = "\t#0 : memory.store=postgresql://spark:hunter2@db/mem 'memory.frozen_store=postgres://x:s3cr%40t@db/m' s=0"
    assert mask_database_urls(line) == ("\t#0 : memory.store=postgresql://spark:***@db/mem "
                                        "'memory.frozen_store=postgres://x:***@db/m' s=0")
    escaped = "\t#0 : memory.store=" + r"postgresql\://spark\:hun\ ter2@db/mem" + " seed=0"  # as Hydra shows it
    assert mask_database_urls(escaped) == "\t#0 : memory.store=postgresql://spark:***@db/mem seed=0"
    echoed = 'invalid percent-encoded token: "pa%zzss"'
    assert mask_secrets(echoed, "postgresql://spark:pa%zzss@db/mem") == 'invalid percent-encoded token: "***"'


def test_a_wait_for_the_write_lock_must_be_a_positive_number_of_seconds(tmp_path):
    with pytest.raises(MemoryStoreError, match=r"memory.lock_wait_s=0 is no wait; give a number of seconds above 0"):
        open_store(tmp_path / "memory.sqlite", lock_wait_s=0)
    assert not (tmp_path / "memory.sqlite").exists()
