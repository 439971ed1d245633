"""Latency from a release to the long-polling worker's answer, over HTTP.

Starts the real binary (KEYPOOL_BIN, default target/release/keypool) on a
free loopback port with --open-pool and a temporary data directory (default
--fsync always), holds N keys, starts N workers that long-poll
(`checkout(wait=20)`), then releases the keys one at a time every 10 ms and
measures, per key, the time from just before its release was sent to the
moment a waiter had it. Prints p50/p99/max; asserts nothing.

    python3 clients/python/bench/longpoll_latency.py [N] [extra server flags...]
"""

import os
import subprocess
import sys
import tempfile
import threading
import time

from keypool_client import Client


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    extra = sys.argv[2:]
    binary = os.environ.get("KEYPOOL_BIN", "target/release/keypool")
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen(
            [binary, "--bind", "127.0.0.1:0", "--data-dir", data, "--open-pool", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            base = server.stdout.readline().strip().removeprefix("listening on ")
            client = Client(base)
            pool = client.pool("bench")
            for _ in range(n):
                pool.create()
            held = pool.checkout(count=n)
            assert len(held) == n
            got = {}
            lock = threading.Lock()

            def worker() -> None:
                c = Client(base).pool("bench")
                lease = c.checkout(wait=20)
                at = time.perf_counter()
                if lease is not None:
                    with lock:
                        got[lease.key_id] = at

            threads = [threading.Thread(target=worker) for _ in range(n)]
            for t in threads:
                t.start()
            time.sleep(1.0)  # every worker is waiting
            sent = {}
            for lease in held:
                sent[lease.key_id] = time.perf_counter()
                lease.release()
                time.sleep(0.01)
            for t in threads:
                t.join(timeout=30)
            lat = sorted((got[k] - sent[k]) * 1000 for k in got if k in sent)
            if not lat:
                print("no waiter got a key")
                return
            def pct(p: float) -> float:
                return lat[min(len(lat) - 1, int(p * len(lat)))]
            print(f"{len(lat)} of {n} waiters answered; release -> waiter's answer: "
                  f"p50 {pct(0.50):.2f} ms, p99 {pct(0.99):.2f} ms, max {lat[-1]:.2f} ms "
                  f"(flags: {' '.join(extra) or 'defaults, --fsync always'})")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
