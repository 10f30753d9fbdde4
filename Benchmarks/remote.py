#!/usr/bin/env python3
"""`make bench-remote`: remote repositories (issue 5), on loopback with `git daemon`.

    python3 Benchmarks/remote.py PATH-TO-REWIND [--runs N] [--only webhook,noop-fetch,initial-mirror]

1. push webhook -> new commit applied: an engineer pushes a new version with
   the git CLI, then POSTs a GitHub-signed push webhook to `rewind serve`
   (fetch interval 1 h, so only the webhook fetches); time from the webhook
   to the new version applied and to it healthy (process platform, demo
   service), median of N; target <= 1 s.
2. a fetch with nothing new: `rewind sync` (its own measured duration, and
   the whole command) against `git fetch` in a `git clone --mirror` of the
   same URL, same run, hyperfine; target <= 50 ms.
3. initial mirror of the 100,000-commit synthetic repository (Benchmarks/
   generate.py, built once under Benchmarks/data/): `rewind sync` into an
   empty mirror against `git clone --mirror` of the same git:// URL; wall
   time and peak RSS (GNU time), median of 3.
"""
import hashlib, hmac, http.client, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time


def wall_ms(value):
    """A time from `rewind status --format json` (RFC 3339 UTC, `...T12:18:54.123Z`) as wall-clock ms."""
    import datetime
    if isinstance(value, (int, float)):
        return value  # older builds printed milliseconds
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp() * 1000

sys.path.insert(0, os.path.dirname(__file__))
from reconciler import ENV, REWIND, commit, new_repo, sh, wait, write  # noqa: E402

RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 15
ONLY = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else ["webhook", "noop-fetch", "initial-mirror"]
HERE = os.path.dirname(os.path.abspath(__file__))
summary = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GitDaemon:
    def __init__(self, base, log):
        self.port = free_port()
        self.process = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack", "--listen=127.0.0.1",
                                         f"--port={self.port}", f"--base-path={base}", base], stdout=log, stderr=log, start_new_session=True)

        def listening():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0
        wait("git daemon", listening, timeout=10)

    def url(self, name):
        return f"git://127.0.0.1:{self.port}/{name}"

    def stop(self):
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=10)


def demo_app(version):
    return (f"platform: process\nversion: \"{version}\"\nprocess:\n  command: rewind-demo-service\n"
            "health:\n  http: /health\n  timeout: 30s\n  interval: 100ms\n")


def webhook_to_applied(runs):
    root = tempfile.mkdtemp(prefix="rewind-bench-remote-")
    log = open(os.path.join(root, "daemon.log"), "w")
    daemon = serve = None
    try:
        repo = new_repo(root, {"api": demo_app("1.0.0")})
        os.makedirs(f"{root}/served")
        sh("git", "clone", "-q", "--bare", repo, f"{root}/served/deploy.git")
        daemon = GitDaemon(f"{root}/served", log)
        url = daemon.url("deploy.git")
        write(f"{root}/secret", "bench-secret\n")
        state = f"{root}/state"
        serve_log = open(f"{root}/serve.log", "w")
        serve = subprocess.Popen([REWIND, "serve", "--repo", url, "--mirror", f"{root}/mirror", "--state-dir", state, "--port", "0",
                                  "--fetch-interval", "1h", "--git-hook-secret-file", f"{root}/secret", "--log-level", "warning"],
                                 env=ENV, stdout=serve_log, stderr=serve_log)
        address = f"{state}/serve.address"
        wait("serve", lambda: os.path.exists(address) and open(address).read().strip())
        host, port = open(address).read().strip().split(":")

        def api(app="api"):
            c = http.client.HTTPConnection(host, int(port), timeout=10)
            c.request("GET", "/api/v1/status")
            apps = json.loads(c.getresponse().read())["apps"]
            c.close()
            return next(a for a in apps if a["app"] == app)
        wait("1.0.0 healthy", lambda: api()["applied"]["version"] == "1.0.0" and api()["health"] == "healthy")
        to_applied, to_healthy = [], []
        for i in range(runs):
            version = f"2.0.{i}"
            write(f"{repo}/apps/api/app.yaml", demo_app(version))
            new = commit(repo, f"api {version}")
            sh("git", "push", "-q", url, "main", cwd=repo)
            body = json.dumps({"ref": "refs/heads/main", "after": new}).encode()
            signature = "sha256=" + hmac.new(b"bench-secret", body, hashlib.sha256).hexdigest()
            c = http.client.HTTPConnection(host, int(port), timeout=10)
            t0 = time.time()
            c.request("POST", "/hooks/git", body=body, headers={"Content-Type": "application/json", "X-GitHub-Event": "push",
                                                                "X-GitHub-Delivery": f"bench-{i}", "X-Hub-Signature-256": signature})
            response = c.getresponse()
            response.read()
            assert response.status == 202, response.status
            wait(f"{version} applied", lambda: api()["applied"]["commit"] == new, timeout=30)
            to_applied.append((time.time() - t0) * 1000)
            wait(f"{version} healthy", lambda: api()["health"] == "healthy" and api()["applied"]["version"] == version, timeout=30)
            to_healthy.append(wall_ms(api()["healthySince"]) - t0 * 1000)
        summary.append(f"push webhook -> new commit applied: median {statistics.median(to_applied):.0f} ms (min {min(to_applied):.0f}, max {max(to_applied):.0f}), "
                       f"ratio to target {statistics.median(to_applied) / 1000:.3f}; -> healthy: median {statistics.median(to_healthy):.0f} ms; n={runs}; "
                       "target <= 1 s (Argo CD polls every 180 s without a webhook)")
    finally:
        if serve:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=60)
        if daemon:
            daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


def hyperfine_medians(commands, runs, warmup=3):
    out = tempfile.mktemp(suffix=".json")
    subprocess.run(["hyperfine", "-N", "-w", str(warmup), "-r", str(runs), "--export-json", out, *commands], check=True, capture_output=True, env=ENV)
    medians = [r["median"] * 1000 for r in json.load(open(out))["results"]]
    os.remove(out)
    return medians


def noop_fetch(runs):
    root = tempfile.mkdtemp(prefix="rewind-bench-fetch-")
    log = open(os.path.join(root, "daemon.log"), "w")
    daemon = None
    try:
        repo = new_repo(root, {f"app-{i:02d}": demo_app("1.0.0") for i in range(20)})
        for i in range(50):
            write(f"{repo}/apps/app-{i % 20:02d}/app.yaml", demo_app(f"1.1.{i}"))
            commit(repo, f"release {i}")
        os.makedirs(f"{root}/served")
        sh("git", "clone", "-q", "--bare", repo, f"{root}/served/deploy.git")
        daemon = GitDaemon(f"{root}/served", log)
        url = daemon.url("deploy.git")
        sh(REWIND, "sync", "--repo", url, "--mirror", f"{root}/mirror")
        sh("git", "clone", "-q", "--mirror", url, f"{root}/gitmirror")
        internal = []
        for _ in range(runs):
            out = json.loads(sh(REWIND, "sync", "--repo", url, "--mirror", f"{root}/mirror", "--format", "json"))
            assert out["error"] is None and not out["updated"], out
            internal.append(out["durationMs"])
        rewind_cmd, git_cmd = hyperfine_medians([f"{REWIND} sync --repo {url} --mirror {root}/mirror",
                                                 f"git -C {root}/gitmirror fetch -q"], runs)
        summary.append(f"fetch with nothing new: rewind sync's own measure median {statistics.median(internal):.1f} ms (fetch, integrate, nothing to push); "
                       f"whole command {rewind_cmd:.1f} ms vs git fetch (mirror clone) {git_cmd:.1f} ms, ratio {rewind_cmd / git_cmd:.2f}; n={runs}; target <= 50 ms")
    finally:
        if daemon:
            daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


def timed(command):
    """Wall seconds and peak RSS (MiB) of a command, through GNU time."""
    out = subprocess.run(["/usr/bin/time", "-f", "%e %M", *command], capture_output=True, text=True, env=ENV)
    if out.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {out.stderr[-2000:]}")
    seconds, kib = out.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kib) / 1024


def initial_mirror(runs=3):
    data = os.path.join(HERE, "data")
    synthetic = os.path.join(data, "synthetic")
    if not os.path.exists(os.path.join(synthetic, ".generated")):
        print("generating the synthetic repository (once; a few minutes)...", flush=True)
        shutil.rmtree(synthetic, ignore_errors=True)
        subprocess.run([sys.executable, os.path.join(HERE, "generate.py"), synthetic], check=True, env=ENV)
        open(os.path.join(synthetic, ".generated"), "w").close()
    commits = sh("git", "-C", synthetic, "rev-list", "--count", "main")
    root = tempfile.mkdtemp(prefix="rewind-bench-mirror-")
    log = open(os.path.join(root, "daemon.log"), "w")
    daemon = GitDaemon(data, log)
    try:
        url = daemon.url("synthetic")
        results = {"rewind": [], "git": []}
        for i in range(runs):
            results["rewind"].append(timed([REWIND, "sync", "--repo", url, "--mirror", f"{root}/rewind-{i}"]))
            results["git"].append(timed(["git", "clone", "-q", "--mirror", url, f"{root}/git-{i}"]))
            shutil.rmtree(f"{root}/rewind-{i}")
            shutil.rmtree(f"{root}/git-{i}")
        r_time = statistics.median(t for t, _ in results["rewind"])
        g_time = statistics.median(t for t, _ in results["git"])
        r_mem = statistics.median(m for _, m in results["rewind"])
        g_mem = statistics.median(m for _, m in results["git"])
        summary.append(f"initial mirror, {commits} commits over git://: rewind {r_time:.2f} s, peak RSS {r_mem:.0f} MiB; git clone --mirror {g_time:.2f} s, "
                       f"peak RSS {g_mem:.0f} MiB (client process only); ratio time {r_time / g_time:.2f}, memory {r_mem / g_mem:.2f}; n={runs}")
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if "webhook" in ONLY:
        webhook_to_applied(RUNS)
    if "noop-fetch" in ONLY:
        noop_fetch(RUNS)
    if "initial-mirror" in ONLY:
        initial_mirror()
    print("\n== summary (remote repositories)")
    for line in summary:
        print(line)
