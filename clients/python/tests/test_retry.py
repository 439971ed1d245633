"""Retries: network errors and 503 are retried with backoff; create and checkout keep one
Idempotency-Key across attempts, so a lost answer never makes a second key or lease."""

from __future__ import annotations

import socket
import time
import uuid

import pytest

from keypool_client import Client, NetworkError

from conftest import Features, Server
from proxy import FaultProxy


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def test_connection_refused_is_a_network_error_after_bounded_retries() -> None:
    client = Client(f"http://127.0.0.1:{closed_port()}", retries=3, backoff=0.01, max_backoff=0.05)
    t0 = time.monotonic()
    with pytest.raises(NetworkError) as e:
        client.pool().create()
    assert time.monotonic() - t0 < 5
    assert e.value.status is None
    assert isinstance(e.value.__cause__, ConnectionRefusedError)
    assert "4 attempt(s)" in e.value.message
    assert not e.value.maybe_delivered  # refused: nothing reached a server


def test_a_timeout_is_retried_then_a_network_error() -> None:
    # A listener that accepts and never answers.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    try:
        client = Client(
            f"http://127.0.0.1:{s.getsockname()[1]}", timeout=0.2, retries=1, backoff=0.01
        )
        with pytest.raises(NetworkError) as e:
            client.pool().stats()
        assert isinstance(e.value.__cause__, (socket.timeout, TimeoutError))
        assert e.value.maybe_delivered
    finally:
        s.close()


def test_lost_answers_are_retried_with_one_idempotency_key(fresh_server: Server) -> None:
    with FaultProxy(fresh_server.url, ["drop", "drop"]) as proxy:
        client = Client(proxy.url, retries=3, backoff=0.01)
        key = client.pool().create()
        creates = [r for r in proxy.requests if r[0] == "POST"]
        assert len(creates) == 3
        keys = {r[2].get("Idempotency-Key") for r in creates}
        assert len(keys) == 1
        (idem,) = keys
        assert idem is not None and str(uuid.UUID(idem)) == idem
        assert client.pool().get(key.key_id).key_id == key.key_id

    with FaultProxy(fresh_server.url, ["drop"]) as proxy:
        Client(proxy.url, retries=1, backoff=0.01).pool().checkout()
        checkouts = [r for r in proxy.requests if r[0] == "GET"]
        assert len(checkouts) == 2
        assert checkouts[0][2]["Idempotency-Key"] == checkouts[1][2]["Idempotency-Key"]


def test_each_call_has_its_own_idempotency_key_and_a_given_one_is_sent(
    fresh_server: Server,
) -> None:
    with FaultProxy(fresh_server.url, []) as proxy:
        pool = Client(proxy.url).pool()
        pool.create()
        pool.create()
        pool.create(idempotency_key="job-42")
        sent = [r[2].get("Idempotency-Key") for r in proxy.requests]
        assert sent[0] != sent[1]
        assert sent[2] == "job-42"


def test_a_retried_create_makes_one_key(fresh_server: Server, features: Features) -> None:
    features.require("idempotency")
    with FaultProxy(fresh_server.url, ["drop", "drop"]) as proxy:
        key = Client(proxy.url, retries=3, backoff=0.01).pool().create()
    stats = Client(fresh_server.url).pool().stats()
    assert stats["total"] == 1
    assert Client(fresh_server.url).pool().get(key.key_id).key_id == key.key_id


def test_a_retried_checkout_gets_the_first_lease(
    fresh_server: Server, features: Features
) -> None:
    features.require("idempotency")
    direct = Client(fresh_server.url).pool()
    direct.create()
    direct.create()
    with FaultProxy(fresh_server.url, ["drop"]) as proxy:
        lease = Client(proxy.url, retries=2, backoff=0.01).pool().checkout()
    assert lease is not None
    stats = direct.stats()
    assert stats["blocked"] == 1 and stats["available"] == 1  # one lease, not two
    lease.release()


def test_a_keep_alive_connection_closed_by_the_server_is_reopened(open_server: Server) -> None:
    with FaultProxy(open_server.url, ["close"]) as proxy:
        # retries=0: only the reopening of a stale connection may send the request again.
        pool = Client(proxy.url, retries=0).pool()
        key = pool.create()
        assert pool.get(key.key_id).key_id == key.key_id
        assert len(proxy.requests) == 2
        pool.delete_key(key.key_id)


def test_a_release_whose_answer_was_lost_counts_as_done(fresh_server: Server) -> None:
    direct = Client(fresh_server.url).pool()
    direct.create()
    with FaultProxy(fresh_server.url, []) as proxy:
        pool = Client(proxy.url, retries=2, backoff=0.01).pool()
        lease = pool.checkout()
        assert lease is not None
        proxy.plan.append("drop")  # the release happens, its answer is lost
        lease.release()  # the retry finds the key free: that was our release
        assert lease.settled and not lease.lost
    assert direct.stats()["available"] == 1
