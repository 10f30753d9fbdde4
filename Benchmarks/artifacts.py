#!/usr/bin/env python3
"""`make bench-artifacts`: artifacts from an OCI registry (issue 24), on loopback.

    python3 Benchmarks/artifacts.py PATH-TO-REWIND [--runs N] [--megabytes M] [--only pull|rollback|updates]

pull: `rewind pull REF@DIGEST` of a single-layer artifact (M MB of random
bytes, default 50, tar+gzip) from Debian's docker-registry into an empty
cache (manifest, blob, every digest verified, the layer unpacked), against
`skopeo copy docker://REF dir:DIR` (which copies the blobs and does not
unpack) from the same registry, in turns, median of N (default 5).

rollback: `rewind rollback` commit -> the previous version healthy, for an
app whose artifact comes from the registry and is in the cache, with the
registry up and with it stopped, in turns, median of N each.

updates: a new tag pushed (skopeo's push has returned) -> the update commit
on the branch, written by `rewind serve`: with the registry's push
notifications sent to `POST /hooks/registry`, and without them (the
`updates.interval` poll, 5 s), median of N each.
"""
import hashlib, json, os, random, shutil, signal, statistics, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from remote import free_port  # noqa: E402
from reconciler import Reconciler, commit, new_repo, sh, status, wait, wall_ms, write  # noqa: E402

REWIND = os.path.abspath(sys.argv[1])
RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
MEGABYTES = int(sys.argv[sys.argv.index("--megabytes") + 1]) if "--megabytes" in sys.argv else 50


def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(f"{layout}/blobs/sha256/{digest}", "wb") as f:
        f.write(data)
    return f"sha256:{digest}", len(data)


class Registry:
    """Debian's docker-registry on a loopback port; stop() and start() keep its port and storage."""

    def __init__(self, root):
        self.root, self.port, self.process = root, free_port(), None
        self.configure()
        self.start()

    def configure(self, notify=None):
        """notify: (url, token) to send push notifications to, or None."""
        text = f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {self.root}/data\nhttp:\n  addr: 127.0.0.1:{self.port}\n"
        if notify:
            text += (f"notifications:\n  endpoints:\n    - name: rewind\n      url: {notify[0]}\n      headers:\n        Authorization: [Bearer {notify[1]}]\n"
                     "      timeout: 2s\n      threshold: 5\n      backoff: 200ms\n")
        with open(f"{self.root}/config.yml", "w") as f:
            f.write(text)

    def start(self):
        self.process = subprocess.Popen(["/usr/bin/docker-registry", "serve", f"{self.root}/config.yml"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/", timeout=1)
                return
            except Exception:
                if time.time() > deadline:
                    raise SystemExit("docker-registry did not start")
                time.sleep(0.05)

    def stop(self):
        if self.process:
            self.process.terminate()
            self.process.wait()
            self.process = None


def publish(root, host, repository, tag, tree):
    """Publishes the directory `tree` as one tar+gzip layer; returns the manifest digest."""
    name = f"{repository.replace('/', '-')}-{tag}"
    layout = f"{root}/layout-{name}"
    os.makedirs(f"{layout}/blobs/sha256")
    subprocess.run(["tar", "--owner=0", "--group=0", "-czf", f"{root}/layer-{name}.tar.gz", "-C", tree, "."], check=True)
    layer = blob(layout, open(f"{root}/layer-{name}.tar.gz", "rb").read())
    config = blob(layout, b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}')
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config[0], "size": config[1]},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer[0], "size": layer[1]}]}).encode()
    digest, size = blob(layout, manifest)
    with open(f"{layout}/oci-layout", "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(f"{layout}/index.json", "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
                                                      "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)
    subprocess.run(["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false", f"oci:{layout}:{tag}", f"docker://{host}/{repository}:{tag}"], check=True)
    return digest


def rollback_with_registry_down(root, registry):
    """Rollback commit -> healthy, the artifact cached, registry up against down."""
    host = f"127.0.0.1:{registry.port}"
    demo = os.path.join(os.path.dirname(REWIND), "rewind-demo-service")
    digests = {}
    for version in ["1.0", "2.0"]:
        tree = f"{root}/app-{version}"
        write(f"{tree}/bin/api", f"#!/bin/sh\nexec {demo} \"$@\"\n", mode=0o755)
        digests[version] = publish(root, host, "bench/app", version, tree)
    app = lambda v: (f"platform: process\nversion: \"{v}\"\nprocess:\n  command: bin/api\nhealth:\n  http: /health\n  timeout: 30s\n  interval: 1s\n"
                     f"artifact:\n  oci: {host}/bench/app:{v}@{digests[v]}\n")
    work = f"{root}/reconciler"
    os.makedirs(work)
    repo = new_repo(work, {"api": app("1.0")})
    good = sh("git", "rev-parse", "HEAD", cwd=repo)
    rec = Reconciler(work, repo, ["--plain-http-registry", host])
    try:
        st = lambda: status(repo, rec.state)["api"]
        runs_version = lambda v: (lambda a: a["applied"]["version"] == v and a["health"] == "healthy")(st())
        wait("1.0", lambda: runs_version("1.0"))
        samples = {"up": [], "down": []}
        for i in range(RUNS * 2):
            # ABBA order: neither mode always follows the other (a registry just restarted, a cache just warmed).
            mode = ["up", "down", "down", "up"][i % 4]
            write(f"{repo}/apps/api/app.yaml", app("2.0"))
            commit(repo, f"api 2.0 ({i})")
            wait("2.0", lambda: runs_version("2.0"))
            if mode == "down":
                registry.stop()
            t0 = time.time() * 1000
            subprocess.run([REWIND, "rollback", "api", "--to", good, "--repo", repo, "--state-dir", rec.state, "--reason", "benchmark"],
                           check=True, capture_output=True, env=dict(os.environ, REWIND_PLAIN_HTTP_REGISTRIES=host))
            wait("1.0 again", lambda: runs_version("1.0"))
            samples[mode].append(wall_ms(st()["healthySince"]) - t0)
            if mode == "down":
                registry.start()
        up, down = statistics.median(samples["up"]), statistics.median(samples["down"])
        spread = lambda xs: f"{min(xs):.0f}-{max(xs):.0f}"
        print(f"rollback commit -> healthy, artifact cached, median of {RUNS}: registry up {up:.0f} ms ({spread(samples['up'])}), "
              f"registry down {down:.0f} ms ({spread(samples['down'])}); ratio {down / up:.2f}x (target within 10%)")
    finally:
        rec.stop()


def pushed_tag_to_update_commit(root, registry):
    """A pushed tag -> serve's update commit, with notifications and by polling."""
    host = f"127.0.0.1:{registry.port}"
    tree = f"{root}/update-tree"
    write(f"{tree}/VERSION", "1\n")
    digest = publish(root, host, "bench/web", "1.0.0", tree)
    app = (f"platform: exec\nversion: \"1.0.0\"\nexec:\n  apply: \"true\"\nartifact:\n  oci: {host}/bench/web:1.0.0@{digest}\n"
           "updates:\n  tags: {semver: \"^1.0.0\"}\n  interval: 5s\n")
    work = f"{root}/updates"
    os.makedirs(work)
    repo = new_repo(work, {"web": app}, policy="  maxPerHour: 0\n  soak: 0s\n")
    state, token = f"{work}/state", "bench-hook-token"
    write(f"{work}/hook-token", token + "\n")
    log = open(f"{work}/serve.log", "w")
    serve = subprocess.Popen([REWIND, "serve", "--repo", repo, "--state-dir", state, "--port", "0", "--hook-token-file", f"{work}/hook-token",
                              "--plain-http-registry", host, "--log-level", "warning"], stdout=log, stderr=log)
    head = f"{repo}/.git/refs/heads/main"
    try:
        wait("serve", lambda: os.path.exists(f"{state}/serve.address"))
        address = open(f"{state}/serve.address").read().strip()
        samples = {"notification": [], "poll": []}
        minor = 0
        for mode in ["notification", "poll"]:
            registry.stop()
            registry.configure((f"http://{address}/hooks/registry", token) if mode == "notification" else None)
            registry.start()
            for _ in range(RUNS):
                minor += 1
                st = lambda: status(repo, state)["web"]
                # Each sample starts with the last update applied and healthy (soak 0s): nothing holds the next one.
                wait("the last update applied", lambda: (lambda a: a["health"] == "healthy" and a["applied"]["tree"] == a["desired"]["tree"])(st()))
                time.sleep(random.uniform(0, 0.2))
                before = open(head).read()
                write(f"{tree}/VERSION", f"{minor}\n")
                publish(root, host, "bench/web", f"1.{minor}.0", tree)
                t0 = time.time()
                wait(f"the update commit for 1.{minor}.0", lambda: open(head).read() != before, pause=0.002)
                samples[mode].append(time.time() - t0)
        note, poll = statistics.median(samples["notification"]), statistics.median(samples["poll"])
        print(f"pushed tag -> update commit, median of {RUNS}: with the registry's notification {note:.3f} s (target <= 1 s); "
              f"without, by the 5 s poll interval, {poll:.3f} s (max {max(samples['poll']):.3f} s); ratio {poll / note:.1f}x")
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
        log.close()


ONLY = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None  # pull, rollback or updates


def pull_against_skopeo(root, registry):
    """rewind pull against skopeo copy, in turns."""
    port = registry.port
    tree = f"{root}/tree"
    os.makedirs(tree)
    with open(f"{tree}/payload", "wb") as f:
        f.write(os.urandom(MEGABYTES << 20))
    host = f"127.0.0.1:{port}"
    digest = publish(root, host, "bench/api", "1.0", tree)
    reference = f"{host}/bench/api:1.0@{digest}"
    rewind_times, skopeo_times = [], []
    for _ in range(RUNS):
        state = f"{root}/state"
        shutil.rmtree(state, ignore_errors=True)
        start = time.perf_counter()
        subprocess.run([REWIND, "pull", reference, "--state-dir", state, "--plain-http-registry", host], check=True, stdout=subprocess.DEVNULL)
        rewind_times.append(time.perf_counter() - start)
        target = f"{root}/skopeo"
        shutil.rmtree(target, ignore_errors=True)
        start = time.perf_counter()
        subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{host}/bench/api@{digest}", f"dir:{target}"], check=True)
        skopeo_times.append(time.perf_counter() - start)
    ours, theirs = statistics.median(rewind_times), statistics.median(skopeo_times)
    print(f"pull of a {MEGABYTES} MB single-layer artifact, median of {RUNS}: rewind pull {ours:.3f} s (unpacked), "
          f"skopeo copy dir: {theirs:.3f} s (not unpacked); ratio {ours / theirs:.2f}x (target <= 1.0x)")


def main():
    root = tempfile.mkdtemp(prefix="rewind-bench-artifacts-")
    registry = Registry(root)
    try:
        if ONLY in (None, "pull"):
            pull_against_skopeo(root, registry)
        if ONLY in (None, "rollback"):
            rollback_with_registry_down(root, registry)
        if ONLY in (None, "updates"):
            pushed_tag_to_update_commit(root, registry)
    finally:
        registry.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
