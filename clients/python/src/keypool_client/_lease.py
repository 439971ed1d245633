"""Leases: a checked-out key with its fencing token, and the context manager that keeps one.

A :class:`Lease` is what one checkout handed out: ``key_id``, ``lease_id`` (new on every
checkout; the server refuses release, extension and delete under a stale one with 409),
``value`` and ``metadata``. :class:`LeaseKeeper` is what ``with pool.lease(...)`` runs: it
extends the lease from a background thread while the block runs and releases it on exit.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Dict, Literal, Mapping, Optional, Type

from ._types import Duration, parse_time, seconds
from .errors import KeypoolError, LeaseLost, NotFound

if TYPE_CHECKING:
    from ._client import Pool

__all__ = ["Lease", "LeaseKeeper"]


class Lease:
    """One checked-out key, held until it is released, deleted, or its block runs out.

    Methods are safe to call from several threads (the keeper of ``pool.lease()`` extends while
    the worker works).
    """

    def __init__(self, pool: "Pool", body: Mapping[str, Any], block: Optional[float]) -> None:
        #: The pool the key was checked out of.
        self.pool: "Pool" = pool
        self.key_id: str = str(body["key_id"])
        #: The fencing token of this checkout.
        self.lease_id: str = str(body["lease_id"])
        #: The key's secret value, or ``None`` when it has none.
        self.value: Optional[str] = body.get("value")
        #: The key's metadata object, or ``None`` when it has none.
        self.metadata: Optional[Dict[str, Any]] = body.get("metadata")
        #: The server's whole checkout answer for this key.
        self.raw: Mapping[str, Any] = dict(body)
        self._lock = threading.Lock()
        self._blocked_until: Optional[datetime] = parse_time(body.get("blocked_until"))
        self._expires_at: Optional[datetime] = parse_time(body.get("expires_at"))
        #: The lease length asked for at checkout (None: the server's --block-ttl).
        self._block = block
        self._lost: Optional[LeaseLost] = None
        #: Set by release() and delete() before their request: an extension racing with them
        #: that finds the key gone is not a lost lease.
        self._closing = False
        self._settled = False

    def __repr__(self) -> str:
        state = "lost" if self.lost else "settled" if self._settled else "held"
        return f"<Lease key_id={self.key_id} lease_id={self.lease_id} {state}>"

    @property
    def blocked_until(self) -> Optional[datetime]:
        """When the lease ends unless extended (the server's clock), as of the last answer."""
        with self._lock:
            return self._blocked_until

    @property
    def expires_at(self) -> Optional[datetime]:
        """When the key itself is deleted unless kept alive, as of the last answer that said."""
        with self._lock:
            return self._expires_at

    @property
    def lost(self) -> bool:
        """True once an answer showed that the key is no longer held under this lease."""
        with self._lock:
            return self._lost is not None

    @property
    def lost_error(self) -> Optional[LeaseLost]:
        """The :class:`LeaseLost` that showed the loss, or ``None``."""
        with self._lock:
            return self._lost

    @property
    def settled(self) -> bool:
        """True once this lease was released or its key deleted by this client."""
        with self._lock:
            return self._settled

    def check(self) -> None:
        """Raises :class:`LeaseLost` if the lease is known to be lost; a long job calls this
        between steps to stop early."""
        err = self.lost_error
        if err is not None:
            raise err

    def _lost_from(self, e: KeypoolError, action: str) -> LeaseLost:
        err = LeaseLost(
            f"Lease {self.lease_id} of key {self.key_id} is lost ({action}: {e.message})",
            e.status,
            self.key_id,
            self.lease_id,
        )
        with self._lock:
            # An extension that raced with our own release or delete finds the key gone
            # because of it: that is no loss.
            racing = action == "extend" and (self._closing or self._settled)
            if self._lost is None and not racing:
                self._lost = err
        return err

    def _mark_lost(self, err: LeaseLost) -> None:
        with self._lock:
            if self._lost is None:
                self._lost = err

    def _clear_lost(self) -> None:
        with self._lock:
            self._lost = None

    def extend(self, block: Optional[Duration] = None) -> Optional[datetime]:
        """Extends the lease: it now ends ``block`` from now (default: the length asked for at
        checkout, else the server's ``--block-ttl``). Returns the new ``blocked_until``.

        Raises :class:`LeaseLost` on 409 (another lease holds the key) or 404 (the lease ran
        out and the key is free or gone).
        """
        b = self._block if block is None else seconds(block, "block")
        try:
            body = self.pool._extend(self.key_id, self.lease_id, b)
        except NotFound as e:
            if e.message.startswith("No route"):
                raise  # a server without lease extension: not a statement about this lease
            raise self._lost_from(e, "extend") from e
        except KeypoolError as e:
            if e.status == 409:
                raise self._lost_from(e, "extend") from e
            raise
        until = parse_time(body.get("blocked_until")) if isinstance(body, dict) else None
        with self._lock:
            if until is not None:
                self._blocked_until = until
        return until

    def keepalive(self) -> Optional[datetime]:
        """Restarts the key's lifetime (``PUT /keepalive/{key_id}``); returns the new
        ``expires_at``."""
        expires = self.pool.keepalive(self.key_id)
        with self._lock:
            if expires is not None:
                self._expires_at = expires
        return expires

    def release(self, cooldown: Optional[Duration] = None) -> None:
        """Gives the key back, fenced by ``lease_id``; with ``cooldown`` it is handed out again
        only after that long.

        Raises :class:`LeaseLost` on 409 (another lease holds the key) or 404 (the lease ran
        out before the release). A release whose answer was lost and whose retry is answered
        404 or 409 counts as done (see :meth:`Pool.release`).
        """
        self._close(lambda: self.pool.release(self.key_id, self.lease_id, cooldown), "release")

    def delete(self) -> None:
        """Deletes the key, fenced by ``lease_id`` (``DELETE /keys/{key_id}?lease_id=``).

        Raises :class:`LeaseLost` on 409; a 404 means the key is already gone, which is what
        was asked.
        """

        def go() -> None:
            try:
                self.pool.delete_key(self.key_id, self.lease_id)
            except NotFound:
                pass  # gone already

        self._close(go, "delete")

    def _close(self, call: Callable[[], None], action: str) -> None:
        with self._lock:
            if self._settled:
                return
            self._closing = True
        try:
            call()
        except LeaseLost:
            raise
        except NotFound as e:
            if e.message.startswith("No route"):
                with self._lock:
                    self._closing = False
                raise
            raise self._lost_from(e, action) from e
        except KeypoolError as e:
            if e.status == 409:
                raise self._lost_from(e, action) from e
            with self._lock:
                self._closing = False
            raise
        except BaseException:
            with self._lock:
                self._closing = False
            raise
        with self._lock:
            self._settled = True

    def _length(self) -> float:
        """The lease's length in seconds: as asked, else as the checkout answer implied."""
        if self._block is not None:
            return max(1.0, self._block)
        until = self.blocked_until
        if until is None:
            return 60.0  # the server's default --block-ttl
        return max(1.0, (until - datetime.now(timezone.utc)).total_seconds())


class LeaseKeeper:
    """The context manager of :meth:`Pool.lease`: checks out on enter, keeps the lease while the
    block runs, releases it on exit.

    While the block runs a daemon thread extends the lease every ``extend_every`` seconds
    (default: a third of its length). A 409 or 404 answer to an extension marks the lease lost
    (:attr:`Lease.lost`, :meth:`Lease.check`) and stops the thread; the block goes on (a thread
    cannot interrupt it) and ``LeaseLost`` is raised when it exits, unless it raised an
    exception of its own, which is then left to propagate. Errors without an answer (network,
    503) are retried until the lease would have run out; if it did, the exit still tries the
    release, and a release accepted under our ``lease_id`` proves the lease was never taken.

    On exit the key is released (with ``cooldown`` if given) unless the block already released
    or deleted it. If the block raised, a failing release does not replace its exception.
    """

    def __init__(
        self,
        pool: "Pool",
        wait: Optional[Duration],
        block: Optional[Duration],
        cooldown: Optional[Duration],
        extend_every: Optional[Duration],
    ) -> None:
        self._pool = pool
        self._wait = wait
        self._block = block
        self._cooldown = cooldown
        self._every = None if extend_every is None else seconds(extend_every, "extend_every")
        if self._every is not None and self._every <= 0:
            raise ValueError("extend_every must be positive")
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lease: Optional[Lease] = None
        #: The lease ran out on our clock without a successful extension (no answer came).
        self._lapsed = False

    def __enter__(self) -> Lease:
        from .errors import NoAvailableKeys

        lease = self._pool.checkout(wait=self._wait, block=self._block)
        if lease is None:
            raise NoAvailableKeys("No available keys.", 404)
        self._lease = lease
        self._thread = threading.Thread(
            target=self._keep, name=f"keypool-lease-{lease.key_id}", daemon=True
        )
        self._thread.start()
        return lease

    def _keep(self) -> None:
        lease = self._lease
        assert lease is not None
        length = lease._length()
        every = self._every if self._every is not None else max(0.2, length / 3)
        deadline = time.monotonic() + length
        interval = every
        try:
            while not self._stop.wait(interval):
                sent = time.monotonic()
                try:
                    lease.extend()
                    deadline = sent + length
                    interval = every
                except LeaseLost:
                    # extend() recorded the loss (unless the worker released or deleted the
                    # key meanwhile, which _close() settles): nothing left to keep.
                    return
                except KeypoolError:
                    # No answer, 503, or an error that says nothing about the lease (401 after
                    # a revoked key, 429): keep trying while the lease may still be ours.
                    if lease._closing:
                        return
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self._lapsed = True
                        lease._mark_lost(
                            LeaseLost(
                                f"Lease {lease.lease_id} of key {lease.key_id} ran out: "
                                "no extension was answered in time.",
                                None,
                                lease.key_id,
                                lease.lease_id,
                            )
                        )
                        return
                    interval = min(every, max(0.05, left / 4))
        finally:
            self._pool._client._transport.close_thread()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> "Literal[False]":
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        lease = self._lease
        assert lease is not None
        if not lease.settled and (not lease.lost or self._lapsed):
            # After a lapse on our clock, the release is the test: accepted under our lease_id,
            # the lease was never taken, and the loss is withdrawn.
            prior = lease.lost_error
            lease._clear_lost()
            try:
                lease.release(self._cooldown)
            except LeaseLost:
                pass  # recorded on the lease; raised below
            except KeypoolError:
                if prior is not None:
                    lease._mark_lost(prior)
                elif exc_type is None:
                    raise
        if exc_type is None:
            lease.check()
        return False
