#!/usr/bin/env python3
"""`make bench-artifacts`: artifacts from an OCI registry (issue 24), on loopback.

    python3 Benchmarks/artifacts.py PATH-TO-REWIND [--runs N] [--megabytes M]

pull: `rewind pull REF@DIGEST` of a single-layer artifact (M MB of random
bytes, default 50, tar+gzip) from Debian's docker-registry into an empty
cache (manifest, blob, every digest verified, the layer unpacked), against
`skopeo copy docker://REF dir:DIR` (which copies the blobs and does not
unpack) from the same registry, in turns, median of N (default 5).

rollback: `rewind rollback` commit -> the previous version healthy, for an
app whose artifact comes from the registry and is in the cache, with the
registry up and with it stopped, in turns, median of N each.
"""
import hashlib, json, os, shutil, statistics, subprocess, sys, tempfile, time, urllib.request

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
        with open(f"{root}/config.yml", "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\nhttp:\n  addr: 127.0.0.1:{self.port}\n")
        self.start()

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
            mode = "up" if i % 2 == 0 else "down"
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
        print(f"rollback commit -> healthy, artifact cached, median of {RUNS}: registry up {up:.0f} ms, registry down {down:.0f} ms; "
              f"ratio {down / up:.2f}x (target within 10%)")
    finally:
        rec.stop()


def main():
    root = tempfile.mkdtemp(prefix="rewind-bench-artifacts-")
    registry = Registry(root)
    port = registry.port
    try:
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
        rollback_with_registry_down(root, registry)
    finally:
        registry.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
