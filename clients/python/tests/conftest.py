"""Fixtures: the real keypool binary on a free port, and helpers to talk to it without the client.

The binary is ``$KEYPOOL_BIN``, else ``target/debug/keypool`` of the repository this package
lives in (build it with ``cargo build``). Each server gets its own temporary data directory and
is stopped (SIGTERM, then SIGKILL) when its fixture ends.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parents[3]
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


def binary() -> Path:
    path = Path(os.environ.get("KEYPOOL_BIN") or REPO / "target" / "debug" / "keypool")
    if not path.is_file():
        pytest.fail(f"no keypool binary at {path}: run `cargo build` or set KEYPOOL_BIN")
    return path


class Server:
    """A running keypool process."""

    def __init__(self, data_dir: Path, args: List[str]) -> None:
        self.data_dir = data_dir
        self.log = open(data_dir / "stderr.log", "wb")
        self.proc = subprocess.Popen(
            [str(binary()), "--bind", "127.0.0.1:0", "--data-dir", str(data_dir / "data"), *args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
        )
        self.url = self._read_address(timeout=30)
        # Keep reading stdout so the server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()

    def _read_address(self, timeout: float) -> str:
        found: List[str] = []

        def read() -> None:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline().decode("utf-8", "replace")
            found.append(line)

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        line = found[0] if found else ""
        m = LISTENING.search(line)
        if m is None:
            self.stop()
            err = (self.data_dir / "stderr.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"keypool did not print its address (got {line!r}); stderr:\n{err}")
        return m.group(1)

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for _ in iter(self.proc.stdout.readline, b""):
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()

    # -- raw HTTP, to check the server's state without the client under test ------------------

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> Tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode("utf-8", "replace")


@pytest.fixture(scope="session")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``--open-pool`` server for the tests that use distinct named pools or own keys."""
    s = Server(tmp_path_factory.mktemp("open"), ["--open-pool"])
    yield s
    s.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    """An ``--open-pool`` server of the test's own, for tests that count the default pool."""
    s = Server(tmp_path, ["--open-pool"])
    yield s
    s.stop()


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server without ``--open-pool``: pool routes need a credential."""
    s = Server(tmp_path_factory.mktemp("auth"), ["--ip-rate-limit", "1000/1m"])
    yield s
    s.stop()


def api_key(server: Server, username: str) -> str:
    """Registers ``username`` and returns a new ``sk_live_`` key of that account."""
    status, body = server.call(
        "POST", "/register", {"username": username, "password": "correct horse battery"}
    )
    assert status == 201, body
    status, body = server.call(
        "POST", "/login", {"username": username, "password": "correct horse battery"}
    )
    assert status == 200, body
    token = body["token"]
    status, body = server.call(
        "POST", "/generate-key", {"name": "worker"}, {"Authorization": f"Bearer {token}"}
    )
    assert status == 201, body
    key = body["key"]
    assert isinstance(key, str) and key.startswith("sk_live_")
    return key


def server_has(server: Server, method: str, path: str) -> bool:
    """Whether the server knows a route (a 404 saying "No route" means it does not)."""
    status, body = server.call(method, path)
    return not (status == 404 and isinstance(body, dict) and "No route" in body.get("error", ""))


_counter = [0]


def unique(prefix: str = "p") -> str:
    """A pool name no other test uses."""
    _counter[0] += 1
    return f"{prefix}-{os.getpid()}-{_counter[0]}"


class Features:
    """What the binary under test implements of the contract's second round, probed once on a
    server of its own, so tests of features not built yet skip (saying why) instead of failing."""

    def __init__(self, server: Server) -> None:
        import time
        import uuid
        from datetime import datetime, timezone

        def secs_until(stamp: str) -> float:
            t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            return (t - datetime.now(timezone.utc)).total_seconds()

        zero = str(uuid.uuid4())
        self.named_pools = server_has(server, "GET", "/pools")
        self.extend = server_has(server, "PUT", f"/keys/{zero}/lease?lease_id={zero}")

        status, body = server.call("POST", "/keys", {"value": "v", "metadata": {"m": 1}, "ttl": 100})
        assert status == 201, body
        key = body["key_id"]
        self.ttl = 50 < secs_until(body["expires_at"]) < 150
        _, got = server.call("GET", f"/keys/{key}")
        self.values = isinstance(got, dict) and got.get("value") == "v"

        status, body = server.call("GET", "/keys?block=5s")
        assert status == 200, body
        self.block = secs_until(body["blocked_until"]) < 30
        status, _ = server.call("PUT", f"/keys/{key}?lease_id={body['lease_id']}&cooldown=30s")
        assert status == 200
        _, stats = server.call("GET", "/stats")
        self.cooldown = isinstance(stats, dict) and stats.get("cooling") == 1

        server.call("POST", "/keys")
        status, body = server.call("GET", "/keys?count=5")
        self.count = status == 200 and isinstance(body, dict) and "keys" in body

        idem = {"Idempotency-Key": str(uuid.uuid4())}
        _, a = server.call("POST", "/keys", None, idem)
        _, b = server.call("POST", "/keys", None, idem)
        self.idempotency = a["key_id"] == b["key_id"]

        t0 = time.monotonic()
        server.call("GET", "/pools/none-here/keys?wait=1s" if self.named_pools else "/keys?wait=1s")
        self.wait = time.monotonic() - t0 > 0.7 and self.named_pools

    def require(self, *names: str) -> None:
        missing = [n for n in names if not getattr(self, n)]
        if missing:
            pytest.skip(f"the keypool binary does not implement {', '.join(missing)} yet")


@pytest.fixture(scope="session")
def features(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Features]:
    s = Server(tmp_path_factory.mktemp("probe"), ["--open-pool"])
    try:
        yield Features(s)
    finally:
        s.stop()
