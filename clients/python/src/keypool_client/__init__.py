"""keypool_client: a Python client for keypool's key pools, for workers.

::

    from keypool_client import Client, LeaseLost

    pool = Client("http://127.0.0.1:5001", api_key="sk_live_...").pool("scrapers")
    pool.create(value="secret-token", metadata={"owner": "ci"})
    with pool.lease(wait=20, block=60) as lease:
        use(lease.value)  # extended in the background, released on exit

Standard library only. See README.md beside this package for the whole API.
"""

from ._client import DEFAULT_POOL, Client, Pool
from ._lease import Lease, LeaseKeeper
from ._types import CreatedKey, Duration, KeyStatus
from .errors import (
    BadRequest,
    Conflict,
    Forbidden,
    KeypoolError,
    LeaseLost,
    NetworkError,
    NoAvailableKeys,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    Unauthorized,
    Unavailable,
)

__version__ = "0.1.0"

__all__ = [
    "Client",
    "Pool",
    "Lease",
    "LeaseKeeper",
    "CreatedKey",
    "KeyStatus",
    "Duration",
    "DEFAULT_POOL",
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
]
