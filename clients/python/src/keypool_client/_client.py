"""The client and its pools: one method per route of the keypool contract."""

from __future__ import annotations

import re
import uuid
from urllib.parse import quote
from datetime import datetime
from types import TracebackType
from typing import Any, Dict, List, Mapping, Optional, Type, Union, overload

from ._http import Transport
from ._lease import Lease, LeaseKeeper
from ._types import CreatedKey, Duration, KeyStatus, format_duration, parse_time, seconds
from .errors import Conflict, NotFound

__all__ = ["Client", "Pool", "DEFAULT_POOL"]

#: The pool of the plain routes (``/keys``, ``/stats``, ...).
DEFAULT_POOL = "default"

_POOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NO_KEYS = "No available keys."
_COUNT_MAX = 100


class Client:
    """A connection to one keypool server.

    ``api_key`` is an ``sk_live_...`` key (or a session token), sent as
    ``Authorization: Bearer``; leave it out for a server run with ``--open-pool``.
    ``timeout`` (seconds) bounds each attempt of a request; a long-poll checkout's ``wait`` is
    added to it. Requests that got no answer (connection refused or reset, timeouts) and 503
    answers are retried up to ``retries`` times with exponential backoff from ``backoff`` to
    ``max_backoff`` seconds; create and checkout keep one ``Idempotency-Key`` across attempts,
    so a retry never creates a second key or leases a second one.

    Thread-safe; each thread keeps its own keep-alive connection. Usable as a context manager
    that closes the connections.
    """

    def __init__(
        self,
        base_url: str,
        api_key: Optional[str] = None,
        timeout: float = 10.0,
        *,
        retries: int = 4,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
    ) -> None:
        self.base_url = base_url
        self._transport = Transport(base_url, api_key, timeout, retries, backoff, max_backoff)

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def pool(self, name: str = DEFAULT_POOL) -> "Pool":
        """The pool ``name`` of the caller's account (``default``: the plain ``/keys`` routes).

        Raises ``ValueError`` unless the name is 1-64 letters, digits, ``_``, ``.`` or ``-``.
        A pool exists on the server once it holds a key; this call sends nothing.
        """
        return Pool(self, name)

    def pools(self) -> List[Dict[str, Any]]:
        """``GET /pools``: every pool of the account, as the server's objects
        (``name``, ``total``, ``available``, ``blocked``, ``cooling``)."""
        body = self._transport.request("GET", "/pools").body
        return list(body["pools"])

    def close(self) -> None:
        """Closes every connection; the client opens new ones if used again."""
        self._transport.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


class Pool:
    """One named pool of the caller's account. Get it from :meth:`Client.pool`."""

    def __init__(self, client: Client, name: str = DEFAULT_POOL) -> None:
        if not isinstance(name, str) or not _POOL_NAME.match(name):
            raise ValueError(
                f"pool name must be 1-64 characters of letters, digits, '_', '.', '-': {name!r}"
            )
        self._client = client
        self.name = name
        # The default pool answers on the plain routes, so this also works with servers that
        # predate named pools.
        self._prefix = "" if name == DEFAULT_POOL else f"/pools/{name}"

    def __repr__(self) -> str:
        return f"<Pool {self.name!r} of {self._client.base_url}>"

    @property
    def _t(self) -> Transport:
        return self._client._transport

    # -- keys ------------------------------------------------------------------------------

    def create(
        self,
        value: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        ttl: Optional[Duration] = None,
        *,
        idempotency_key: Optional[str] = None,
    ) -> CreatedKey:
        """Adds a key (``POST /keys``): with a secret ``value`` (a string, at most 4096 bytes),
        ``metadata`` (a JSON object) and a ``ttl`` (seconds, 1 s - 30 days; default the
        server's ``--key-ttl``), each optional.

        Retries send the same ``Idempotency-Key`` (a new UUID unless given), so one call
        creates at most one key.
        """
        body: Dict[str, Any] = {}
        if value is not None:
            if not isinstance(value, str):
                raise TypeError("value must be a string")
            body["value"] = value
        if metadata is not None:
            body["metadata"] = dict(metadata)
        if ttl is not None:
            s = seconds(ttl, "ttl")
            body["ttl"] = int(s) if s == int(s) else s
        r = self._t.request(
            "POST",
            self._prefix + "/keys",
            body=body or None,
            idempotency_key=idempotency_key or str(uuid.uuid4()),
        )
        return CreatedKey.from_json(r.body)

    @overload
    def checkout(
        self,
        count: None = None,
        wait: Optional[Duration] = None,
        block: Optional[Duration] = None,
        *,
        idempotency_key: Optional[str] = None,
    ) -> Optional[Lease]: ...

    @overload
    def checkout(
        self,
        count: int,
        wait: Optional[Duration] = None,
        block: Optional[Duration] = None,
        *,
        idempotency_key: Optional[str] = None,
    ) -> List[Lease]: ...

    def checkout(
        self,
        count: Optional[int] = None,
        wait: Optional[Duration] = None,
        block: Optional[Duration] = None,
        *,
        idempotency_key: Optional[str] = None,
    ) -> Union[Optional[Lease], List[Lease]]:
        """Leases free keys (``GET /keys``).

        Without ``count``: one :class:`Lease`, or ``None`` when no key is free (the server's
        404 ``No available keys.``). With ``count`` (1-100): a list of up to that many leases,
        empty when none is free. ``wait`` (0-30 s) waits for a key to come free; ``block`` sets
        the lease's length (default the server's ``--block-ttl``).

        Nothing extends these leases: release them, or use :meth:`lease`. Retries send the same
        ``Idempotency-Key``, so a lost answer is answered again with the same leases.
        """
        if count is not None:
            if isinstance(count, bool) or not isinstance(count, int):
                raise TypeError("count must be an int")
            if not 1 <= count <= _COUNT_MAX:
                raise ValueError(f"count must be 1-{_COUNT_MAX}, not {count}")
        wait_s = None if wait is None else seconds(wait, "wait")
        block_s = None if block is None else seconds(block, "block")
        query = {
            "count": count,
            "wait": None if wait is None else format_duration(wait, "wait"),
            "block": None if block is None else format_duration(block, "block"),
        }
        try:
            r = self._t.request(
                "GET",
                self._prefix + "/keys",
                query=query,
                idempotency_key=idempotency_key or str(uuid.uuid4()),
                extra_timeout=wait_s or 0.0,
            )
        except NotFound as e:
            if e.message == _NO_KEYS:
                return None if count is None else []
            raise
        body = r.body
        if count is None:
            return Lease(self, body, block_s)
        items = body["keys"] if isinstance(body, dict) and "keys" in body else [body]
        return [Lease(self, item, block_s) for item in items]

    def lease(
        self,
        wait: Optional[Duration] = None,
        block: Optional[Duration] = None,
        *,
        cooldown: Optional[Duration] = None,
        extend_every: Optional[Duration] = None,
    ) -> LeaseKeeper:
        """A context manager that leases one key and keeps it while the block runs::

            with pool.lease(wait=20, block=60) as lease:
                use(lease.value)

        On enter it checks out one key (``wait``, ``block`` as in :meth:`checkout`) and
        raises :class:`~keypool_client.errors.NoAvailableKeys` when none came free. While the
        block runs a background thread extends the lease (every ``extend_every`` seconds,
        default a third of its length). On exit the key is released (after ``cooldown`` it is
        handed out again), also when the block raised. If the server showed the lease lost (409,
        or 404 on extension), :class:`~keypool_client.errors.LeaseLost` is raised on exit (and
        ``lease.lost`` is true as soon as it is known).
        """
        return LeaseKeeper(self, wait, block, cooldown, extend_every)

    def get(self, key_id: str) -> KeyStatus:
        """``GET /keys/{key_id}``: the key's state, value and metadata."""
        r = self._t.request("GET", f"{self._prefix}/keys/{_id(key_id)}")
        return KeyStatus.from_json(r.body)

    def release(
        self, key_id: str, lease_id: Optional[str] = None, cooldown: Optional[Duration] = None
    ) -> None:
        """``PUT /keys/{key_id}``: makes the key available again (after ``cooldown``).

        With ``lease_id`` the release is fenced: 409 (raised as
        :class:`~keypool_client.errors.Conflict`) when the key is no longer held under that
        lease. Prefer :meth:`Lease.release`, which raises ``LeaseLost`` instead.

        A 404 or 409 that follows an attempt whose answer was lost counts as done: the server
        answers a second release under the same lease that way, so the first attempt is taken
        to have released the key (the lease cannot be told from one lost just then).
        """
        query = {
            "lease_id": lease_id,
            "cooldown": None if cooldown is None else format_duration(cooldown, "cooldown"),
        }
        try:
            self._t.request("PUT", f"{self._prefix}/keys/{_id(key_id)}", query=query)
        except (NotFound, Conflict) as e:
            if not e.maybe_delivered:
                raise

    def delete_key(self, key_id: str, lease_id: Optional[str] = None) -> None:
        """``DELETE /keys/{key_id}`` (fenced by ``lease_id`` when given)."""
        self._t.request(
            "DELETE", f"{self._prefix}/keys/{_id(key_id)}", query={"lease_id": lease_id}
        )

    def keepalive(self, key_id: str) -> Optional[datetime]:
        """``PUT /keepalive/{key_id}``: restarts the key's lifetime; returns the new
        ``expires_at``."""
        r = self._t.request("PUT", f"{self._prefix}/keepalive/{_id(key_id)}")
        return parse_time(r.body.get("expires_at")) if isinstance(r.body, dict) else None

    def _extend(self, key_id: str, lease_id: str, block: Optional[float]) -> Any:
        query = {
            "lease_id": lease_id,
            "block": None if block is None else format_duration(block, "block"),
        }
        return self._t.request(
            "PUT", f"{self._prefix}/keys/{_id(key_id)}/lease", query=query
        ).body

    # -- the pool --------------------------------------------------------------------------

    def stats(self) -> Dict[str, Any]:
        """``GET /stats`` (or ``/pools/{name}/stats``): the server's object, with ``total``,
        ``available``, ``blocked`` and ``cooling``."""
        return dict(self._t.request("GET", self._prefix + "/stats").body)

    def delete(self) -> None:
        """``DELETE /pools/{name}``: deletes the pool and every key in it. Raises
        :class:`~keypool_client.errors.NotFound` when the pool does not exist (unless an
        earlier attempt whose answer was lost deleted it)."""
        try:
            self._t.request("DELETE", f"/pools/{self.name}")
        except NotFound as e:
            if not e.maybe_delivered:
                raise


def _id(key_id: str) -> str:
    """A key id as one path segment."""
    return quote(str(key_id), safe="")
