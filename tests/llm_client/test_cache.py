"""The response cache: canonical keys, TTL, corrupt entries, stream replay, opt-in rules."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
import threading

import diskcache
import pytest

from llm_client import Client, ConfigurationError, InvalidRequestError, ResponseCache, cache_key

USER = [{"role": "user", "content": "hello"}]


def test_key_is_canonical_and_ignores_dict_order():
    a = {"model": "m", "messages": USER, "max_tokens": 5, "temperature": 0.0}
    b = {"temperature": 0.0, "max_tokens": 5, "messages": USER, "model": "m"}
    assert cache_key("/chat/completions", a) == cache_key("/chat/completions", b)
    assert cache_key("/chat/completions", a) != cache_key(
        "/chat/completions", {**a, "max_tokens": 6}
    )
    assert cache_key("/chat/completions", a) != cache_key("/embeddings", a)


def test_an_int_and_a_float_of_the_same_value_share_a_key_and_floats_keep_theirs(
    fault_server, tmp_path
):
    # before: JSON wrote temperature=0 as "0" and 0.0 as "0.0": two keys, a miss, two requests
    client = Client(fault_server.base_url, model="m", cache_dir=tmp_path)
    floats = client._core.prepare_chat(
        USER,
        model=None,
        max_tokens=5,
        temperature=0.0,
        stream=False,
        cache=None,
        params={"top_p": 1.0, "presence_penalty": 0.0},
    )
    ints = client._core.prepare_chat(
        USER,
        model=None,
        max_tokens=5,
        temperature=0,
        stream=False,
        cache=None,
        params={"top_p": 1, "presence_penalty": 0},
    )
    assert ints.cache_key == floats.cache_key
    # the key of a call that passed floats is what it always was: existing caches still hit
    body = {
        "model": "m",
        "messages": USER,
        "max_tokens": 5,
        "temperature": 0.0,
        "top_p": 1.0,
        "presence_penalty": 0.0,
    }
    assert floats.cache_key == cache_key("/chat/completions", body)
    client.chat(USER, temperature=0.0, top_p=1.0)
    assert client.chat(USER, temperature=0, top_p=1).cached
    assert fault_server.report().arrivals == 1


def test_api_key_is_not_part_of_the_key(fault_server, tmp_path):
    first = Client(fault_server.base_url, api_key="sk-one", model="m", cache_dir=tmp_path)
    first.chat(USER)
    second = Client(fault_server.base_url, api_key="sk-two", model="m", cache_dir=tmp_path)
    assert second.chat(USER).cached
    assert fault_server.report().arrivals == 1
    assert b"sk-one" not in b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())


def test_ttl_uses_the_injected_wall_clock(tmp_path):
    now = [1000.0]
    cache = ResponseCache(tmp_path, ttl=10.0, clock=lambda: now[0])
    cache.set("k", "chat", {"choices": []})
    assert cache.get("k", "chat")[0] == "hit"
    now[0] += 10.5
    assert cache.get("k", "chat") == ("miss", None)


@pytest.mark.parametrize(
    "garbage", [b"not json", b'{"v": 1, "kind": "chat"}', b'{"v": 99}', b"\xff\xfe"]
)
def test_a_corrupt_entry_is_a_miss_not_a_crash(fault_server, tmp_path, garbage):
    client = Client(fault_server.base_url, model="m", cache_dir=tmp_path)
    client.chat(USER)
    store = client._core.cache._store
    (key,) = list(store.iterkeys())
    store.set(key, garbage)
    reply = client.chat(USER)
    assert not reply.cached and reply.text == "echo: hello"
    stats = client.stats
    assert stats.cache_errors == 1 and stats.cache_hits == 0
    assert client.chat(USER).cached  # the good answer replaced the corrupt one


@pytest.mark.parametrize(
    ("kind", "foreign"),
    [
        ("chat", {"foo": 1}),
        ("stream", [{"foo": 1}]),
        ("embeddings", {"data": [{"index": 0, "embedding": [1.0]}]}),  # 1 row for 2 texts
    ],
)
def test_an_entry_of_the_wrong_shape_is_a_miss_not_a_failure(fault_server, tmp_path, kind, foreign):
    # readable JSON of the right version and kind that is no reply of that kind: parsed as a
    # reply, it would fail the call (chat, stream) or return 1 vector for 2 texts
    client = Client(fault_server.base_url, model="m", cache_dir=tmp_path)

    def call() -> bool:
        if kind == "embeddings":
            return client.embed(["a", "b"]).cached
        reply = client.chat(USER, stream=kind == "stream")
        if kind == "stream":
            assert "".join(chunk.delta for chunk in reply) == "echo: hello"
        return reply.cached

    call()
    (key,) = list(client._core.cache._store.iterkeys())
    client._core.cache.set(key, kind, foreign)
    assert call() is False and fault_server.report().arrivals == 2
    assert client.stats.cache_errors == 1 and client.stats.errors == {}
    assert call() is True  # the good answer replaced the foreign one


def test_a_truncated_value_file_is_a_miss(fault_server, tmp_path):
    cache = ResponseCache(tmp_path, disk_min_file_size=0)  # force values into files
    client = Client(fault_server.base_url, model="m", cache=cache)
    client.chat(USER)
    files = [p for p in tmp_path.rglob("*.val")]
    assert files
    for path in files:
        path.write_bytes(path.read_bytes()[:10])
    assert not client.chat(USER).cached
    assert client.stats.cache_errors == 1


def test_a_database_locked_by_another_process_is_a_skipped_write_not_a_hang(tmp_path):
    cache = ResponseCache(tmp_path)
    assert cache.set("a" * 64, "chat", {"x": 1})
    # A real second process holds SQLite's write lock, as a suspended writer or a long clear() does.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"db = sqlite3.connect({str(tmp_path / 'cache.db')!r}, isolation_level=None)\n"
            "db.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",  # hold the lock until the test closes our stdin
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        results = {}
        writer = threading.Thread(
            target=lambda: results.update(set=cache.set("b" * 64, "chat", {"y": 2})), daemon=True
        )
        writer.start()
        writer.join(timeout=60)  # only a guard against hanging the suite; the wait is ~1 s
        assert not writer.is_alive(), "set() blocked on a database another process had locked"
        assert results["set"] is False  # the write was skipped and logged
        assert cache.get("a" * 64, "chat") == ("hit", {"x": 1})  # readers are not blocked (WAL)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert cache.set("b" * 64, "chat", {"y": 2})  # the lock is gone: writes work again


def test_hit_returns_the_same_completion_without_a_request(fault_server, tmp_path):
    client = Client(fault_server.base_url, model="m", cache_dir=tmp_path)
    cold = client.chat(USER)
    hot = client.chat(USER)
    assert hot.cached and hot.attempts == 0 and (hot.text, hot.usage) == (cold.text, cold.usage)
    assert fault_server.report().arrivals == 1
    assert client.stats.cache_hits == 1 and client.stats.cache_misses == 1


def test_streams_are_cached_and_replayed_chunk_for_chunk(fault_server, tmp_path):
    client = Client(fault_server.base_url, model="m", cache_dir=tmp_path)
    messages = [{"role": "user", "content": "one two three four"}]
    live = [(c.delta, c.finish_reason) for c in client.chat(messages, stream=True)]
    replay_stream = client.chat(messages, stream=True)
    replay = [(c.delta, c.finish_reason) for c in replay_stream]
    assert replay == live and len(replay) > 4 and replay_stream.cached
    assert fault_server.report().arrivals == 1
    assert not client.chat(messages).cached  # a non-stream call is a different entry


def test_temperature_above_zero_is_not_cached_unless_asked(fault_server, tmp_path):
    client = Client(fault_server.base_url, model="m", cache_dir=tmp_path)
    client.chat(USER, temperature=0.7)
    assert not client.chat(USER, temperature=0.7).cached
    client.chat(USER, temperature=0.7, cache=True)
    assert client.chat(USER, temperature=0.7, cache=True).cached
    opted = Client(
        fault_server.base_url, model="m", cache_dir=tmp_path / "b", cache_nondeterministic=True
    )
    opted.chat(USER, temperature=0.7)
    assert opted.chat(USER, temperature=0.7).cached


def test_cache_false_bypasses_read_and_write(fault_server, tmp_path):
    client = Client(fault_server.base_url, model="m", cache_dir=tmp_path)
    client.chat(USER, cache=False)
    assert not client.chat(USER).cached
    assert not client.chat(USER, cache=False).cached
    assert fault_server.report().arrivals == 3


def test_cache_true_without_a_cache_is_a_clear_error(fault_server):
    with pytest.raises(InvalidRequestError, match="cache_dir"):
        Client(fault_server.base_url, model="m").chat(USER, cache=True)


def test_embeddings_are_cached(fault_server, tmp_path):
    client = Client(fault_server.base_url, model="m", cache_dir=tmp_path)
    cold = client.embed(["x", "y"])
    hot = client.embed(["x", "y"])
    assert hot.cached and hot.vectors == cold.vectors


def test_a_cache_dir_that_is_a_file_is_a_configuration_error(fault_server, tmp_path):
    not_a_dir = tmp_path / "f.txt"
    not_a_dir.write_text("")
    with pytest.raises(ConfigurationError, match=r"f\.txt' is a file, not a directory"):
        ResponseCache(not_a_dir)
    with pytest.raises(ConfigurationError, match="cannot open a cache"):
        Client(fault_server.base_url, model="m", cache_dir=not_a_dir / "sub")


def test_an_empty_cache_dir_or_a_bad_ttl_is_refused_like_client_config(tmp_path, monkeypatch):
    # before: ResponseCache("") opened cache.db in the current directory (ClientConfig already
    # refused cache_dir=""), and a NaN ttl never expired an entry
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="cache_dir must be a non-empty path"):
        ResponseCache("")
    assert list(tmp_path.iterdir()) == []
    for ttl in (float("nan"), float("inf"), 0, -1.0, "60"):
        with pytest.raises(ConfigurationError, match=r"ttl must be a finite number > 0, or None"):
            ResponseCache(tmp_path / "c", ttl=ttl)
    assert ResponseCache(tmp_path / "c", ttl=None).ttl is None  # None: entries never expire
    with pytest.raises(ConfigurationError, match="ResponseCache needs a directory"):
        ResponseCache(None)  # was a bare TypeError from Path(None)


def _damage(directory, how):
    """A cache.db that diskcache cannot open: garbage bytes, or a real one with a page scribbled."""
    db = directory / "cache.db"
    if how == "not a database":
        directory.mkdir()
        db.write_bytes(b"this is no SQLite file " * 400)
        return
    cache = ResponseCache(directory)
    for i in range(50):
        cache.set(f"k{i}", "chat", {"i": i, "text": "x" * 200})
    cache.close()  # the last connection: SQLite folds the WAL into cache.db
    data = bytearray(db.read_bytes())
    data[2 * 4096 : 3 * 4096] = b"\xa5" * 4096  # page 3 of 4096 bytes: a table's root
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["not a database", "a damaged page"])
def test_a_damaged_database_runs_the_client_uncached_with_a_warning(
    fault_server, tmp_path, caplog, how
):
    # before: diskcache reads the database as it opens it, so Client(...) raised
    # ConfigurationError ("file is not a database") and no call could be made at all
    directory = tmp_path / "cache"
    _damage(directory, how)
    with caplog.at_level("WARNING", logger="llm_client.cache"):
        client = Client(fault_server.base_url, model="m", cache_dir=directory)
    assert "delete the directory to start a new cache" in caplog.text
    assert "delete the directory" in client._core.cache.unusable
    assert [client.chat(USER).cached for _ in range(2)] == [False, False]
    assert fault_server.report().arrivals == 2
    stats = client.stats
    assert (stats.cache_errors, stats.cache_misses, stats.cache_hits) == (2, 2, 0)
    client.close()
    with pytest.raises(ConfigurationError, match="delete the directory"):
        ResponseCache(directory).clear()  # an explicit clear cannot pretend it cleared
    shutil.rmtree(directory)  # the remedy the warning names
    fresh = Client(fault_server.base_url, model="m", cache_dir=directory)
    fresh.chat(USER)
    assert fresh.chat(USER).cached


# ---- a cache folder someone else wrote: rows put in by hand, as an attacker would -------------
ROW = (
    "INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, tag, size,"
    " mode, filename, value) VALUES (?, 1, 0, ?, 0, 0, NULL, 0, ?, ?, ?)"
)


def _insert(directory, key, *, mode, filename=None, value=None, expire_time=None):
    db = sqlite3.connect(directory / "cache.db")
    with db:
        db.execute(ROW, (key, expire_time, mode, filename, value))
    db.close()


class _MakesADirectory:
    """What an attacker pickles: unpickling it runs ``os.mkdir(marker)`` (stands for any code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_pickled_entry_is_a_miss_that_runs_nothing(fault_server, tmp_path, caplog):
    # before: diskcache's Disk unpickled any row marked MODE_PICKLE (4): the pickle ran on the
    # lookup, before any request, and the call went on as an ordinary unreadable entry
    marker = tmp_path / "code-ran"
    client = Client(fault_server.base_url, model="m", cache_dir=tmp_path / "cache")
    key = client._core.prepare_chat(
        USER, model=None, max_tokens=None, temperature=0.0, stream=False, cache=None, params={}
    ).cache_key  # sha256 of the request: anyone can compute it
    _insert(tmp_path / "cache", key, mode=4, value=pickle.dumps(_MakesADirectory(marker)))
    with caplog.at_level("WARNING", logger="llm_client.cache"):
        reply = client.chat(USER)
    assert not marker.exists()
    assert not reply.cached and reply.text == "echo: hello"
    assert client.stats.cache_errors == 1 and client.stats.errors == {}
    assert "refused" in caplog.text and "never a pickle" in caplog.text
    assert client.chat(USER).cached  # the good answer replaced the hostile row


VAL = "0123456789abcdef0123456789ab.val"  # a value file's name as diskcache makes them


@pytest.mark.parametrize("route", ["absolute", "dot-dot", "symlinked file", "symlinked folder"])
def test_a_row_naming_a_file_outside_the_folder_never_reads_or_deletes_it(tmp_path, route):
    # before: the stock Disk joined the row's filename to the folder (an absolute path, or
    # "..", or a symlink leads out): a lookup returned the outside file as a hit, and culling an
    # expired row on the next set(), or clear(), deleted it
    folder, outside = tmp_path / "cache", tmp_path / "outside"
    victim = outside / "cd" / VAL
    victim.parent.mkdir(parents=True)
    content = json.dumps({"v": 1, "kind": "chat", "stored_at": 0.0, "data": {"stolen": 1}})
    victim.write_text(content)
    cache = ResponseCache(folder)
    inside = os.path.join("ab", "cd", VAL)  # the shape diskcache gives a value file
    try:
        if route == "symlinked file":
            (folder / "ab" / "cd").mkdir(parents=True)
            (folder / inside).symlink_to(victim)
        elif route == "symlinked folder":
            (folder / "ab").symlink_to(outside, target_is_directory=True)
    except OSError as exc:  # Windows without the symlink privilege
        pytest.skip(f"cannot make a symlink here: {exc}")
    filename = {
        "absolute": str(victim),
        "dot-dot": os.path.join("..", "outside", "cd", VAL),
    }.get(route, inside)
    _insert(folder, "live", mode=2, filename=filename)  # MODE_BINARY: the value is in a file
    _insert(folder, "expired", mode=2, filename=filename, expire_time=1.0)

    assert cache.get("live", "chat") == ("error", None)  # refused, not read
    assert cache.set("k" * 64, "chat", {"x": 1})  # culls the expired row
    assert victim.read_text() == content
    cache.clear()  # removes the live row
    assert victim.read_text() == content
    assert len(cache) == 0


@pytest.mark.parametrize("min_file_size", [2**15, 0], ids=["in the database", "in a value file"])
def test_entries_written_before_the_confined_disk_still_hit(tmp_path, min_file_size):
    # the previous version opened the folder with diskcache's stock Disk and stored JSON bytes
    entry = {"v": 1, "kind": "chat", "stored_at": 5.0, "data": {"choices": []}}
    old = diskcache.Cache(str(tmp_path), disk_min_file_size=min_file_size)
    old.set("k" * 64, json.dumps(entry).encode())
    old.close()
    cache = ResponseCache(tmp_path, disk_min_file_size=min_file_size)
    assert cache.get("k" * 64, "chat") == ("hit", {"choices": []})
    assert cache.set("j" * 64, "stream", [{"choices": []}])
    assert cache.get("j" * 64, "stream") == ("hit", [{"choices": []}])
    if min_file_size == 0:
        assert len(list(tmp_path.rglob("*.val"))) == 2  # both really went through value files
