#!/usr/bin/env python3
"""Write-to-visible latency between two Kindling servers sharing one etcd store.

For each of N writes: a new group (its own MAC, not one of the generated ones) is PUT
through server A's admin REST API while a second thread polls server B's
/ipxe?mac=<that MAC> until it answers 200. Measured from just before the PUT is sent:
  visible   until B serves the group (write -> etcd -> B's watch -> B's snapshot);
  put       until A answers the PUT (A answers once its own copy holds the write).
Prints one line of key=value pairs (milliseconds) for run.sh, and a summary on stderr.

  latency.py --admin 127.0.0.1:18702 --token-file T --poll 127.0.0.1:18710 --count 200
"""
import argparse, http.client, json, math, sys, threading, time


def pct(sorted_ms, p):
    """Nearest-rank percentile."""
    k = max(0, math.ceil(p / 100 * len(sorted_ms)) - 1)
    return sorted_ms[k]


def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


class Poller(threading.Thread):
    """Polls B until the MAC answers 200; records when (perf_counter)."""

    def __init__(self, addr, mac, interval, limit):
        super().__init__(daemon=True)
        self.addr, self.mac, self.interval, self.limit = addr, mac, interval, limit
        self.seen = None
        self.polls = 0
        self.error = None
        self.stop = threading.Event()

    def run(self):
        deadline = time.perf_counter() + self.limit
        conn = None
        while time.perf_counter() < deadline and not self.stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(*self.addr, timeout=5)
                conn.request("GET", "/ipxe?mac=" + self.mac)
                r = conn.getresponse()
                r.read()
                self.polls += 1
                if r.status == 200:
                    self.seen = time.perf_counter()
                    conn.close()
                    return
                if r.status != 404:
                    self.error = f"B answered {r.status}"
            except (OSError, http.client.HTTPException) as e:
                self.error = f"B: {e}"
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(self.interval)
        if conn is not None:
            conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--admin", required=True, help="server A's admin listener host:port")
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--poll", required=True, help="server B's HTTP listener host:port")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--profile", default="profile-0")
    ap.add_argument("--id-prefix", default="fleet", help="group ids: <prefix>-<n>")
    ap.add_argument("--mac-byte", type=lambda x: int(x, 0), default=0x55,
                    help="MACs: 52:<this>:00:00:xx:xx (gen.py's are 52:54:...)")
    ap.add_argument("--interval-ms", type=float, default=0.5, help="pause between polls of B")
    ap.add_argument("--limit-s", type=float, default=10.0, help="give up on one write after this")
    a = ap.parse_args()
    token = open(a.token_file).read().split("\n")[0].strip()
    admin = hostport(a.admin)
    poll = hostport(a.poll)
    conn = http.client.HTTPConnection(*admin, timeout=30)
    visible, put, polls, failures = [], [], [], []
    for i in range(a.count):
        gid = f"{a.id_prefix}-{i}"
        mac = "52:%02x:00:00:%02x:%02x" % (a.mac_byte, (i >> 8) & 255, i & 255)
        body = json.dumps({"id": gid, "name": f"Fleet {i}", "profile": a.profile,
                           "selector": {"mac": mac}, "metadata": {"write": i}}).encode()
        poller = Poller(poll, mac.replace(":", "-"), a.interval_ms / 1000, a.limit_s)
        # The poller starts first and has seen a 404 before the write is sent.
        poller.start()
        while poller.polls == 0 and poller.is_alive():
            time.sleep(0.0005)
        t0 = time.perf_counter()
        try:
            conn.request("PUT", f"/api/v1/groups/{gid}", body=body, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json",
                "If-None-Match": "*"})
            r = conn.getresponse()
            text = r.read()
        except (OSError, http.client.HTTPException) as e:
            failures.append(f"{gid}: PUT to A: {e}")
            conn.close()
            conn = http.client.HTTPConnection(*admin, timeout=30)
            poller.stop.set()
            poller.join()
            continue
        t_put = time.perf_counter()
        if r.status not in (200, 201):
            failures.append(f"{gid}: PUT to A answered {r.status}: {text[:200]!r}")
            poller.stop.set()
            poller.join()
            continue
        poller.join()
        if poller.seen is None:
            failures.append(f"{gid}: not served by B within {a.limit_s} s ({poller.error})")
            continue
        visible.append((poller.seen - t0) * 1000)
        put.append((t_put - t0) * 1000)
        polls.append(poller.polls)
    conn.close()
    for f in failures[:10]:
        print("  " + f, file=sys.stderr)
    out = {"writes": a.count, "ok": len(visible), "failed": len(failures)}
    for name, xs in (("visible", visible), ("put", put)):
        xs = sorted(xs)
        if xs:
            out[f"{name}_p50"] = f"{pct(xs, 50):.1f}"
            out[f"{name}_p99"] = f"{pct(xs, 99):.1f}"
            out[f"{name}_max"] = f"{xs[-1]:.1f}"
        else:
            out[f"{name}_p50"] = out[f"{name}_p99"] = out[f"{name}_max"] = "-"
    if visible:
        # visible on B before A answered the PUT: B's watch beat A's own confirmation.
        out["b_first"] = sum(1 for v, p in zip(visible, put) if v <= p)
    print(" ".join(f"{k}={v}" for k, v in out.items()))
    return 1 if failures else 0


sys.exit(main())
