"""The contract's second round through the client: named pools, values and metadata, batch and
long-poll checkout, cooldown, per-key ttl. Each test skips (saying what is missing) while the
binary under test does not implement its feature yet."""

from __future__ import annotations

import signal
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import List

import pytest

from keypool_client import BadRequest, Client, NotFound, Unavailable

from conftest import Features, Server, unique


def test_named_pools_are_separate_and_listed(open_server: Server, features: Features) -> None:
    features.require("named_pools")
    client = Client(open_server.url)
    a, b = client.pool(unique("a")), client.pool(unique("b"))
    key = a.create()
    a.create()
    assert b.checkout() is None
    lease = a.checkout()
    assert lease is not None and lease.pool is a
    with pytest.raises(NotFound):
        b.get(key.key_id)
    listed = {p["name"]: p for p in client.pools()}
    assert listed[a.name]["total"] == 2 and listed[a.name]["blocked"] == 1
    assert b.name not in listed  # a pool exists once it holds a key
    stats = a.stats()
    assert (stats["total"], stats["available"], stats["blocked"]) == (2, 1, 1)
    assert stats["cooling"] == 0
    lease.release()

    a.delete()
    assert a.name not in {p["name"] for p in client.pools()}
    assert a.checkout() is None
    with pytest.raises(NotFound):
        a.delete()


def test_the_default_pool_is_the_plain_routes(fresh_server: Server, features: Features) -> None:
    features.require("named_pools")
    client = Client(fresh_server.url)
    client.pool().create()
    names = {p["name"]: p["total"] for p in client.pools()}
    assert names.get("default") == 1


def test_value_and_metadata_come_back(open_server: Server, features: Features) -> None:
    features.require("named_pools", "values")
    pool = Client(open_server.url).pool(unique())
    meta = {"owner": "ci", "limits": {"rps": 5}}
    key = pool.create(value="s3cr3t-ü", metadata=meta)
    st = pool.get(key.key_id)
    assert st.value == "s3cr3t-ü" and st.metadata == meta
    with pool.lease() as lease:
        assert lease.value == "s3cr3t-ü" and lease.metadata == meta
    plain = pool.create()
    st = pool.get(plain.key_id)
    assert st.value is None and st.metadata is None
    with pytest.raises(BadRequest) as e:
        pool.create(value="x" * 4097)
    assert "value" in e.value.message


def test_ttl_sets_the_lifetime(open_server: Server, features: Features) -> None:
    features.require("named_pools", "ttl")
    pool = Client(open_server.url).pool(unique())
    key = pool.create(ttl=100)
    assert key.expires_at is not None
    left = (key.expires_at - datetime.now(timezone.utc)).total_seconds()
    assert 50 < left < 150
    with pytest.raises(BadRequest) as e:
        pool.create(ttl=0.5)
    assert "ttl" in e.value.message


def test_batch_checkout(open_server: Server, features: Features) -> None:
    features.require("named_pools", "count")
    pool = Client(open_server.url).pool(unique())
    ids = {pool.create().key_id for _ in range(3)}
    leases = pool.checkout(count=5)
    assert {x.key_id for x in leases} == ids
    assert len({x.lease_id for x in leases}) == 3
    assert pool.checkout(count=2) == []
    for x in leases:
        x.release()
    assert len(pool.checkout(count=2)) == 2


def test_block_sets_the_lease_length(open_server: Server, features: Features) -> None:
    features.require("named_pools", "block")
    pool = Client(open_server.url).pool(unique())
    pool.create()
    lease = pool.checkout(block=7)
    assert lease is not None and lease.blocked_until is not None
    left = (lease.blocked_until - datetime.now(timezone.utc)).total_seconds()
    assert 2 < left < 12
    lease.release()


def test_long_poll_gets_a_key_released_meanwhile(open_server: Server, features: Features) -> None:
    features.require("named_pools", "wait")
    pool = Client(open_server.url).pool(unique())
    pool.create()
    held = pool.checkout()
    assert held is not None
    timer = threading.Timer(0.3, held.release)
    timer.start()
    try:
        got = pool.checkout(wait=20)
    finally:
        timer.join()
    assert got is not None and got.key_id == held.key_id and got.lease_id != held.lease_id
    got.release()


def test_long_poll_runs_out_with_none(open_server: Server, features: Features) -> None:
    features.require("named_pools", "wait")
    pool = Client(open_server.url, timeout=2).pool(unique())
    t0 = time.monotonic()
    assert pool.checkout(wait=1) is None  # the socket timeout is extended by the wait
    assert time.monotonic() - t0 >= 0.9
    with pytest.raises(BadRequest) as e:
        pool.checkout(wait=31)
    assert "wait" in e.value.message


def test_lease_waits_for_a_key(open_server: Server, features: Features) -> None:
    features.require("named_pools", "wait")
    pool = Client(open_server.url).pool(unique())
    threading.Timer(0.3, pool.create).start()
    with pool.lease(wait=20, block=60) as lease:
        assert lease.key_id
    assert pool.stats()["available"] == 1


def test_cooldown_keeps_a_released_key_out(open_server: Server, features: Features) -> None:
    features.require("named_pools", "cooldown")
    pool = Client(open_server.url).pool(unique())
    key = pool.create()
    with pool.lease(cooldown=60):
        pass
    stats = pool.stats()
    assert (stats["cooling"], stats["available"]) == (1, 0)
    assert pool.get(key.key_id).cooling_until is not None
    assert pool.checkout() is None


def test_a_short_cooldown_ends(open_server: Server, features: Features) -> None:
    features.require("named_pools", "cooldown", "wait")
    pool = Client(open_server.url).pool(unique())
    pool.create()
    lease = pool.checkout()
    assert lease is not None
    lease.release(cooldown=0.5)
    got = pool.checkout(wait=10)  # answered when the cooldown ends
    assert got is not None and got.key_id == lease.key_id
    got.release()


def test_a_server_shutdown_ends_a_long_poll_with_unavailable(
    tmp_path: Path, features: Features
) -> None:
    features.require("named_pools", "wait")
    server = Server(tmp_path, ["--open-pool"])
    try:
        pool = Client(server.url, retries=0).pool(unique())
        caught: List[BaseException] = []

        def poll() -> None:
            try:
                pool.checkout(wait=25)
            except BaseException as e:  # noqa: BLE001 - the test inspects it
                caught.append(e)

        t = threading.Thread(target=poll, daemon=True)
        t.start()
        time.sleep(0.5)  # let the request reach the server and wait there
        server.proc.send_signal(signal.SIGTERM)
        t.join(15)
        assert not t.is_alive(), "the long poll outlived the server's shutdown"
        assert len(caught) == 1 and isinstance(caught[0], Unavailable), caught
        assert caught[0].status == 503 and caught[0].message
    finally:
        server.stop()
