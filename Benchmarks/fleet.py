#!/usr/bin/env python3
"""`make bench-fleet`: a fleet of hosts (issue 26), each a network namespace on this machine (needs root).

    python3 Benchmarks/fleet.py PATH-TO-REWIND [--hosts 10] [--runs 5] [--only webhook,interval,idle] [--idle-seconds 60]

A git daemon runs in a namespace of its own (the git host); each host runs
`rewind serve --host host-N` in its namespace, following the git host over a
veth pair, with one demo-service app placed on every host.

webhook: a rollback commit (`rewind rollback api`) pushed to the git host ->
every host runs the old version healthy, with the git host's post-receive
hook posting to every host's POST /hooks/git. Median of N. Target <= 2 s;
the peer is seed 001's average recovery time, 47 s.

interval: the same without the hook: each host's mirror fetches every 60 s
(the default --fetch-interval). Median of N (default 3).

idle: per host, over --idle-seconds with nothing to do and the default
intervals: fetches from the git host (the daemon's log), bytes on the host's
link, CPU and RSS of its `rewind serve`, scaled to an hour.
"""
import json, os, shutil, signal, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(__file__))
from reconciler import ENV, commit, sh, wait, write  # noqa: E402

REWIND = os.path.realpath(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else sys.exit(__doc__)
HOSTS = int(sys.argv[sys.argv.index("--hosts") + 1]) if "--hosts" in sys.argv else 10
RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else None
ONLY = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else ["webhook", "interval", "idle"]
IDLE = int(sys.argv[sys.argv.index("--idle-seconds") + 1]) if "--idle-seconds" in sys.argv else 60
TAG = f"rwb{os.getpid() % 100000}"
summary = []


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)


def demo(version):
    return (f"platform: process\nversion: \"{version}\"\nprocess:\n  command: rewind-demo-service\n"
            "health:\n  http: /health\n  timeout: 10s\n  interval: 100ms\n")


class Fleet:
    def __init__(self, root, hook, fetch_interval="60s"):
        self.processes, self.namespaces = [], []
        try:
            self.setup(root, hook, fetch_interval)
        except BaseException:
            self.close()
            raise

    def setup(self, root, hook, fetch_interval):
        self.root = root
        self.names = [f"host-{n}" for n in range(1, HOSTS + 1)]
        self.git_ns = f"{TAG}-git"
        ip("netns", "add", self.git_ns)
        self.namespaces.append(self.git_ns)
        ip("-n", self.git_ns, "link", "set", "lo", "up")
        for n in range(1, HOSTS + 1):
            ns = f"{TAG}-{n}"
            ip("netns", "add", ns)
            self.namespaces.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
            ip("link", "add", f"{TAG}h{n}", "netns", ns, "type", "veth", "peer", "name", f"{TAG}g{n}", "netns", self.git_ns)
            ip("-n", ns, "addr", "add", f"10.78.{n}.2/24", "dev", f"{TAG}h{n}")
            ip("-n", self.git_ns, "addr", "add", f"10.78.{n}.1/24", "dev", f"{TAG}g{n}")
            ip("-n", ns, "link", "set", f"{TAG}h{n}", "up")
            ip("-n", self.git_ns, "link", "set", f"{TAG}g{n}", "up")
        # The deployment repository: one app on every host.
        self.work = f"{root}/work"
        os.makedirs(self.work)
        sh("git", "init", "-q", "-b", "main", self.work)
        hosts = "".join(f"  - name: {name}\n    labels: {{role: web}}\n" for name in self.names)
        write(f"{self.work}/rewind.yaml", "apiVersion: rewind/v1\nbranch: main\nhosts:\n" + hosts
              + "apps:\n  - name: api\n    path: apps/api\n    placement: {labels: {role: web}}\n"
              + "policy:\n  maxPerHour: 0\n")
        write(f"{self.work}/apps/api/app.yaml", demo("1.0"))
        commit(self.work, "fleet")
        self.bare = f"{root}/git/deploy.git"
        os.makedirs(f"{root}/git")
        sh("git", "clone", "-q", "--bare", self.work, self.bare)
        if hook:
            posts = " ".join(f"10.78.{n}.2" for n in range(1, HOSTS + 1))
            write(f"{self.bare}/hooks/post-receive",
                  "#!/bin/sh\nfor a in " + posts + "; do\n"
                  "  curl -s -o /dev/null -m 2 -X POST -H 'X-GitHub-Event: push' -d '{}' http://$a:8080/hooks/git &\ndone\nwait\n", 0o755)
        self.daemon_log = open(f"{root}/git-daemon.log", "w")
        self.start(self.git_ns, ["git", "daemon", "--verbose", "--reuseaddr", "--export-all", "--enable=receive-pack",
                                 f"--base-path={root}/git", f"{root}/git"], self.daemon_log)
        wait("the git host", lambda: subprocess.run(["ip", "netns", "exec", f"{TAG}-1", "git", "ls-remote", "git://10.78.1.1/deploy.git"],
                                                    capture_output=True).returncode == 0, timeout=20, pause=0.05)
        self.agents = {}
        for n, name in enumerate(self.names, start=1):
            log = open(f"{root}/{name}.log", "w")
            self.agents[name] = self.start(f"{TAG}-{n}", [
                REWIND, "serve", "--repo", f"git://10.78.{n}.1/deploy.git", "--mirror", f"{root}/{name}/mirror", "--state-dir",
                f"{root}/{name}/state", "--host", name, "--address", "0.0.0.0", "--port", "8080", "--fetch-interval", fetch_interval,
                "--log-level", "warning"], log)
        self.wait_all("1.0", timeout=120)

    def start(self, ns, argv, log):
        process = subprocess.Popen(["ip", "netns", "exec", ns, *argv], env=dict(ENV, BENCH_DIR=self.root), stdout=log, stderr=log)
        self.processes.append(process)
        return process

    def running(self, name):
        try:
            with open(f"{self.root}/{name}/state/apps/api.json") as f:
                app = json.load(f)
            return (app.get("instance") or {}).get("version"), app.get("health")
        except (OSError, ValueError):
            return None, None

    def wait_all(self, version, timeout=180):
        wait(f"every host runs api {version}", lambda: all(self.running(n) == (version, "healthy") for n in self.names), timeout=timeout, pause=0.005)

    def quiet(self):
        """Until every host's notes and status for the release are on the git host: no push is pending or retried
        (a retried push fetches too, and would hide the fetch interval)."""
        commit = sh("git", "rev-parse", "HEAD", cwd=self.work)

        def done():
            notes = subprocess.run(["git", "notes", "--ref=rewind", "show", commit], cwd=self.bare, capture_output=True, text=True).stdout.splitlines()
            noted = {line.rsplit("host=", 1)[-1] for line in notes if line.startswith("healthy app=api")}
            return noted >= set(self.names)
        wait("every host's notes on the git host", done, timeout=300, pause=0.1)
        time.sleep(3)

    def push(self):
        sh("git", "push", "-q", self.bare, "main", cwd=self.work)

    def rollback_once(self, version):
        """Releases `version`, then times a rollback commit pushed -> every host on the one before, healthy."""
        write(f"{self.work}/apps/api/app.yaml", demo(version))
        commit(self.work, f"api {version}")
        self.push()
        self.wait_all(version)
        self.quiet()
        previous = self.running(self.names[0])
        sh(REWIND, "rollback", "api", "--repo", self.work, "--reason", "benchmark")
        old = sh("git", "show", "HEAD:apps/api/app.yaml", cwd=self.work).split('version: "')[1].split('"')[0]
        started = time.monotonic()
        self.push()
        self.wait_all(old, timeout=200)
        return time.monotonic() - started, previous

    def close(self):
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        for ns in self.namespaces:
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)


def rollback(hook, runs, fetch_interval="60s"):
    root = tempfile.mkdtemp(prefix="rewind-bench-fleet-")
    fleet = Fleet(root, hook=hook, fetch_interval=fetch_interval)
    try:
        times = []
        for run in range(runs):
            seconds, _ = fleet.rollback_once(f"1.{run + 1}")
            times.append(seconds)
            print(f"  {'webhook' if hook else 'interval'} run {run + 1}: {seconds * 1000:.0f} ms", flush=True)
        return times
    finally:
        fleet.close()
        shutil.rmtree(root, ignore_errors=True)


def idle():
    root = tempfile.mkdtemp(prefix="rewind-bench-fleet-")
    fleet = Fleet(root, hook=False)
    try:
        time.sleep(5)  # the first fetches and status writes settle

        def link_bytes(n):
            out = subprocess.run(["ip", "-n", f"{TAG}-{n}", "-s", "-j", "link", "show", "dev", f"{TAG}h{n}"], capture_output=True, text=True).stdout
            stats = json.loads(out)[0]["stats64"]
            return stats["rx"]["bytes"] + stats["tx"]["bytes"]

        def cpu(pid):
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        def fetches():
            with open(f"{root}/git-daemon.log") as f:
                return sum(1 for line in f if "Request upload-pack" in line)

        before = ([link_bytes(n) for n in range(1, HOSTS + 1)], [cpu(p.pid) for p in fleet.agents.values()], fetches(), time.monotonic())
        time.sleep(IDLE)
        after = ([link_bytes(n) for n in range(1, HOSTS + 1)], [cpu(p.pid) for p in fleet.agents.values()], fetches(), time.monotonic())
        hours = (after[3] - before[3]) / 3600
        rss = [int(next(l for l in open(f"/proc/{p.pid}/status") if l.startswith("VmRSS")).split()[1]) / 1024 for p in fleet.agents.values()]
        per_host_bytes = statistics.median(a - b for a, b in zip(after[0], before[0])) / hours
        per_host_cpu = statistics.median(a - b for a, b in zip(after[1], before[1])) / (after[3] - before[3]) * 100
        per_host_fetches = (after[2] - before[2]) / HOSTS / hours
        return per_host_fetches, per_host_bytes, per_host_cpu, statistics.median(rss)
    finally:
        fleet.close()
        shutil.rmtree(root, ignore_errors=True)


# SIGTERM (a timeout, ^C from a supervisor) ends the run through the cleanup, not around it.
signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
if os.geteuid() != 0:
    sys.exit("the fleet benchmark makes network namespaces (ip netns): run it as root")
print(f"{HOSTS} hosts, each a network namespace; rewind {REWIND}")
if "webhook" in ONLY:
    times = rollback(hook=True, runs=RUNS or 5)
    median = statistics.median(times)
    summary.append(f"rollback commit pushed -> {HOSTS} hosts healthy on the old version, push webhook: median {median * 1000:.0f} ms "
                   f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}, n={len(times)}); target <= 2 s; "
                   f"seed 001's average recovery 47 s: {47 / median:.0f}x faster")
if "interval" in ONLY:
    times = rollback(hook=False, runs=RUNS or 3)
    median = statistics.median(times)
    summary.append(f"the same without the webhook (fetch every 60 s): median {median:.1f} s (min {min(times):.1f}, max {max(times):.1f}, n={len(times)}); "
                   f"seed 001's 47 s: {median / 47:.2f}x")
if "idle" in ONLY:
    fetches, link, cpu, rss = idle()
    summary.append(f"idle, per host (default intervals, {HOSTS} hosts, {IDLE} s scaled to an hour): {fetches:.0f} fetches/h, "
                   f"{link / 1e6:.2f} MB/h on its link, CPU {cpu:.2f}% of a core, RSS {rss:.1f} MB")
print("\n".join(["", "summary:"] + [f"- {line}" for line in summary]))
