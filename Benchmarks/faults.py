#!/usr/bin/env python3
"""`make bench-faults`: a git host that fails the way real hosts fail (issue 22), on loopback.

    python3 Benchmarks/faults.py PATH-TO-REWIND [--runs N] [--minutes M] [--only stalled-rollback,stalled-cpu,sync-soak,serve-requests,serve-rss]

1. stalled-rollback: `rewind rollback --repo git://...` against a host that
   accepts connections and never answers, with --git-idle-timeout 5s: wall
   time of the whole command against that deadline, median of N (default 5).
   Peer: the same command against a host that is down (connection refused).
2. stalled-cpu: CPU of `rewind reconcile --fetch-interval 100ms` for 20 s
   while every sync is stalled (idle deadline 2 s), against the same
   reconciler following a local repository in the same run: it must not spin.
3. sync-soak: RSS of `rewind reconcile --fetch-interval 1ms` after 500 and
   after 5,000 syncs with the host up, then after 500 and 5,000 more with it
   down (the suite's SoakTests runs 2,500 of each).
4. serve-requests: RSS of `rewind serve` over 20,000 API requests and 1,000
   event streams opened and dropped, sampled every 2,000 requests (the suite's
   ServeSoakTests runs 6,000 and 500).
5. serve-rss: RSS of `rewind serve` following a remote with a 1 s fetch
   interval and a signed push webhook every second, sampled every minute for
   --minutes (default 60); reports the samples at 1, 10 and the last minute.
"""
import hashlib, hmac, http.client, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(__file__))
from reconciler import ENV, REWIND, commit, new_repo, sh, wait, write  # noqa: E402
from remote import GitDaemon, demo_app, free_port  # noqa: E402

RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
MINUTES = int(sys.argv[sys.argv.index("--minutes") + 1]) if "--minutes" in sys.argv else 60
ONLY = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else ["stalled-rollback", "stalled-cpu", "sync-soak", "serve-requests", "serve-rss"]
summary = []


class StalledHost:
    """Accepts every connection on a loopback port and never answers."""

    def __init__(self, port):
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", port))
        self.server.listen(64)
        self.held = []
        self.stopped = False
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        self.server.settimeout(0.1)
        while not self.stopped:
            try:
                self.held.append(self.server.accept()[0])
            except (socket.timeout, OSError):
                pass

    def stop(self):
        self.stopped = True
        time.sleep(0.15)
        self.server.close()
        for c in self.held:
            c.close()


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def served_setup(root, apps):
    repo = new_repo(root, apps)
    os.makedirs(f"{root}/served")
    sh("git", "clone", "-q", "--bare", repo, f"{root}/served/deploy.git")
    return repo


def exec_app(version):
    return f"platform: exec\nversion: \"{version}\"\nexec:\n  apply: [\"true\"]\nhealth:\n  timeout: 5s\n"


def stalled_rollback(runs):
    root = tempfile.mkdtemp(prefix="rewind-bench-faults-")
    log = open(os.path.join(root, "daemon.log"), "w")
    try:
        repo = served_setup(root, {"api": exec_app("1.0")})
        write(f"{repo}/apps/api/app.yaml", exec_app("1.1"))
        commit(repo, "api 1.1")
        sh("git", "push", "-q", f"{root}/served/deploy.git", "main", cwd=repo)
        daemon = GitDaemon(f"{root}/served", log)
        url, port = daemon.url("deploy.git"), daemon.port
        sh(REWIND, "sync", "--repo", url, "--mirror", f"{root}/mirror")
        daemon.stop()

        def timed(reason):
            t = time.time()
            out = subprocess.run([REWIND, "rollback", "api", "--to", "HEAD~1", "--reason", reason, "--repo", url, "--mirror", f"{root}/mirror",
                                  "--git-idle-timeout", "5s"], env=ENV, capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
            # Undo locally so the next run has something to roll back (queued too).
            subprocess.run([REWIND, "revert", "HEAD", "--repo", f"{root}/mirror", "--reason", "bench"], env=ENV, capture_output=True)
            return time.time() - t
        refused = [timed(f"down {i}") for i in range(runs)]
        host = StalledHost(port)
        try:
            stalled = [timed(f"stalled {i}") for i in range(runs)]
        finally:
            host.stop()
        m = statistics.median(stalled)
        summary.append(f"rollback against a stalled host (idle deadline 5 s): median {m:.2f} s wall (max {max(stalled):.2f}), n={runs}: "
                       f"{m / 5:.2f} x the deadline; against a host that is down: {statistics.median(refused):.3f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def stalled_cpu():
    root = tempfile.mkdtemp(prefix="rewind-bench-faults-")
    try:
        repo = served_setup(root, {"api": exec_app("1.0")})
        # A first sync needs the host: serve it once, then stall it.
        log = open(os.path.join(root, "daemon.log"), "w")
        daemon = GitDaemon(f"{root}/served", log)
        url = daemon.url("deploy.git")
        sh(REWIND, "sync", "--repo", url, "--mirror", f"{root}/mirror")
        port = daemon.port
        daemon.stop()
        host = StalledHost(port)
        results = {}
        for name, source in [("stalled remote", ["--repo", url, "--mirror", f"{root}/mirror", "--fetch-interval", "100ms", "--git-idle-timeout", "2s"]),
                             ("local repository", ["--repo", repo])]:
            state = f"{root}/state-{len(results)}"
            p = subprocess.Popen([REWIND, "reconcile", *source, "--state-dir", state, "--log-level", "warning"], env=ENV,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(3)
            before = cpu_seconds(p.pid)
            time.sleep(20)
            results[name] = (cpu_seconds(p.pid) - before) / 20
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)
        host.stop()
        summary.append(f"reconciler CPU while every sync is stalled: {results['stalled remote'] * 100:.2f}% of a core "
                       f"(following a local repository, same run: {results['local repository'] * 100:.2f}%)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def sync_soak(count=5_000):
    root = tempfile.mkdtemp(prefix="rewind-bench-faults-")
    log = open(os.path.join(root, "daemon.log"), "w")
    try:
        served_setup(root, {"api": exec_app("1.0")})
        daemon = GitDaemon(f"{root}/served", log)
        url = daemon.url("deploy.git")
        rec_log = f"{root}/reconcile.log"
        p = subprocess.Popen([REWIND, "reconcile", "--repo", url, "--mirror", f"{root}/mirror", "--state-dir", f"{root}/state",
                              "--fetch-interval", "1ms", "--log-level", "debug"], env=ENV, stdout=open(rec_log, "w"), stderr=subprocess.STDOUT)

        def last_sync():
            with open(rec_log, "rb") as f:
                f.seek(max(0, os.path.getsize(rec_log) - 4096))
                tail = f.read().decode(errors="replace")
            i = tail.rfind("sync #")
            return int("".join(ch for ch in tail[i + 6:i + 16].split(" ")[0] if ch.isdigit()) or 0) if i >= 0 else 0

        def at(n):
            wait(f"{n} syncs", lambda: last_sync() >= n, timeout=900, pause=0.05)
            return rss_kib(p.pid)
        t = time.time()
        up = (at(500), at(count))
        up_time = time.time() - t
        daemon.stop()
        base = last_sync()
        t = time.time()
        down = (at(base + 500), at(base + count))
        down_time = time.time() - t
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
        summary.append(f"RSS over {count:,} syncs with the host up: {up[0] / 1024:.1f} MB after 500, {up[1] / 1024:.1f} MB after {count:,} "
                       f"({(up[1] - up[0]) / 1024:+.2f} MB; {up_time:.0f} s); host down: {down[0] / 1024:.1f} -> {down[1] / 1024:.1f} MB "
                       f"({(down[1] - down[0]) / 1024:+.2f} MB; {down_time:.0f} s); target: < 5 MB each")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def serve_requests(requests=20_000, streams=1_000):
    root = tempfile.mkdtemp(prefix="rewind-bench-faults-")
    serve = None
    try:
        repo = new_repo(root, {"api": exec_app("1.0")})
        state = f"{root}/state"
        serve = subprocess.Popen([REWIND, "serve", "--repo", repo, "--state-dir", state, "--port", "0", "--log-level", "warning"],
                                 env=ENV, stdout=open(f"{root}/serve.log", "w"), stderr=subprocess.STDOUT)
        address = f"{state}/serve.address"
        wait("serve", lambda: os.path.exists(address) and open(address).read().strip())
        host, port = open(address).read().strip().split(":")
        samples = []
        every = requests // streams
        for i in range(requests + 1):
            if i % 2_000 == 0:
                samples.append(rss_kib(serve.pid))
            c = http.client.HTTPConnection(host, int(port), timeout=10)
            c.request("GET", "/api/v1/status" if i % 2 else "/api/v1/apps/api/releases")
            c.getresponse().read()
            c.close()
            if i % every == 0:
                s = socket.create_connection((host, int(port)))
                s.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
                s.recv(100)
                s.close()
        summary.append(f"rewind serve over {requests:,} API requests and {streams:,} dropped event streams: RSS "
                       f"{samples[1] / 1024:.1f} MB after 2,000, {samples[-1] / 1024:.1f} MB after {requests:,} "
                       f"({(samples[-1] - samples[1]) / 1024:+.2f} MB; first sample {samples[0] / 1024:.1f} MB); target: < 5 MB")
    finally:
        if serve:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def serve_rss(minutes):
    root = tempfile.mkdtemp(prefix="rewind-bench-faults-")
    log = open(os.path.join(root, "daemon.log"), "w")
    serve = None
    try:
        repo = served_setup(root, {"api": demo_app("1.0.0")})
        daemon = GitDaemon(f"{root}/served", log)
        url = daemon.url("deploy.git")
        write(f"{root}/secret", "bench-secret\n")
        state = f"{root}/state"
        serve = subprocess.Popen([REWIND, "serve", "--repo", url, "--mirror", f"{root}/mirror", "--state-dir", state, "--port", "0",
                                  "--fetch-interval", "1s", "--git-hook-secret-file", f"{root}/secret", "--log-level", "warning"],
                                 env=ENV, stdout=open(f"{root}/serve.log", "w"), stderr=subprocess.STDOUT)
        address = f"{state}/serve.address"
        wait("serve", lambda: os.path.exists(address) and open(address).read().strip())
        host, port = open(address).read().strip().split(":")
        samples = {}
        start = time.time()
        i = 0
        while time.time() - start < minutes * 60:
            body = json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()
            signature = "sha256=" + hmac.new(b"bench-secret", body, hashlib.sha256).hexdigest()
            c = http.client.HTTPConnection(host, int(port), timeout=10)
            c.request("POST", "/hooks/git", body=body, headers={"Content-Type": "application/json", "X-GitHub-Event": "push",
                                                                "X-GitHub-Delivery": f"soak-{i}", "X-Hub-Signature-256": signature})
            c.getresponse().read()
            c.close()
            i += 1
            minute = int((time.time() - start) // 60)
            if minute + 1 not in samples and time.time() - start >= (minute + 1) * 60 - 1:
                samples[minute + 1] = rss_kib(serve.pid)
                print(f"serve RSS after {minute + 1} min: {samples[minute + 1] / 1024:.1f} MB", flush=True)
            time.sleep(1)
        last = max(samples)
        first = samples.get(1, samples[last])
        ten = samples.get(10, samples[last])
        summary.append(f"rewind serve following a remote (fetch every 1 s, a push webhook every second, {i:,} webhooks): RSS "
                       f"{first / 1024:.1f} MB after 1 min, {ten / 1024:.1f} MB after 10, {samples[last] / 1024:.1f} MB after {last} "
                       f"({(samples[last] - ten) / 1024:+.2f} MB from minute 10 to {last})")
        daemon.stop()
    finally:
        if serve:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if "stalled-rollback" in ONLY:
        stalled_rollback(RUNS)
    if "stalled-cpu" in ONLY:
        stalled_cpu()
    if "sync-soak" in ONLY:
        sync_soak()
    if "serve-requests" in ONLY:
        serve_requests()
    if "serve-rss" in ONLY:
        serve_rss(MINUTES)
    print("\n".join(summary))
