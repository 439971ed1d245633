"""The seed's pool through the client: create, checkout, get, release, keepalive, delete, stats."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from keypool_client import Client, CreatedKey, KeyStatus, Lease, LeaseLost, NotFound

from conftest import Server


def test_create_checkout_release_round_trip(fresh_server: Server) -> None:
    pool = Client(fresh_server.url).pool()
    created = pool.create()
    assert isinstance(created, CreatedKey)
    assert str(uuid.UUID(created.key_id)) == created.key_id
    assert created.expires_at is not None and created.expires_at > datetime.now(timezone.utc)

    lease = pool.checkout()
    assert isinstance(lease, Lease)
    assert lease.key_id == created.key_id
    assert lease.lease_id and lease.lease_id != lease.key_id
    assert lease.blocked_until is not None and lease.blocked_until > datetime.now(timezone.utc)
    _, stats = fresh_server.call("GET", "/stats")
    assert (stats["total"], stats["available"], stats["blocked"]) == (1, 0, 1)
    assert pool.checkout() is None  # the only key is leased

    lease.release()
    assert lease.settled and not lease.lost
    stats = pool.stats()
    assert (stats["total"], stats["available"], stats["blocked"]) == (1, 1, 0)
    assert pool.checkout() is not None


def test_checkout_of_an_empty_pool_is_none(fresh_server: Server) -> None:
    assert Client(fresh_server.url).pool("default").checkout() is None


def test_stale_lease_cannot_release_or_delete_the_next_one(fresh_server: Server) -> None:
    pool = Client(fresh_server.url).pool()
    pool.create()
    first = pool.checkout()
    assert first is not None
    # The key is given back without the lease (as a lapsed block would) and leased again.
    pool.release(first.key_id)
    second = pool.checkout()
    assert second is not None and second.key_id == first.key_id
    assert second.lease_id != first.lease_id

    with pytest.raises(LeaseLost) as e:
        first.release()
    assert e.value.status == 409
    assert e.value.key_id == first.key_id and e.value.lease_id == first.lease_id
    assert first.lost and first.lost_error is e.value
    with pytest.raises(LeaseLost):
        first.delete()

    status = pool.get(second.key_id)
    assert status.is_blocked  # still held by the second lease
    second.release()
    assert not pool.get(second.key_id).is_blocked


def test_release_after_the_lease_ran_out_is_lease_lost(fresh_server: Server) -> None:
    pool = Client(fresh_server.url).pool()
    pool.create()
    lease = pool.checkout()
    assert lease is not None
    pool.release(lease.key_id)  # freed behind the lease's back; nobody holds it now
    with pytest.raises(LeaseLost) as e:
        lease.release()
    assert e.value.status in (404, 409)  # the server may remember the lease it freed


def test_release_twice_sends_once(fresh_server: Server) -> None:
    pool = Client(fresh_server.url).pool()
    pool.create()
    lease = pool.checkout()
    assert lease is not None
    lease.release()
    lease.release()  # settled: nothing is sent, nothing raised
    with pytest.raises(NotFound) as e:
        pool.release(lease.key_id)  # unfenced, the key is not blocked
    assert e.value.message == "Key not found or not blocked."


def test_get_reports_the_key_state(fresh_server: Server) -> None:
    pool = Client(fresh_server.url).pool()
    key = pool.create()
    st = pool.get(key.key_id)
    assert isinstance(st, KeyStatus)
    assert st.key_id == key.key_id and not st.is_blocked
    assert st.blocked_at is None and st.blocked_until is None
    assert st.created_at is not None and st.expires_at == key.expires_at
    lease = pool.checkout()
    assert lease is not None
    st = pool.get(key.key_id)
    assert st.is_blocked and st.blocked_until == lease.blocked_until
    with pytest.raises(NotFound):
        pool.get(str(uuid.uuid4()))
    with pytest.raises(NotFound):
        pool.get("not-a-uuid/../stats")


def test_keepalive_restarts_the_lifetime(fresh_server: Server) -> None:
    pool = Client(fresh_server.url).pool()
    key = pool.create()
    lease = pool.checkout()
    assert lease is not None and key.expires_at is not None
    expires = lease.keepalive()
    assert expires is not None and expires >= key.expires_at
    assert lease.expires_at == expires
    assert pool.keepalive(key.key_id) is not None
    with pytest.raises(NotFound):
        pool.keepalive(str(uuid.uuid4()))


def test_delete_through_the_lease(fresh_server: Server) -> None:
    pool = Client(fresh_server.url).pool()
    key = pool.create()
    lease = pool.checkout()
    assert lease is not None
    lease.delete()
    assert lease.settled
    with pytest.raises(NotFound):
        pool.get(key.key_id)
    assert pool.stats()["total"] == 0
    lease.delete()  # settled: no request, no error


def test_delete_key_unfenced(fresh_server: Server) -> None:
    pool = Client(fresh_server.url).pool()
    key = pool.create()
    pool.delete_key(key.key_id)
    with pytest.raises(NotFound):
        pool.delete_key(key.key_id)


def test_client_is_a_context_manager_and_reconnects(fresh_server: Server) -> None:
    with Client(fresh_server.url, timeout=5) as client:
        client.pool().create()
    client.pool().create()  # a closed client opens a new connection
    assert client.pool().stats()["total"] == 2


def test_invalid_arguments_are_refused_before_sending() -> None:
    client = Client("http://127.0.0.1:9")
    for bad in ["", "a/b", "x" * 65, "with space", "ü"]:
        with pytest.raises(ValueError):
            client.pool(bad)
    pool = client.pool("ok.name-1_")
    with pytest.raises(ValueError):
        pool.checkout(count=0)
    with pytest.raises(ValueError):
        pool.checkout(count=101)
    with pytest.raises(ValueError):
        pool.checkout(wait=-1)
    with pytest.raises(TypeError):
        pool.create(value=b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Client("ftp://example.com")
