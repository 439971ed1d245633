"""Plain values of the client: durations sent, times and key records received."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Mapping, Optional, Union

__all__ = [
    "Duration",
    "CreatedKey",
    "KeyStatus",
    "format_duration",
    "seconds",
    "parse_time",
]

#: A duration: seconds as a number, or a :class:`datetime.timedelta`.
Duration = Union[int, float, timedelta]

_TIME = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", re.IGNORECASE
)


def seconds(d: Duration, name: str) -> float:
    """``d`` in seconds; ``ValueError`` naming ``name`` when negative or not a duration."""
    if isinstance(d, timedelta):
        s = d.total_seconds()
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        s = float(d)
    else:
        raise TypeError(f"{name} must be seconds (int or float) or a timedelta, not {d!r}")
    if s != s or s < 0:  # NaN or negative
        raise ValueError(f"{name} must be 0 or more seconds, not {d!r}")
    return s


def format_duration(d: Duration, name: str) -> str:
    """A duration as the server's query syntax: ``20s`` when whole seconds, else ``1500ms``."""
    s = seconds(d, name)
    if s == int(s):
        return f"{int(s)}s"
    return f"{round(s * 1000)}ms"


def parse_time(raw: Any) -> Optional[datetime]:
    """An RFC 3339 time from the server as an aware UTC datetime; ``None`` stays ``None``."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValueError(f"expected an RFC 3339 time, got {raw!r}")
    m = _TIME.match(raw)
    if m is None:
        raise ValueError(f"expected an RFC 3339 time, got {raw!r}")
    base, frac, zone = m.groups()
    micro = (frac or "").ljust(6, "0")[:6]
    zone = "+00:00" if zone.upper() == "Z" else zone
    return datetime.fromisoformat(f"{base}.{micro}{zone}").astimezone(timezone.utc)


@dataclass(frozen=True)
class CreatedKey:
    """What ``POST /keys`` answered."""

    key_id: str
    expires_at: Optional[datetime]
    #: The server's whole JSON answer, fields this client does not know included.
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> "CreatedKey":
        return cls(str(body["key_id"]), parse_time(body.get("expires_at")), dict(body))


@dataclass(frozen=True)
class KeyStatus:
    """What ``GET /keys/{key_id}`` answered: the key's state, and its value and metadata."""

    key_id: str
    is_blocked: bool
    blocked_at: Optional[datetime]
    blocked_until: Optional[datetime]
    created_at: Optional[datetime]
    expires_at: Optional[datetime]
    #: Set while the key cools down after a release with ``cooldown``.
    cooling_until: Optional[datetime]
    value: Optional[str]
    metadata: Optional[Dict[str, Any]]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> "KeyStatus":
        return cls(
            key_id=str(body["key_id"]),
            is_blocked=bool(body.get("isBlocked")),
            blocked_at=parse_time(body.get("blockedAt")),
            blocked_until=parse_time(body.get("blockedUntil")),
            created_at=parse_time(body.get("createdAt")),
            expires_at=parse_time(body.get("expiresAt")),
            cooling_until=parse_time(body.get("coolingUntil")),
            value=body.get("value"),
            metadata=body.get("metadata"),
            raw=dict(body),
        )
