"""A small HTTP proxy in front of the real server that misbehaves on cue.

Each request the proxy reads takes the next action of its plan (then ``forward`` once the plan is
used up):

- ``forward``: pass the request on and its answer back;
- ``drop``: pass the request on (the server acts on it), then close the connection without
  answering: the answer is lost;
- ``close``: answer, then close the connection, as a server closing an idle keep-alive
  connection does (the client only notices on its next request);
- ``(status, headers)``: answer that status itself with ``{"error": ...}`` and do not pass the
  request on.

It records every request it read (method, target, headers) in ``requests``.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from typing import Any, Dict, List, Tuple, Union
from urllib.parse import urlsplit

Action = Union[str, Tuple[int, Dict[str, str]]]


class FaultProxy:
    def __init__(self, upstream: str, plan: List[Action]) -> None:
        u = urlsplit(upstream)
        self._up = (u.hostname or "127.0.0.1", u.port or 80)
        self.plan = list(plan)
        self.requests: List[Tuple[str, str, Dict[str, str]]] = []
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _next(self) -> Action:
        with self._lock:
            return self.plan.pop(0) if self.plan else "forward"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(60)
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                method, target, _ = line.decode().split(" ", 2)
                headers: Dict[str, str] = {}
                while True:
                    h = f.readline().decode()
                    if h in ("\r\n", "\n", ""):
                        break
                    k, v = h.split(":", 1)
                    headers[k.strip()] = v.strip()
                n = int(headers.get("Content-Length", "0"))
                body = f.read(n) if n else None
                with self._lock:
                    self.requests.append((method, target, headers))
                action = self._next()
                if isinstance(action, tuple):
                    status, extra = action
                    payload = json.dumps({"error": f"Proxy says {status}."}).encode()
                    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(payload)}\r\n"
                    head += "Content-Type: application/json\r\n"
                    head += "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                    conn.sendall(head.encode() + b"\r\n" + payload)
                    continue
                up = http.client.HTTPConnection(*self._up, timeout=60)
                fwd = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
                up.request(method, target, body=body, headers=fwd)
                resp = up.getresponse()
                payload = resp.read()
                up.close()
                if action == "drop":
                    return
                head = f"HTTP/1.1 {resp.status} {resp.reason}\r\n"
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                        head += f"{k}: {v}\r\n"
                head += f"Content-Length: {len(payload)}\r\n\r\n"
                conn.sendall(head.encode() + payload)
                if action == "close":
                    return
        except (OSError, ValueError):
            return
        finally:
            f.close()
            conn.close()
