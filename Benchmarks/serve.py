#!/usr/bin/env python3
"""`make bench-serve`: rewind serve's benchmarks (issue 4).

    python3 Benchmarks/serve.py PATH-TO-REWIND [--runs N]

1. Alertmanager webhook received -> rollback commit written (the webhook's
   response is sent after the commit; client-side latency, and the server's
   own rewind_rollback_commit_seconds), median of N;
2. webhook received -> previous version healthy (process platform, demo
   service), median of N;
3. 500 webhook requests per second for 10 s carrying one firing alert: errors,
   commits, latency percentiles.
"""
import http.client, json, os, shutil, signal, statistics, subprocess, sys, tempfile, threading, time


def wall_ms(value):
    """A time from `rewind status --format json` (RFC 3339 UTC, `...T12:18:54.123Z`) as wall-clock ms."""
    import datetime
    if isinstance(value, (int, float)):
        return value  # older builds printed milliseconds
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp() * 1000

sys.path.insert(0, os.path.dirname(__file__))
from reconciler import ENV, REWIND, commit, new_repo, sh, status, wait, write  # noqa: E402

RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 10
summary = []
POLICY = "  window: 30m\n  cooldown: 0s\n  maxPerHour: 1000\n"


def demo_app(version):
    return (f"platform: process\nversion: \"{version}\"\nprocess:\n  command: rewind-demo-service\n"
            "health:\n  http: /health\n  timeout: 30s\n  interval: 1s\n")


def alert(fingerprint, starts):
    return json.dumps({"version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "status": "firing", "receiver": "rewind",
                       "alerts": [{"status": "firing", "labels": {"alertname": "HighErrorRate", "app": "api", "severity": "critical"},
                                   "annotations": {"summary": "error rate above 5%"}, "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z",
                                   "fingerprint": fingerprint}]})


class Serve:
    def __init__(self, root, repo, binary=REWIND, extra=()):
        self.state = os.path.join(root, "state")
        self.log = open(os.path.join(root, "serve.log"), "w")
        self.process = subprocess.Popen([binary, "serve", "--repo", repo, "--state-dir", self.state, "--port", "0", "--log-level", "warning"] + list(extra),
                                        env=ENV, stdout=self.log, stderr=self.log)
        address = os.path.join(self.state, "serve.address")
        wait("serve", lambda: os.path.exists(address) and open(address).read().strip())
        host, port = open(address).read().strip().split(":")
        self.host, self.port = host, int(port)

    def post(self, body, connection=None):
        c = connection or http.client.HTTPConnection(self.host, self.port, timeout=10)
        c.request("POST", "/hooks/alertmanager", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        if connection is None:
            c.close()
        return r.status, data

    def metrics(self):
        c = http.client.HTTPConnection(self.host, self.port, timeout=10)
        c.request("GET", "/metrics")
        return c.getresponse().read().decode()

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        self.log.close()


def webhook_to_commit_and_healthy(runs):
    root = tempfile.mkdtemp(prefix="rewind-bench-serve-")
    serve = None
    try:
        repo = new_repo(root, {"api": demo_app("1.0.0")}, policy=POLICY)
        serve = Serve(root, repo)
        running = lambda v: (lambda a: a["applied"]["version"] == v and a["health"] == "healthy")(status(repo, serve.state)["api"])
        wait("1.0.0", lambda: running("1.0.0"))
        to_commit, to_healthy = [], []
        for i in range(runs):
            write(f"{repo}/apps/api/app.yaml", demo_app(f"2.0.{i}"))
            commit(repo, f"api 2.0.{i}")
            wait(f"2.0.{i}", lambda: running(f"2.0.{i}"))
            time.sleep(0.2)
            t0 = time.time()
            code, body = serve.post(alert(f"fp-{i}", f"2026-11-21T10:{i:02d}:00Z"))
            t1 = time.time()
            assert code == 200 and b'"rolled-back"' in body, body
            to_commit.append((t1 - t0) * 1000)
            wait("1.0.0 again", lambda: running("1.0.0"))
            to_healthy.append(wall_ms(status(repo, serve.state)["api"]["healthySince"]) - t0 * 1000)
        server_side = [line for line in serve.metrics().splitlines() if line.startswith("rewind_rollback_commit_seconds_sum") or line.startswith("rewind_rollback_commit_seconds_count")]
        total = {l.split("{")[0].split(" ")[0]: float(l.split()[-1]) for l in server_side}
        mean_server = 1000 * total.get("rewind_rollback_commit_seconds_sum", 0) / max(total.get("rewind_rollback_commit_seconds_count", 1), 1)
        summary.append(f"webhook received -> rollback commit written: median {statistics.median(to_commit):.1f} ms client-side (min {min(to_commit):.1f}, max {max(to_commit):.1f}; "
                       f"server-side mean {mean_server:.1f} ms), n={runs}; target <= 100 ms")
        summary.append(f"webhook received -> previous version healthy (demo service): median {statistics.median(to_healthy):.0f} ms (min {min(to_healthy):.0f}, max {max(to_healthy):.0f}), n={runs}; "
                       "target <= 3 s; seeds: 47 s average recovery, 2 min target; Argo CD polls git every 180 s")
    finally:
        if serve:
            serve.stop()
        shutil.rmtree(root, ignore_errors=True)


def storm(rate=500, seconds=10, threads=25):
    root = tempfile.mkdtemp(prefix="rewind-bench-serve-")
    serve = None
    try:
        apps = {"api": "platform: exec\nversion: \"1.0.0\"\nexec:\n  apply: [\"true\"]\n"}
        repo = new_repo(root, apps, policy=POLICY)
        serve = Serve(root, repo)
        wait("1.0.0", lambda: status(repo, serve.state)["api"]["health"] == "healthy")
        write(f"{repo}/apps/api/app.yaml", apps["api"].replace("1.0.0", "1.1.0"))
        commit(repo, "api 1.1.0")
        wait("1.1.0", lambda: status(repo, serve.state)["api"]["applied"]["version"] == "1.1.0")
        before = int(sh("git", "rev-list", "--count", "main", cwd=repo))
        body = alert("storm", "2026-11-21T12:00:00Z")
        latencies, errors, lock = [], [0], threading.Lock()
        per_thread = rate / threads
        start = time.time()

        def worker():
            c = http.client.HTTPConnection(serve.host, serve.port, timeout=10)
            n = 0
            while True:
                due = start + n / per_thread
                if due - start >= seconds:
                    return
                pause = due - time.time()
                if pause > 0:
                    time.sleep(pause)
                t = time.time()
                try:
                    code, _ = serve.post(body, c)
                    ok = code == 200
                except Exception:
                    ok = False
                    c = http.client.HTTPConnection(serve.host, serve.port, timeout=10)
                with lock:
                    latencies.append((time.time() - t) * 1000)
                    if not ok:
                        errors[0] += 1
                n += 1

        pool = [threading.Thread(target=worker) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        elapsed = time.time() - start
        commits = int(sh("git", "rev-list", "--count", "main", cwd=repo)) - before
        latencies.sort()
        p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
        summary.append(f"{len(latencies)} webhook requests in {elapsed:.1f} s ({len(latencies) / elapsed:.0f}/s) for one firing alert: {errors[0]} errors, {commits} commit(s); "
                       f"latency p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {latencies[-1]:.1f} ms; target: no errors, one commit")
    finally:
        if serve:
            serve.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    for bench in (lambda: webhook_to_commit_and_healthy(RUNS), storm):
        bench()
        print("\n".join(summary[-2:] if bench is not storm else summary[-1:]), flush=True)
    print("\n== summary (serve)")
    print("\n".join(summary))
