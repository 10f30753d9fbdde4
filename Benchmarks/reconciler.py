#!/usr/bin/env python3
"""`make bench-reconciler`: the reconciler's benchmarks (issue 3).

    python3 Benchmarks/reconciler.py PATH-TO-REWIND [--runs N] [--only ref-to-apply,idle-pass,rollback-to-healthy,memory,waves,wait] [--quick]

(--quick: the waves benchmark without its 200-second --concurrency 1 run.)

1. ref update -> apply started (exec app whose apply records the time), median of N;
2. a pass with nothing to do over 1,000 apps: CPU seconds of `rewind reconcile --once`;
3. rollback commit written -> previous version healthy (demo service), median of N;
4. resident memory of the reconciler supervising 50 demo-service processes;
5. one commit changes 100 process apps in 2 dependency waves, each 2 s to
   become healthy: commit -> all healthy, default --concurrency against
   --concurrency 1 (one at a time) in the same run;
6. `rewind wait`: the state file says healthy -> `rewind wait` has exited, median of N.

Each benchmark builds its own repository in a temporary directory and removes
it (and every process it started) afterwards. Prints a summary with targets.
"""
import json, os, random, shutil, signal, statistics, subprocess, sys, tempfile, time


def wall_ms(value):
    """A time from `rewind status --format json` (RFC 3339 UTC, `...T12:18:54.123Z`) as wall-clock ms."""
    import datetime
    if isinstance(value, (int, float)):
        return value  # older builds printed milliseconds
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp() * 1000

REWIND = os.path.realpath(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else sys.exit(__doc__)
RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 15
ENV = dict(os.environ, GIT_AUTHOR_NAME="Bench", GIT_AUTHOR_EMAIL="bench@example.com",
           GIT_COMMITTER_NAME="Bench", GIT_COMMITTER_EMAIL="bench@example.com",
           GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")
summary = []


def sh(*args, cwd=None, check=True):
    return subprocess.run(args, cwd=cwd, env=ENV, check=check, capture_output=True, text=True).stdout.strip()


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def new_repo(root, apps, policy="  maxPerHour: 0\n"):
    """apps: {name: app.yaml text}; returns the repository path."""
    repo = os.path.join(root, "repo")
    os.makedirs(repo)
    sh("git", "init", "-q", "-b", "main", repo)
    config = "apiVersion: rewind/v1\nbranch: main\napps:\n" + "".join(f"  - name: {n}\n    path: apps/{n}\n" for n in apps)
    write(f"{repo}/rewind.yaml", config + "policy:\n" + policy)
    for name, text in apps.items():
        write(f"{repo}/apps/{name}/app.yaml", text)
    commit(repo, "initial")
    return repo


def commit(repo, message):
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-q", "-m", message, cwd=repo)
    return sh("git", "rev-parse", "HEAD", cwd=repo)


def status(repo, state):
    out = sh(REWIND, "status", "--repo", repo, "--state-dir", state, "--format", "json", check=False)  # 7: needs a human
    return {a["app"]: a for a in json.loads(out)["apps"]}


def wait(what, condition, timeout=120, pause=0.01):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(pause)
    raise SystemExit(f"timed out waiting for {what}")


class Reconciler:
    def __init__(self, root, repo, extra=()):
        self.state = os.path.join(root, "state")
        self.log = open(os.path.join(root, "reconciler.log"), "w")
        self.process = subprocess.Popen([REWIND, "reconcile", "--repo", repo, "--state-dir", self.state, "--log-level", "warning", *extra],
                                        env=dict(ENV, BENCH_DIR=root), stdout=self.log, stderr=self.log)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        self.log.close()


def ref_update_to_apply(runs):
    root = tempfile.mkdtemp(prefix="rewind-bench-")
    try:
        apply = '#!/bin/sh\ndate +%s%N > "$BENCH_DIR/started-$REWIND_VERSION"\n'
        app = lambda v: f"platform: exec\nversion: \"{v}\"\nexec:\n  apply: ./apply.sh\n"
        repo = new_repo(root, {"site": app("0")})
        write(f"{repo}/apps/site/apply.sh", apply, 0o755)
        base = commit(repo, "apply script")
        # Prepare the commits on a side branch; the benchmark only moves main.
        sh("git", "checkout", "-q", "-b", "prepared", cwd=repo)
        prepared = []
        for i in range(1, runs + 1):
            write(f"{repo}/apps/site/app.yaml", app(str(i)))
            prepared.append(commit(repo, f"site {i}"))
        sh("git", "checkout", "-q", "--detach", base, cwd=repo)
        rec = Reconciler(root, repo)
        wait("the first apply", lambda: os.path.exists(f"{root}/started-0"))
        samples = []
        for i, c in enumerate(prepared, start=1):
            # Let the previous apply finish, so that each sample starts idle; the
            # random part samples every phase of the 50 ms ref poll (a fixed
            # pause locks onto one phase and gives 10 or 55 ms depending on the run).
            time.sleep(0.3 + random.uniform(0, 0.05))
            t0 = time.time_ns()
            sh("git", "update-ref", "refs/heads/main", c, cwd=repo)
            marker = f"{root}/started-{i}"
            wait(f"apply {i}", lambda: os.path.exists(marker) and os.path.getsize(marker) > 0)
            samples.append((int(open(marker).read()) - t0) / 1e6)
        rec.stop()
        med = statistics.median(samples)
        summary.append(f"ref update -> apply started: median {med:.1f} ms (min {min(samples):.1f}, max {max(samples):.1f}, n={runs}); target <= 200 ms; Argo CD polls every 180 s by default")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def idle_pass_cpu(runs):
    root = tempfile.mkdtemp(prefix="rewind-bench-")
    try:
        apps = {f"app-{i:04d}": f"platform: exec\nversion: \"1.0.{i}\"\nexec:\n  apply: [\"true\"]\nhealth:\n  timeout: 5s\n" for i in range(1000)}
        repo = new_repo(root, apps)
        state = os.path.join(root, "state")
        t = time.time()
        sh(REWIND, "reconcile", "--once", "--repo", repo, "--state-dir", state, "--log-level", "warning")
        first = time.time() - t
        cpu, rss = [], []
        for _ in range(runs):
            out = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", REWIND, "reconcile", "--once", "--repo", repo, "--state-dir", state, "--log-level", "warning"],
                                 env=ENV, capture_output=True, text=True, check=True).stderr.strip().split("\n")[-1].split()
            cpu.append(float(out[0]) + float(out[1]))
            rss.append(int(out[2]) / 1024)
        converged = all(a["health"] == "healthy" for a in status(repo, state).values())
        # The same in a running reconciler: full passes every second, ref polled every 50 ms.
        rec = Reconciler(root, repo, ["--interval", "1s"])
        time.sleep(3)
        ticks = lambda: sum(int(x) for x in open(f"/proc/{rec.process.pid}/stat").read().rsplit(")", 1)[1].split()[11:13])
        before = ticks()
        time.sleep(10)
        running = (ticks() - before) / os.sysconf("SC_CLK_TCK") / 10
        rec.stop()
        summary.append(f"running reconciler, 1,000 apps, a full pass every second: {running:.3f} s CPU per second (information)")
        summary.append(f"pass with nothing to do, 1,000 exec apps: median {statistics.median(cpu):.3f} s CPU (user+sys, whole process), peak RSS {statistics.median(rss):.1f} MB, n={runs}; target <= 1 s CPU"
                       f" (first pass applying all 1,000: {first:.1f} s wall; converged: {converged})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def demo_app(version, extra=""):
    return (f"platform: process\nversion: \"{version}\"\nprocess:\n  command: rewind-demo-service\n{extra}"
            "health:\n  http: /health\n  timeout: 30s\n  interval: 1s\n")


def rollback_to_healthy(runs):
    root = tempfile.mkdtemp(prefix="rewind-bench-")
    rec = None
    try:
        repo = new_repo(root, {"api": demo_app("1.0.0")})
        good = sh("git", "rev-parse", "HEAD", cwd=repo)
        rec = Reconciler(root, repo)
        st = lambda: status(repo, rec.state)["api"]
        runs_version = lambda v: (lambda a: a["applied"]["version"] == v and a["health"] == "healthy")(st())
        wait("1.0.0", lambda: runs_version("1.0.0"))
        samples = []
        for i in range(runs):
            write(f"{repo}/apps/api/app.yaml", demo_app(f"2.0.{i}"))
            commit(repo, f"api 2.0.{i}")
            wait(f"2.0.{i}", lambda: runs_version(f"2.0.{i}"))
            t0 = time.time() * 1000
            sh(REWIND, "rollback", "api", "--to", good, "--repo", repo, "--reason", "benchmark")
            wait("1.0.0 again", lambda: runs_version("1.0.0"))
            samples.append(wall_ms(st()["healthySince"]) - t0)
        summary.append(f"rollback commit written -> previous version healthy (demo service): median {statistics.median(samples):.0f} ms (min {min(samples):.0f}, max {max(samples):.0f}, n={runs}); target <= 3 s; seeds: 47 s average recovery")
    finally:
        if rec:
            rec.stop()
        shutil.rmtree(root, ignore_errors=True)


def memory_with_50_processes():
    root = tempfile.mkdtemp(prefix="rewind-bench-")
    rec = None
    try:
        repo = new_repo(root, {f"svc-{i:02d}": demo_app("1.0.0") for i in range(50)})
        rec = Reconciler(root, repo)
        wait("50 healthy apps", lambda: all(a["health"] == "healthy" for a in status(repo, rec.state).values()), timeout=300)
        time.sleep(5)  # a few supervision rounds (health probes every second)
        fields = dict(line.split(":", 1) for line in open(f"/proc/{rec.process.pid}/status").read().splitlines() if ":" in line)
        rss, hwm = int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
        summary.append(f"reconciler memory with 50 process apps: RSS {rss:.1f} MB, peak {hwm:.1f} MB (apps excluded); target <= 50 MB")
    finally:
        if rec:
            rec.stop()
        shutil.rmtree(root, ignore_errors=True)


def waves(concurrency_runs):
    """100 demo services, b-NN depending on a-NN; all move to a version that takes 2 s to become healthy."""
    def apps(version, ready):
        return {f"{w}-{i:02d}": demo_app(version, f"  args: [\"--ready-after\", \"{ready}\"]\n") for w in "ab" for i in range(50)}
    results = {}
    for label, extra in [("default concurrency (8)", ()), ("--concurrency 1", ("--concurrency", "1"))][:concurrency_runs]:
        root = tempfile.mkdtemp(prefix="rewind-bench-")
        rec = None
        try:
            repo = new_repo(root, apps("1", "0s"))
            config = "apiVersion: rewind/v1\nbranch: main\napps:\n" + "".join(
                f"  - name: {n}\n    path: apps/{n}\n" + (f"    dependsOn: [a-{n[2:]}]\n" if n.startswith("b") else "") for n in apps("1", "0s"))
            write(f"{repo}/rewind.yaml", config + "policy:\n  maxPerHour: 0\n")
            commit(repo, "b depends on a")
            rec = Reconciler(root, repo, extra)
            at = lambda v: all(a["applied"]["version"] == v and a["health"] == "healthy" for a in status(repo, rec.state).values())
            wait("100 apps at 1", lambda: at("1"), timeout=600)
            for name, text in apps("2", "2s").items():
                write(f"{repo}/apps/{name}/app.yaml", text)
            t0 = time.time() * 1000
            commit(repo, "everything 2, slow to start")
            # Polled slowly: the time comes from the apps' healthySince, and a
            # `rewind status` every 10 ms would compete with the reconciler for the 2 cores.
            wait("100 apps at 2", lambda: at("2"), timeout=900, pause=0.5)
            took = max(wall_ms(a["healthySince"]) for a in status(repo, rec.state).values()) - t0
            results[label] = took
            print(f"  {label}: {took / 1000:.1f} s", flush=True)
        finally:
            if rec:
                rec.stop()
            shutil.rmtree(root, ignore_errors=True)
    default = results.get("default concurrency (8)")
    line = f"100 process apps in 2 waves, 2 s each to become healthy, commit -> all healthy: {default / 1000:.1f} s with the default concurrency; target <= 5 s"
    if "--concurrency 1" in results:
        line += f"; --concurrency 1: {results['--concurrency 1'] / 1000:.1f} s (ratio {default / results['--concurrency 1']:.3f})"
    summary.append(line)


def wait_notices_health(runs):
    """The app's state file is rewritten atomically from starting to healthy
    (as the reconciler writes it); time until `rewind wait` has exited."""
    root = tempfile.mkdtemp(prefix="rewind-bench-")
    try:
        repo = new_repo(root, {"site": "platform: exec\nversion: \"1\"\nexec:\n  apply: /bin/true\n"})
        state = os.path.join(root, "state")
        sh(REWIND, "reconcile", "--once", "--repo", repo, "--state-dir", state)
        app_file = os.path.join(state, "apps", "site.json")
        healthy = json.load(open(app_file))
        starting = dict(healthy, health="starting")

        def put(value):
            tmp = app_file + ".tmp"
            with open(tmp, "w") as f:
                json.dump(value, f)
            os.rename(tmp, app_file)

        samples = []
        for _ in range(runs):
            put(starting)
            process = subprocess.Popen([REWIND, "wait", "site", "--repo", repo, "--state-dir", state, "--timeout", "30s"],
                                       env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            first = process.stdout.readline()  # its first look: still waiting
            if "waiting" not in first:
                raise SystemExit(f"rewind wait did not wait: {first!r}")
            time.sleep(random.uniform(0, 0.05))  # any phase of its 50 ms poll
            t0 = time.monotonic()
            put(healthy)
            process.wait(timeout=30)
            samples.append((time.monotonic() - t0) * 1000)
            if process.returncode != 0:
                raise SystemExit(f"rewind wait exited {process.returncode}")
        med = statistics.median(samples)
        summary.append(f"state file says healthy -> rewind wait exited: median {med:.1f} ms (min {min(samples):.1f}, max {max(samples):.1f}, n={runs}); target <= 100 ms")
    finally:
        shutil.rmtree(root, ignore_errors=True)


BENCHMARKS = {
    "waves": lambda: waves(1 if "--quick" in sys.argv else 2),
    "ref-to-apply": lambda: ref_update_to_apply(RUNS),
    "idle-pass": lambda: idle_pass_cpu(5),
    "rollback-to-healthy": lambda: rollback_to_healthy(min(RUNS, 10)),
    "memory": memory_with_50_processes,
    "wait": lambda: wait_notices_health(RUNS),
}

if __name__ == "__main__":
    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else list(BENCHMARKS)
    for name in only:
        BENCHMARKS[name]()
        print(summary[-1], flush=True)
    print("\n== summary (reconciler)")
    print("\n".join(summary))
