"""Credentials and typed errors, against a server without --open-pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from keypool_client import (
    BadRequest,
    Client,
    KeypoolError,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
)

from conftest import Server, api_key, unique
from proxy import FaultProxy


def test_pool_routes_need_a_credential(auth_server: Server) -> None:
    pool = Client(auth_server.url).pool()
    with pytest.raises(Unauthorized) as e:
        pool.create()
    status, body = auth_server.call("POST", "/keys")
    assert e.value.status == status == 401
    assert e.value.message == body["error"]  # the server's own sentence
    assert isinstance(e.value, KeypoolError)


def test_a_wrong_key_is_unauthorized(auth_server: Server) -> None:
    bad = "sk_live_" + "A" * 38
    with pytest.raises(Unauthorized) as e:
        Client(auth_server.url, api_key=bad).pool().checkout()
    assert e.value.message


def test_an_api_key_works_and_pools_of_accounts_never_meet(auth_server: Server) -> None:
    alice = Client(auth_server.url, api_key=api_key(auth_server, unique("alice")))
    bob = Client(auth_server.url, api_key=api_key(auth_server, unique("bob")))
    key = alice.pool().create()
    assert alice.pool().stats()["total"] == 1
    assert bob.pool().stats()["total"] == 0
    assert bob.pool().checkout() is None
    with pytest.raises(NotFound):
        bob.pool().get(key.key_id)
    lease = alice.pool().checkout()
    assert lease is not None and lease.key_id == key.key_id
    lease.release()


def test_bad_request_names_the_field(fresh_server: Server) -> None:
    pool = Client(fresh_server.url).pool()
    pool.create()
    with pytest.raises(BadRequest) as e:
        pool.release(pool.create().key_id, lease_id="not-a-uuid")
    assert "lease_id" in e.value.message


def test_rate_limit_carries_retry_after(tmp_path: Path) -> None:
    server = Server(tmp_path, ["--ip-rate-limit", "2/1m"])
    try:
        client = Client(server.url, api_key="sk_live_" + "B" * 38)
        seen = []
        for _ in range(4):
            try:
                client.pool().stats()
            except (Unauthorized, RateLimited) as e:
                seen.append(e)
        limited = [e for e in seen if isinstance(e, RateLimited)]
        assert limited, seen
        assert limited[0].status == 429
        assert limited[0].retry_after is not None and limited[0].retry_after > 0
    finally:
        server.stop()


def test_unavailable_after_the_retries(open_server: Server) -> None:
    busy = (503, {"Retry-After": "0"})
    with FaultProxy(open_server.url, [busy] * 3) as proxy:
        client = Client(proxy.url, retries=2, backoff=0.01)
        with pytest.raises(Unavailable) as e:
            client.pool(unique()).stats()
        assert e.value.status == 503 and e.value.retry_after == 0
        assert len(proxy.requests) == 3  # the first attempt and two retries
