#!/usr/bin/env python3
"""`make bench-ui`: the web UI's benchmarks (issue 14).

    python3 Benchmarks/ui.py PATH-TO-REWIND [--runs N] [--only overview,app-page,sse]

1. The overview page with 1,000 apps: server time to first byte (target
   <= 50 ms), beside the same data as JSON (`GET /api/v1/status`).
2. The app page of an app with 10,000 releases, first page (50 releases,
   newest first): time to first byte (target <= 100 ms), beside the git CLI
   listing the same 50 commits (`git log -50 --first-parent -- apps/NAME`).
3. A rollback commit written (the API's answer) -> the change shown in a
   connected headless Chromium through Server-Sent Events (target <= 500 ms).

Each benchmark builds its own repository (exec apps whose apply is `true`)
in a temporary directory, starts `rewind serve` on loopback with a tokens
file, signs in like a browser, and removes everything afterwards. Medians
of N runs (default 30; 10 for the browser one).
"""
import http.client, json, os, shutil, signal, statistics, subprocess, sys, tempfile, time

REWIND = os.path.realpath(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else sys.exit(__doc__)
RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 30
ONLY = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else ["overview", "app-page", "sse"]
ENV = dict(os.environ, GIT_AUTHOR_NAME="Bench", GIT_AUTHOR_EMAIL="bench@example.com",
           GIT_COMMITTER_NAME="Bench", GIT_COMMITTER_EMAIL="bench@example.com",
           GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")
TOKEN = "bench-token-" + os.urandom(12).hex()
summary = []


def sh(*args, cwd=None, stdin=None):
    return subprocess.run(args, cwd=cwd, env=ENV, check=True, capture_output=True, text=True, input=stdin).stdout.strip()


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def app_yaml(version):
    return f"platform: exec\nversion: \"{version}\"\nexec:\n  apply: [\"true\"]\nhealth:\n  timeout: 5s\n"


def new_repo(root, apps):
    repo = os.path.join(root, "repo")
    sh("git", "init", "-q", "-b", "main", repo)
    write(f"{repo}/rewind.yaml", "apiVersion: rewind/v1\nbranch: main\napps:\n" + "".join(f"  - name: {n}\n    path: apps/{n}\n" for n in apps)
          + "policy:\n  maxPerHour: 100\n  cooldown: 0s\n")
    for name, version in apps.items():
        write(f"{repo}/apps/{name}/app.yaml", app_yaml(version))
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-q", "-m", "initial", cwd=repo)
    return repo


def wait(what, condition, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if condition():
                return
        except (OSError, ValueError, KeyError, http.client.HTTPException):
            pass
        time.sleep(0.05)
    raise SystemExit("timed out waiting for " + what)


class Serve:
    def __init__(self, root, repo):
        write(f"{root}/tokens", f"bench: {TOKEN}\n")
        self.state = f"{root}/state"
        self.log = open(f"{root}/serve.log", "w")
        self.process = subprocess.Popen([REWIND, "serve", "--repo", repo, "--state-dir", self.state, "--port", "0", "--ui-tokens-file", f"{root}/tokens",
                                         "--log-level", "warning"], env=ENV, stdout=self.log, stderr=self.log)
        address = f"{self.state}/serve.address"
        wait("serve", lambda: os.path.exists(address) and open(address).read().strip())
        self.host, port = open(address).read().strip().split(":")
        self.port = int(port)
        self.cookie = self.sign_in()

    def sign_in(self):
        c = http.client.HTTPConnection(self.host, self.port, timeout=30)
        c.request("POST", "/login", body=f"token={TOKEN}&next=/", headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        r.read()
        c.close()
        return r.getheader("Set-Cookie").split(";")[0]

    def get(self, path, headers=None):
        """(time to first byte ms, total ms, status, body)"""
        c = http.client.HTTPConnection(self.host, self.port, timeout=30)
        c.connect()
        t = time.perf_counter()
        c.request("GET", path, headers=dict({"Cookie": self.cookie}, **(headers or {})))
        r = c.getresponse()  # the status line and headers have arrived
        first = time.perf_counter()
        body = r.read()
        done = time.perf_counter()
        c.close()
        return (first - t) * 1000, (done - t) * 1000, r.status, body

    def status(self):
        return json.loads(self.get("/api/v1/status")[3])

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def median(values):
    return statistics.median(values)


def overview(runs):
    root = tempfile.mkdtemp(prefix="rewind-bench-ui-")
    serve = None
    try:
        repo = new_repo(root, {f"app-{i:04d}": f"1.0.{i}" for i in range(1000)})
        serve = Serve(root, repo)
        wait("1,000 apps healthy", lambda: sum(a["health"] == "healthy" for a in serve.status()["apps"]) == 1000, timeout=600)
        for _ in range(3):
            serve.get("/")
        page = [serve.get("/") for _ in range(runs)]
        api = [serve.get("/api/v1/status") for _ in range(runs)]
        assert all(p[2] == 200 for p in page) and b"app-0999" in page[0][3]
        ttfb, total, size = median([p[0] for p in page]), median([p[1] for p in page]), len(page[0][3])
        json_ttfb = median([p[0] for p in api])
        summary.append(("overview, 1,000 apps: time to first byte", f"{ttfb:.1f} ms (whole page {total:.1f} ms, {size / 1024:.0f} KiB)",
                        f"GET /api/v1/status {json_ttfb:.1f} ms; page/JSON {ttfb / json_ttfb:.2f}x", "<= 50 ms", ttfb <= 50))
    finally:
        if serve:
            serve.stop()
        shutil.rmtree(root, ignore_errors=True)


def app_page(runs):
    root = tempfile.mkdtemp(prefix="rewind-bench-ui-")
    serve = None
    try:
        repo = new_repo(root, {"api": "0.0.0", "web": "1.0.0"})
        # 10,000 releases of api, written with git fast-import (one commit each).
        parent = sh("git", "rev-parse", "HEAD", cwd=repo)
        stream = []
        now = int(time.time()) - 10_000 * 60
        for i in range(1, 10_001):
            text = app_yaml(f"1.{i // 100}.{i % 100}")
            message = f"api 1.{i // 100}.{i % 100}\n"
            stream.append(f"commit refs/heads/main\ncommitter Bench <bench@example.com> {now + i * 60} +0000\ndata {len(message)}\n{message}")
            if i == 1:
                stream.append(f"from {parent}\n")
            stream.append(f"M 100644 inline apps/api/app.yaml\ndata {len(text)}\n{text}\n")
        subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, env=ENV, input="".join(stream), text=True, check=True)
        sh("git", "reset", "-q", "--hard", "main", cwd=repo)
        serve = Serve(root, repo)
        wait("api applied", lambda: next(a for a in serve.status()["apps"] if a["app"] == "api")["health"] == "healthy", timeout=300)
        serve.get("/apps/api")  # the release index is built once
        page = [serve.get("/apps/api") for _ in range(runs)]
        assert all(p[2] == 200 for p in page) and b"#10001" in page[0][3], page[0][3][:300]
        git = []
        for _ in range(runs):
            t = time.perf_counter()
            sh("git", "log", "-50", "--first-parent", "--format=%H %an %at %s", "--", "apps/api", cwd=repo)
            git.append((time.perf_counter() - t) * 1000)
        ttfb, total = median([p[0] for p in page]), median([p[1] for p in page])
        summary.append(("app page, 10,000 releases, first page: time to first byte", f"{ttfb:.1f} ms (whole page {total:.1f} ms)",
                        f"git log -50 -- apps/api {median(git):.1f} ms; ratio {ttfb / median(git):.2f}x", "<= 100 ms", ttfb <= 100))
        # A deep page (releases 5,001-5,050 from the newest) beside git's listing of the same 50.
        deep = [serve.get("/apps/api?page=101") for _ in range(runs)]
        assert all(p[2] == 200 for p in deep) and b"#5001" in deep[0][3], deep[0][3][:300]
        git_deep = []
        for _ in range(runs):
            t = time.perf_counter()
            sh("git", "log", "--skip=5000", "-50", "--first-parent", "--format=%H %an %at %s", "--", "apps/api", cwd=repo)
            git_deep.append((time.perf_counter() - t) * 1000)
        d = median([p[0] for p in deep])
        summary.append(("app page, 10,000 releases, page 101: time to first byte", f"{d:.1f} ms",
                        f"git log --skip=5000 -50 -- apps/api {median(git_deep):.1f} ms; ratio {d / median(git_deep):.2f}x", "(no target)", True))
    finally:
        if serve:
            serve.stop()
        shutil.rmtree(root, ignore_errors=True)


def sse(runs):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
    from browser import chromium
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    runs = min(runs, 10)
    root = tempfile.mkdtemp(prefix="rewind-bench-ui-")
    serve = None
    driver = None
    try:
        repo = new_repo(root, {"api": "1.0.0", "web": "1.0.0"})
        serve = Serve(root, repo)
        wait("healthy", lambda: all(a["health"] == "healthy" for a in serve.status()["apps"]))
        driver = chromium()
        base = f"http://{serve.host}:{serve.port}"
        driver.get(base + "/")
        driver.find_element(By.ID, "token").send_keys(TOKEN + Keys.ENTER)
        wait("the live stream", lambda: driver.find_element(By.ID, "live-state").get_attribute("data-state") == "open")
        # The browser notes when the rollback shows (its clock is this machine's).
        driver.execute_script("""
            window.__shown = {};
            new MutationObserver(() => {
              document.querySelectorAll('#activity li.activity-rollback').forEach(li => {
                const m = li.textContent.match(/rollback ([0-9a-f]{8})/);
                if (m && !window.__shown[m[1]]) window.__shown[m[1]] = Date.now();
              });
            }).observe(document.getElementById('activity'), {childList: true, subtree: true});""")
        delays = []
        for i in range(runs):
            write(f"{repo}/apps/api/app.yaml", app_yaml(f"2.0.{i}"))
            sh("git", "commit", "-q", "-am", f"api 2.0.{i}", cwd=repo)
            wait("2.0.%d healthy" % i, lambda: next(a for a in serve.status()["apps"] if a["app"] == "api")["applied"]["version"] == f"2.0.{i}")
            c = http.client.HTTPConnection(serve.host, serve.port, timeout=30)
            c.request("POST", "/api/v1/apps/api/rollback", body=json.dumps({"reason": "bench"}), headers={"Authorization": "Bearer " + TOKEN})
            answer = json.loads(c.getresponse().read())
            written = time.time() * 1000
            c.close()
            short = answer["commit"][:8]
            wait("the rollback in the browser", lambda: driver.execute_script("return window.__shown[arguments[0]] || 0;", short), timeout=10)
            shown = driver.execute_script("return window.__shown[arguments[0]];", short)
            delays.append(max(shown - written, 0))
        m = median(delays)
        summary.append(("rollback commit -> shown in a connected browser (SSE)", f"{m:.0f} ms (max {max(delays):.0f} ms, n={len(delays)})",
                        "no peer (Argo CD's UI polls)", "<= 500 ms", m <= 500))
    finally:
        if driver:
            driver.quit()
        if serve:
            serve.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    for name, bench in (("overview", overview), ("app-page", app_page), ("sse", sse)):
        if name in ONLY:
            bench(RUNS)
    print("\nweb UI benchmarks (medians)")
    for name, value, peer, target, ok in summary:
        print(f"  {name}: {value}; {peer}; target {target}: {'met' if ok else 'MISSED'}")
