"""``with pool.lease(...)``: checkout on enter, background extension, release on exit, LeaseLost."""

from __future__ import annotations

import threading
import time
from typing import Dict, List

import pytest

from keypool_client import Client, LeaseLost, NoAvailableKeys, NotFound

from conftest import Features, Server


def wait_for(cond, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_lease_holds_the_key_inside_and_releases_it_on_exit(fresh_server: Server) -> None:
    pool = Client(fresh_server.url).pool()
    key = pool.create()
    with pool.lease() as lease:
        assert lease.key_id == key.key_id
        assert pool.get(key.key_id).is_blocked
        assert pool.checkout() is None
    assert lease.settled and not lease.lost
    assert not pool.get(key.key_id).is_blocked


def test_lease_releases_when_the_block_raises(fresh_server: Server) -> None:
    pool = Client(fresh_server.url).pool()
    key = pool.create()
    with pytest.raises(ZeroDivisionError):
        with pool.lease():
            1 / 0
    assert not pool.get(key.key_id).is_blocked


def test_lease_of_an_empty_pool_raises_no_available_keys(fresh_server: Server) -> None:
    pool = Client(fresh_server.url).pool()
    with pytest.raises(NoAvailableKeys) as e:
        with pool.lease():
            pytest.fail("the block must not run")
    assert isinstance(e.value, NotFound) and e.value.status == 404


def test_a_lease_taken_meanwhile_raises_lease_lost_on_exit(fresh_server: Server) -> None:
    pool = Client(fresh_server.url).pool()
    pool.create()
    with pytest.raises(LeaseLost) as e:
        with pool.lease() as lease:
            pool.release(lease.key_id)  # another hand frees the key and leases it again
            other = pool.checkout()
            assert other is not None
    assert e.value.status == 409 and e.value.lease_id == lease.lease_id
    assert lease.lost
    assert pool.get(lease.key_id).is_blocked  # the exit did not release the other lease
    assert other is not None
    other.release()


def test_the_block_may_release_or_delete_itself(fresh_server: Server) -> None:
    pool = Client(fresh_server.url).pool()
    pool.create()
    pool.create()
    with pool.lease() as a:
        a.release()
    with pool.lease() as b:
        b.delete()
    assert pool.stats()["total"] == 1
    assert not a.lost and not b.lost


def test_the_blocks_own_exception_wins_over_a_lost_lease(fresh_server: Server) -> None:
    pool = Client(fresh_server.url).pool()
    pool.create()
    with pytest.raises(KeyError):
        with pool.lease() as lease:
            pool.release(lease.key_id)
            pool.checkout()
            raise KeyError("work failed")
    assert lease.lost


def test_the_lease_is_extended_while_the_block_runs(
    fresh_server: Server, features: Features
) -> None:
    features.require("extend", "block")
    pool = Client(fresh_server.url).pool()
    key = pool.create()
    with pool.lease(block=2, extend_every=0.4) as lease:
        first_end = lease.blocked_until
        time.sleep(3.5)  # past the 2 s the lease had at checkout
        assert not lease.lost
        assert lease.blocked_until is not None and first_end is not None
        assert lease.blocked_until > first_end
        assert pool.get(key.key_id).is_blocked
        assert pool.checkout() is None
    assert not lease.lost  # the release at exit was accepted under our lease_id
    assert not pool.get(key.key_id).is_blocked


def test_the_keeper_notices_a_lost_lease(fresh_server: Server, features: Features) -> None:
    features.require("extend")
    pool = Client(fresh_server.url).pool()
    pool.create()
    with pytest.raises(LeaseLost):
        with pool.lease(block=30, extend_every=0.1) as lease:
            pool.release(lease.key_id)
            other = pool.checkout()
            assert other is not None
            assert wait_for(lambda: lease.lost), "the keeper never saw the 409"
            with pytest.raises(LeaseLost):
                lease.check()
    assert pool.get(lease.key_id).is_blocked  # still the other lease's
    assert other is not None
    other.release()


def test_extend_moves_the_end_and_a_stale_extend_is_lease_lost(
    fresh_server: Server, features: Features
) -> None:
    features.require("extend", "block")
    pool = Client(fresh_server.url).pool()
    pool.create()
    lease = pool.checkout(block=5)
    assert lease is not None and lease.blocked_until is not None
    first = lease.blocked_until
    until = lease.extend(block=120)
    assert until is not None and (until - first).total_seconds() > 60
    assert lease.blocked_until == until
    pool.release(lease.key_id)
    again = pool.checkout()
    assert again is not None
    with pytest.raises(LeaseLost) as e:
        lease.extend()
    assert e.value.status == 409
    again.release()


def test_extend_of_a_free_key_is_lease_lost(fresh_server: Server, features: Features) -> None:
    features.require("extend")
    pool = Client(fresh_server.url).pool()
    pool.create()
    lease = pool.checkout()
    assert lease is not None
    pool.release(lease.key_id)
    with pytest.raises(LeaseLost) as e:
        lease.extend()
    assert e.value.status in (404, 409)


def test_extensions_without_answers_until_the_lease_ran_out_lose_it(
    fresh_server: Server, features: Features
) -> None:
    features.require("extend", "block")
    from proxy import FaultProxy

    with FaultProxy(fresh_server.url, []) as proxy:
        pool = Client(proxy.url, retries=0).pool()
        pool.create()
        with pytest.raises(LeaseLost) as e:
            with pool.lease(block=1, extend_every=0.2) as lease:
                proxy.plan.extend([(503, {"Retry-After": "0"})] * 1000)  # the server is away
                assert wait_for(lambda: lease.lost), "the keeper never gave the lease up"
                assert lease.lost_error is not None and lease.lost_error.status is None
                direct = Client(fresh_server.url).pool()
                assert wait_for(lambda: not direct.get(lease.key_id).is_blocked)
                proxy.plan.clear()  # back; the server freed the key when the block ran out
        # The release on exit was tried and refused: the lease had really run out.
        assert e.value.status == 409
    assert not Client(fresh_server.url).pool().get(lease.key_id).is_blocked


def test_an_extension_racing_with_our_own_release_is_no_loss(
    fresh_server: Server, features: Features
) -> None:
    features.require("extend", "block")
    pool = Client(fresh_server.url).pool()
    pool.create()
    for _ in range(15):
        with pool.lease(block=30, extend_every=0.01) as lease:
            time.sleep(0.05)  # the keeper extends all the while
            lease.release()
            time.sleep(0.02)  # an extension may land after the release
        assert lease.settled and not lease.lost
    assert pool.stats()["available"] == 1


def test_threads_sharing_a_client_never_hold_one_key_together(
    open_server: Server, features: Features
) -> None:
    features.require("named_pools", "wait")
    from conftest import unique

    pool = Client(open_server.url).pool(unique("threads"))
    for _ in range(3):
        pool.create()
    holders: Dict[str, str] = {}  # key_id -> lease_id, while held
    lock = threading.Lock()
    errors: List[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(4):
                with pool.lease(wait=20, block=30) as lease:
                    with lock:
                        assert lease.key_id not in holders, "two leases on one key"
                        holders[lease.key_id] = lease.lease_id
                    time.sleep(0.02)
                    with lock:
                        del holders[lease.key_id]
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert pool.stats()["available"] == 3
