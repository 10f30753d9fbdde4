#!/usr/bin/env python3
"""`make bench-traffic`: progressive delivery through a real HAProxy (issue 15).

    python3 Benchmarks/traffic.py PATH-TO-REWIND [--runs N] [--only abort,switch-back,release-load]

1. canary breach -> canary weight 0: a canary at 25% starts failing its health
   check; the time from Rewind noticing the breach to the proxy having
   acknowledged weight 0 (the `tookMs` of the `aborted` note, measured by
   Rewind around the runtime-API call), and, from outside, the time from the
   failure (the fail file appearing) until the proxy's socket shows the
   canary at weight 0 (that includes the health probe that notices it).
   Target: median <= 1 s (seed 002: canary abort 1-2 s).
2. blue-green switch back after a failure against a plain redeploy of the old
   version in the same run: the new version starts failing its health check;
   time until the old version answers again (through the proxy's fixed
   address, and without a proxy: the old version healthy again after the
   automatic rollback's redeploy).
3. failed requests during a healthy release under steady load (a request
   every 2 ms): blue-green behind the proxy against today's
   start-beside-then-stop deploy without a proxy, whose client follows the
   port the state file names.

Each benchmark builds its own repository in a temporary directory and removes
it (and every process it started) afterwards.
"""
import contextlib, json, os, shutil, socket, statistics, sys, tempfile, threading, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reconciler import ENV, REWIND, commit, new_repo, sh, status, wait, write, Reconciler  # noqa: E402

RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 7
POLICY = "  window: 30m\n  cooldown: 0s\n  maxPerHour: 1000\n  soak: 10m\n"
summary = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def app_yaml(version, traffic=None, args=()):
    text = (f"platform: process\nversion: \"{version}\"\nprocess:\n  command: rewind-demo-service\n  args: [{', '.join(json.dumps(a) for a in args)}]\n"
            "health:\n  http: /health\n  timeout: 1s\n  interval: 100ms\n")
    return text + ("traffic:\n" + traffic if traffic else "")


def weights(state, app):
    """The proxy's servers of `app` (name -> weight, 0 in maintenance), through its admin socket."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    s.connect(f"{state}/traffic/{app}/haproxy.sock")
    s.sendall(f"show servers state {app}\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    columns, result = [], {}
    for line in data.decode().splitlines():
        fields = line.split()
        if line.startswith("#"):
            columns = fields[1:]
        elif columns and len(fields) >= len(columns):
            row = dict(zip(columns, fields))
            result[row["srv_name"]] = 0 if int(row["srv_admin_state"]) & 0x21 else int(row["srv_uweight"])
    return result


def get(port):
    """(status, version) of GET /, or (0, error)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
            return r.status, r.read().decode().split()[-1]
    except urllib.error.HTTPError as e:
        return e.code, ""
    except Exception as e:  # refused, reset
        return 0, str(e)


def rollout(repo, state, app):
    return (status(repo, state)[app].get("traffic") or {}).get("rollout")


def rollbacks(repo):
    return sh("git", "log", "--format=%H", "--grep=Rewind-Action: rollback", "main", cwd=repo).split()


def note(repo, commit_id):
    return sh("git", "notes", "--ref=rewind", "show", commit_id, cwd=repo, check=False)


@contextlib.contextmanager
def api_running(traffic_for):
    """A repository with app api 1.0.0 (`traffic_for(listen port)` its traffic: or None) and a
    reconciler, waited for until healthy; yields (root, repo, reconciler, listen, traffic), then
    stops everything and removes the directory."""
    root = tempfile.mkdtemp(prefix="rewind-bench-")
    rec = None
    try:
        listen = free_port()
        traffic = traffic_for(listen)
        repo = new_repo(root, {"api": app_yaml("1.0.0", traffic)}, policy=POLICY)
        rec = Reconciler(root, repo)
        wait("1.0.0", lambda: status(repo, rec.state)["api"]["health"] == "healthy")
        yield root, repo, rec, listen, traffic
    except SystemExit:
        print("reconciler log:\n" + open(os.path.join(root, "reconciler.log")).read()[-3000:], file=sys.stderr)
        raise
    finally:
        if rec:
            rec.stop()
        shutil.rmtree(root, ignore_errors=True)


def canary_abort(runs):
    with api_running(lambda listen: f"  listen: {listen}\n  strategy: canary\n  steps: [25, 100]\n  interval: 1h\n") as (root, repo, rec, listen, traffic):
        inside, outside = [], []
        for i in range(1, runs + 1):
            sick = f"{root}/sick-{i}"
            write(f"{repo}/apps/api/app.yaml", app_yaml(f"2.0.{i}", traffic, ["--health-fail-file", sick]))
            release = commit(repo, f"api 2.0.{i}")
            wait(f"canary {i} at 25%", lambda: (rollout(repo, rec.state, "api") or {}).get("weight") == 25)
            before = len(rollbacks(repo))
            canary = [n for n, w in weights(rec.state, "api").items() if w == 25]
            t0 = time.monotonic()
            write(sick, "")
            wait("weight 0", lambda: all(weights(rec.state, "api").get(n, 0) == 0 for n in canary), pause=0.002)
            outside.append((time.monotonic() - t0) * 1000)
            wait("the rollback commit", lambda: len(rollbacks(repo)) == before + 1)
            wait("the aborted note", lambda: "aborted app=api" in note(repo, release))
            line = next(l for l in note(repo, release).splitlines() if l.startswith("aborted app=api"))
            inside.append(float(line.split("tookMs=")[1].split()[0]))
            wait("back on 1.0.0", lambda: status(repo, rec.state)["api"]["applied"]["version"] == "1.0.0")
        summary.append(f"canary breach noticed -> proxy at weight 0: median {statistics.median(inside):.1f} ms (max {max(inside):.1f}, n={runs}); "
                       f"failure -> weight 0 seen on the proxy's socket (probe included): median {statistics.median(outside):.1f} ms (max {max(outside):.1f}); "
                       f"target <= 1000 ms (seed 002: canary abort 1-2 s)")


def switch_back(runs):
    results = {}
    for mode in ("blue-green", "redeploy"):
        traffic_for = (lambda listen: f"  listen: {listen}\n  strategy: blueGreen\n  scaleDownDelay: 1h\n") if mode == "blue-green" else (lambda _: None)
        with api_running(traffic_for) as (root, repo, rec, listen, traffic):
            samples = []
            for i in range(1, runs + 1):
                sick = f"{root}/sick-{i}"
                write(f"{repo}/apps/api/app.yaml", app_yaml(f"2.0.{i}", traffic, ["--health-fail-file", sick]))
                commit(repo, f"api 2.0.{i}")
                st = lambda: status(repo, rec.state)["api"]
                wait(f"2.0.{i} healthy", lambda: (lambda a: a["applied"]["version"] == f"2.0.{i}" and a["health"] == "healthy")(st()))
                if mode == "blue-green":
                    wait("2.0 answers", lambda: get(listen)[1] == f"2.0.{i}")
                before = len(rollbacks(repo))
                t0 = time.monotonic()
                write(sick, "")
                if mode == "blue-green":
                    wait("1.0.0 answers again", lambda: get(listen)[1] == "1.0.0", pause=0.002)
                else:
                    wait("1.0.0 healthy again", lambda: (lambda a: a["applied"]["version"] == "1.0.0" and a["health"] == "healthy")(st()), pause=0.002)
                samples.append((time.monotonic() - t0) * 1000)
                # The next release only once the reconciler has written (and checked out) its rollback commit.
                wait("the rollback commit", lambda: len(rollbacks(repo)) == before + 1)
                wait("1.0.0 healthy", lambda: (lambda a: a["applied"]["version"] == "1.0.0" and a["health"] == "healthy")(st()))
            results[mode] = samples
    bg, rd = statistics.median(results["blue-green"]), statistics.median(results["redeploy"])
    summary.append(f"new version fails -> old version serves again: blue-green switch back median {bg:.1f} ms (max {max(results['blue-green']):.1f}), "
                   f"plain redeploy of the old version median {rd:.1f} ms (max {max(results['redeploy']):.1f}); ratio {bg / rd:.2f}, n={runs}; target <= 1000 ms")


class Load:
    """GET / every 2 ms on a thread; `port()` names where to send it."""

    def __init__(self, port):
        self.port, self.ok, self.failed, self.running = port, 0, 0, True
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        while self.running:
            code, _ = get(self.port())
            if code == 200:
                self.ok += 1
            else:
                self.failed += 1
            time.sleep(0.002)

    def stop(self):
        self.running = False
        self.thread.join()


def release_load(runs):
    results = {}
    for mode in ("blue-green", "no-proxy"):
        traffic_for = (lambda listen: f"  listen: {listen}\n  strategy: blueGreen\n  scaleDownDelay: 500ms\n") if mode == "blue-green" else (lambda _: None)
        with api_running(traffic_for) as (root, repo, rec, listen, traffic):
            state_file = f"{rec.state}/apps/api.json"
            known = {"port": None, "at": 0}

            def port():
                if mode == "blue-green":
                    return listen
                # Without a proxy the client follows the port the state names (re-read every 50 ms).
                if time.monotonic() - known["at"] > 0.05:
                    try:
                        known["port"] = json.load(open(state_file))["instance"]["port"]
                    except Exception:
                        pass
                    known["at"] = time.monotonic()
                return known["port"]

            load = Load(port)
            for i in range(1, runs + 1):
                write(f"{repo}/apps/api/app.yaml", app_yaml(f"1.{i}.0", traffic))
                commit(repo, f"api 1.{i}.0")
                wait(f"1.{i}.0 alone", lambda: (lambda a: a["applied"]["version"] == f"1.{i}.0" and a["health"] == "healthy"
                                                and not (a.get("traffic") or {}).get("rollout"))(status(repo, rec.state)["api"]))
                time.sleep(0.3)
            load.stop()
            results[mode] = (load.failed, load.ok + load.failed)
    (bf, bt), (nf, nt) = results["blue-green"], results["no-proxy"]
    summary.append(f"failed requests during {runs} healthy releases under steady load: blue-green {bf} of {bt}, "
                   f"start-beside-then-stop without a proxy {nf} of {nt} (client following the state's port); target 0 for blue-green")


BENCHMARKS = {
    "abort": lambda: canary_abort(RUNS),
    "switch-back": lambda: switch_back(RUNS),
    "release-load": lambda: release_load(5),
}

if __name__ == "__main__":
    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else list(BENCHMARKS)
    for name in only:
        BENCHMARKS[name]()
        print(summary[-1], flush=True)
    print("\n== summary (traffic)")
    print("\n".join(summary))
