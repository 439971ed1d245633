"""HTTP transport: one keep-alive connection per thread, JSON in and out, bounded retries.

Only this module knows about sockets and ``http.client``; the rest of the package sees
``(status, headers, json)`` or a typed exception from :mod:`keypool_client.errors`.

Retries: a request that got no answer (connection refused or reset, a timeout, a connection the
server closed while idle) or a 503 is sent again after an exponential backoff with jitter, at most
``retries`` more times. Whether that is safe is the caller's business: create and checkout carry
one ``Idempotency-Key`` across attempts, the other calls are idempotent or say how they read a
404 that follows a lost answer (``Response.maybe_delivered``).
"""

from __future__ import annotations

import http.client
import json
import random
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Set, Tuple, Union
from urllib.parse import urlencode, urlsplit

from .errors import KeypoolError, NetworkError, error_for_status

__all__ = ["Transport", "Response"]

USER_AGENT = "keypool-client-python/0.1"

#: Errors of a keep-alive connection the server closed while it was idle.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)

Connection = Union[http.client.HTTPConnection, http.client.HTTPSConnection]


@dataclass
class Response:
    """A 2xx answer (errors are raised instead)."""

    status: int
    headers: Mapping[str, str]
    body: Any
    #: True when an earlier attempt of this request may have reached the server (its answer was
    #: lost), so an answer like "not found" may describe the effect of that earlier attempt.
    maybe_delivered: bool


def _retry_after(headers: Mapping[str, str]) -> Optional[float]:
    raw = headers.get("Retry-After") or headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None  # an HTTP date; the server sends seconds


class Transport:
    """Sends requests to one keypool server.

    Thread-safe: each thread uses its own connection, so a lease's background extension never
    waits behind the worker's own requests.
    """

    def __init__(
        self,
        base_url: str,
        api_key: Optional[str],
        timeout: float,
        retries: int,
        backoff: float,
        max_backoff: float,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be http(s)://HOST[:PORT][/PREFIX], not {base_url!r}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._api_key = api_key
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self._local = threading.local()
        self._lock = threading.Lock()
        #: Every open connection, so close() can close those of other threads too.
        self._conns: Set[Connection] = set()

    # -- connections -----------------------------------------------------------------------

    def _conn(self, timeout: float) -> Connection:
        conn: Optional[Connection] = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=timeout)
            self._local.conn = conn
            with self._lock:
                self._conns.add(conn)
        conn.timeout = timeout  # used by the next connect()
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def close_thread(self) -> None:
        """Closes the calling thread's connection (the next request opens a new one)."""
        conn: Optional[Connection] = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def close(self) -> None:
        """Closes every connection of every thread."""
        with self._lock:
            conns, self._conns = self._conns, set()
        self._local = threading.local()
        for conn in conns:
            conn.close()

    # -- requests --------------------------------------------------------------------------

    def _delay(self, attempt: int, retry_after: Optional[float]) -> float:
        d = min(self.max_backoff, self.backoff * float(2**attempt))
        d = d / 2 + random.uniform(0, d / 2)  # jitter, so retrying workers do not march in step
        if retry_after is not None:
            d = max(d, min(retry_after, self.max_backoff))
        return d

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Optional[Mapping[str, Any]] = None,
        body: Any = None,
        idempotency_key: Optional[str] = None,
        extra_timeout: float = 0.0,
        retry: bool = True,
    ) -> Response:
        """Sends one request (retrying as the module says) and returns its 2xx answer.

        ``extra_timeout`` lengthens the socket timeout for requests the server may hold (a
        long-poll ``wait``). Raises the typed error of an error answer, or
        :class:`NetworkError` when no answer came after the retries.
        """
        target = self._prefix + path
        if query:
            q = {k: v for k, v in query.items() if v is not None}
            if q:
                target += "?" + urlencode(q)
        headers: Dict[str, str] = {"Accept": "application/json", "User-Agent": USER_AGENT}
        data: Optional[bytes] = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        timeout = self.timeout + max(0.0, extra_timeout)

        attempt = 0
        maybe_delivered = False
        stale_retried = False
        while True:
            reused = self._has_open_conn()
            try:
                status, resp_headers, raw = self._once(method, target, data, headers, timeout)
            except (OSError, http.client.HTTPException) as e:
                self.close_thread()
                # Refused, or a refused certificate: the request never left. Anything else may
                # have reached the server.
                if not isinstance(e, (ConnectionRefusedError, ssl.CertificateError)):
                    maybe_delivered = True
                if reused and not stale_retried and isinstance(e, _STALE):
                    # The server closed an idle keep-alive connection: try a new one at once.
                    stale_retried = True
                    continue
                # A certificate the client refuses stays refused: no point in asking again.
                final = isinstance(e, ssl.CertificateError)
                if final or not retry or attempt >= self.retries:
                    what = type(e).__name__
                    err = NetworkError(
                        f"No answer from the keypool server for {method} {path} "
                        f"after {attempt + 1} attempt(s): {what}: {e}"
                    )
                    err.maybe_delivered = maybe_delivered
                    raise err from e
                time.sleep(self._delay(attempt, None))
                attempt += 1
                continue
            if status == 503 and retry and attempt < self.retries:
                # A change answered 503 did not happen: sending it again is safe.
                time.sleep(self._delay(attempt, _retry_after(resp_headers)))
                attempt += 1
                continue
            parsed = _parse(raw)
            if status >= 400:
                answer = _error(status, resp_headers, parsed, raw)
                answer.maybe_delivered = maybe_delivered
                raise answer
            return Response(status, resp_headers, parsed, maybe_delivered)

    def _has_open_conn(self) -> bool:
        conn: Optional[Connection] = getattr(self._local, "conn", None)
        return conn is not None and conn.sock is not None

    def _once(
        self,
        method: str,
        target: str,
        data: Optional[bytes],
        headers: Dict[str, str],
        timeout: float,
    ) -> Tuple[int, Mapping[str, str], bytes]:
        conn = self._conn(timeout)
        conn.request(method, target, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        resp_headers = {k.lower(): v for k, v in resp.getheaders()}
        if resp.will_close:
            self.close_thread()
        return resp.status, _Headers(resp_headers), raw


class _Headers(Dict[str, str]):
    """Response headers, looked up without regard to case."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _error(status: int, headers: Mapping[str, str], parsed: Any, raw: bytes) -> KeypoolError:
    message: Optional[str] = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        message = parsed["error"]
    elif isinstance(parsed, str) and parsed.strip():
        message = parsed.strip()[:500]
    if message is None:
        message = http.client.responses.get(status, "Error") + "."
    return error_for_status(status, message, _retry_after(headers))
