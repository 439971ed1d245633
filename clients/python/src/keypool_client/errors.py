"""The exceptions of the keypool client: one class per answer a worker handles differently.

Every error the server answers is ``{"error": "<sentence>"}`` with a status; the client raises
the class of that status with the sentence as :attr:`KeypoolError.message`. Network failures
that outlast the retries are :class:`NetworkError`; a lease that a 409 (or a 404 on extension)
shows to be gone is :class:`LeaseLost`.
"""

from __future__ import annotations

from typing import Dict, Optional, Type

__all__ = [
    "KeypoolError",
    "BadRequest",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "NoAvailableKeys",
    "Conflict",
    "LeaseLost",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "Unavailable",
    "NetworkError",
    "error_for_status",
]


class KeypoolError(Exception):
    """Base of every error this client raises.

    ``status`` is the HTTP status the server answered (``None`` when no answer came), ``message``
    the server's own sentence from its ``{"error": ...}`` body.
    """

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message if status is None else f"{status}: {message}")
        self.message: str = message
        self.status: Optional[int] = status
        #: True when an earlier attempt of the same call may have reached the server and its
        #: answer was lost; e.g. a 404 on a retried release may describe that first release.
        self.maybe_delivered: bool = False


class BadRequest(KeypoolError):
    """400: a malformed or out-of-range field; the message names it."""


class Unauthorized(KeypoolError):
    """401: no credential, or a wrong, revoked, expired or disabled one."""


class Forbidden(KeypoolError):
    """403: the credential is valid but may not do this (scope, address)."""


class NotFound(KeypoolError):
    """404: unknown key, pool or route."""


class NoAvailableKeys(NotFound):
    """404 ``No available keys.``: raised by :meth:`Pool.lease` when no key was free in time.

    :meth:`Pool.checkout` returns ``None`` (or an empty list) for the same answer instead.
    """


class Conflict(KeypoolError):
    """409: e.g. an ``Idempotency-Key`` reused for a different request."""


class LeaseLost(KeypoolError):
    """The lease is no longer ours: the server answered 409 (another lease holds the key) or,
    on extension or release, 404 (the lease ran out and the key was freed or deleted).

    Whoever held the key may have used it at the same time as us; work done under the lease
    should be treated as not fenced. ``key_id`` and ``lease_id`` name the lost lease.
    """

    def __init__(
        self,
        message: str,
        status: Optional[int] = None,
        key_id: str = "",
        lease_id: str = "",
    ) -> None:
        super().__init__(message, status)
        self.key_id: str = key_id
        self.lease_id: str = lease_id


class PayloadTooLarge(KeypoolError):
    """413: the request body is over the server's ``--max-body``."""


class RateLimited(KeypoolError):
    """429: a rate limit or a credit limit; ``retry_after`` (seconds) from ``Retry-After``."""

    def __init__(
        self, message: str, status: Optional[int] = 429, retry_after: Optional[float] = None
    ) -> None:
        super().__init__(message, status)
        self.retry_after: Optional[float] = retry_after


class ServerError(KeypoolError):
    """500 and other 5xx answers that are not 503."""


class Unavailable(ServerError):
    """503: the server is busy, shutting down, or could not make the change durable.

    A change answered 503 did not happen. ``retry_after`` is the server's ``Retry-After``.
    """

    def __init__(
        self, message: str, status: Optional[int] = 503, retry_after: Optional[float] = None
    ) -> None:
        super().__init__(message, status)
        self.retry_after: Optional[float] = retry_after


class NetworkError(KeypoolError):
    """No answer: connection refused or reset, or a timeout, after every retry.

    ``status`` is ``None``; the underlying :class:`OSError` is ``__cause__``.
    """


_BY_STATUS: Dict[int, Type[KeypoolError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    429: RateLimited,
    503: Unavailable,
}


def error_for_status(
    status: int, message: str, retry_after: Optional[float] = None
) -> KeypoolError:
    """The exception for an error answer: the class of ``status``, else :class:`ServerError`
    for 5xx and :class:`KeypoolError` for anything else."""
    cls = _BY_STATUS.get(status)
    if cls is RateLimited:
        return RateLimited(message, status, retry_after)
    if cls is Unavailable:
        return Unavailable(message, status, retry_after)
    if cls is not None:
        return cls(message, status)
    if status >= 500:
        return ServerError(message, status)
    return KeypoolError(message, status)
