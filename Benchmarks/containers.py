#!/usr/bin/env python3
"""`make bench-containers`: the container platform (issue 25), against Podman on loopback.

    python3 Benchmarks/containers.py PATH-TO-REWIND [--runs N] [--only rollback,deploy,idle]

Debian's docker-registry and Podman (`podman system service` on a socket of
its own, with this machine's settings: runc, cgroupfs, vfs, no default
ulimits) are started here and stopped afterwards. The images hold the demo
service and the libraries it loads, in one layer.

rollback: `rewind rollback` commit -> the previous version healthy, with its
image in the engine's store: a container app, the same for a process app
(the container's extra cost), and `podman run -d` of the old image by hand
until it answers /health. Median of N (default 7) each.

deploy: a commit naming an image the engine does not have -> healthy (the
engine pulls it, Rewind starts it and checks health), against `podman pull`
+ `podman run -d` by hand until /health answers. Median of N each.

idle: the reconciler's RSS and CPU over 20 s of idling, supervising 50
container apps, against 50 process apps (the apps themselves excluded).
"""
import hashlib, json, os, shutil, signal, statistics, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from artifacts import Registry, blob  # noqa: E402
from remote import free_port  # noqa: E402
from reconciler import Reconciler, commit, new_repo, sh, status, wait, wall_ms, write  # noqa: E402

REWIND = os.path.abspath(sys.argv[1])
RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 7
ONLY = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else ["rollback", "deploy", "idle"]
DEMO = os.path.join(os.path.dirname(REWIND), "rewind-demo-service")
summary = []


class Podman:
    """`podman system service` with storage of its own; the CLI on the same storage for the by-hand runs."""

    def __init__(self, root, registry_host):
        self.root = root
        os.makedirs(root, exist_ok=True)
        write(f"{root}/containers.conf", "[containers]\ndefault_ulimits = []\n")
        write(f"{root}/registries.conf", f"unqualified-search-registries = []\n[[registry]]\nlocation = \"{registry_host}\"\ninsecure = true\n")
        self.env = dict(os.environ, CONTAINERS_CONF=f"{root}/containers.conf", CONTAINERS_REGISTRIES_CONF=f"{root}/registries.conf")
        self.flags = ["--runtime", "runc", "--cgroup-manager=cgroupfs", "--storage-driver=vfs", "--events-backend=file",
                      "--root", f"{root}/storage", "--runroot", f"{root}/run", "--tmpdir", f"{root}/tmp"]
        self.socket = f"{root}/podman.sock"
        self.log = open(f"{root}/service.log", "w")
        self.process = subprocess.Popen(["podman", *self.flags, "system", "service", "--time=0", f"unix://{self.socket}"],
                                        env=self.env, stdout=self.log, stderr=self.log)
        wait("podman system service", lambda: subprocess.run(["curl", "-sf", "--unix-socket", self.socket, "http://d/_ping"],
                                                             capture_output=True).stdout == b"OK", timeout=30, pause=0.05)

    def cli(self, *args, check=True):
        return subprocess.run(["podman", *self.flags, *args], env=self.env, check=check, capture_output=True, text=True).stdout

    def close(self):
        self.cli("rm", "--all", "--force", "--time", "0", check=False)
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        self.log.close()


def publish_image(root, host, repository, tag, files):
    """An image of the demo service, its libraries and `files`, in one uncompressed layer; returns its digest."""
    name = f"{repository.replace('/', '-')}-{tag}"
    tree, layout = f"{root}/tree-{name}", f"{root}/layout-{name}"
    os.makedirs(f"{layout}/blobs/sha256")
    libraries = [part for line in sh("ldd", DEMO).splitlines() for part in line.split() if part.startswith("/")]
    for path in [DEMO] + libraries:
        os.makedirs(tree + os.path.dirname(path), exist_ok=True)
        shutil.copy(path, tree + path)
    os.makedirs(f"{tree}/tmp", exist_ok=True)
    for path, text in files.items():
        write(f"{tree}/{path}", text)
    subprocess.run(["tar", "--owner=0", "--group=0", "--numeric-owner", "-cf", f"{root}/layer-{name}.tar", "-C", tree, "."], check=True)
    data = open(f"{root}/layer-{name}.tar", "rb").read()
    layer = blob(layout, data)
    config = blob(layout, json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                                      "rootfs": {"type": "layers", "diff_ids": [layer[0]]}}).encode())
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config[0], "size": config[1]},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer[0], "size": layer[1]}]}).encode()
    digest, size = blob(layout, manifest)
    write(f"{layout}/oci-layout", '{"imageLayoutVersion":"1.0.0"}')
    write(f"{layout}/index.json", json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                                                  "digest": digest, "size": size,
                                                                                  "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    subprocess.run(["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false", f"oci:{layout}:{tag}",
                    f"docker://{host}/{repository}:{tag}"], check=True)
    shutil.rmtree(tree)
    return f"{host}/{repository}:{tag}@{digest}"


HEALTH = "health:\n  http: /health\n  timeout: 60s\n  interval: 100ms\n"


def container_app(version, image):
    return (f"platform: container\nversion: \"{version}\"\ncontainer:\n  image: {image}\n  command: [\"{DEMO}\"]\n"
            f"  args: [\"--address\", \"0.0.0.0\"]\n  port: 8080\n  stopTimeout: 2s\n" + HEALTH)


def process_app(version):
    return f"platform: process\nversion: \"{version}\"\nprocess:\n  command: rewind-demo-service\n" + HEALTH


def healthy(repo, state, app, version):
    a = status(repo, state)[app]
    return a["applied"]["version"] == version and a["health"] == "healthy"


def by_hand(podman, image, pull):
    """`podman [pull +] run -d` of `image` until /health answers; returns ms."""
    port = free_port()
    t0 = time.time()
    if pull:
        podman.cli("pull", "--quiet", "--tls-verify=false", image)
    cid = podman.cli("run", "-d", "-p", f"127.0.0.1:{port}:8080", "--env", "PORT=8080", "--entrypoint", DEMO, image,
                     "--address", "0.0.0.0").strip()

    def answers():
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).status == 200
        except Exception:
            return False
    wait("the container by hand", answers, pause=0.005)
    took = (time.time() - t0) * 1000
    podman.cli("rm", "--force", "--time", "0", cid)
    return took


def rollbacks(root, podman, images, make_app, label):
    """`rewind rollback` commit -> the previous version healthy, median of RUNS."""
    work = f"{root}/{label}"
    os.makedirs(work)
    repo = new_repo(work, {"api": make_app("1.0", images[0])})
    good = sh("git", "rev-parse", "HEAD", cwd=repo)
    rec = Reconciler(work, repo, ["--container-socket", podman.socket])
    try:
        wait("1.0", lambda: healthy(repo, rec.state, "api", "1.0"))
        samples = []
        for i in range(RUNS):
            write(f"{repo}/apps/api/app.yaml", make_app(f"2.0.{i}", images[1]))
            commit(repo, f"api 2.0.{i}")
            wait(f"2.0.{i}", lambda: healthy(repo, rec.state, "api", f"2.0.{i}"))
            t0 = time.time() * 1000
            sh(REWIND, "rollback", "api", "--to", good, "--repo", repo, "--state-dir", rec.state, "--reason", "benchmark")
            wait("1.0 again", lambda: healthy(repo, rec.state, "api", "1.0"))
            samples.append(wall_ms(status(repo, rec.state)["api"]["healthySince"]) - t0)
        return samples
    finally:
        rec.stop()
        podman.cli("rm", "--all", "--force", "--time", "0", check=False)


def bench_rollback(root, podman, host):
    images = [publish_image(root, host, "bench/api", v, {"VERSION": v}) for v in ["1.0", "2.0"]]
    container = rollbacks(root, podman, images, container_app, "rollback-container")
    process = rollbacks(root, podman, images, lambda v, _: process_app(v), "rollback-process")
    hand = [by_hand(podman, images[0], pull=False) for _ in range(RUNS)]
    c, p, h = statistics.median(container), statistics.median(process), statistics.median(hand)
    summary.append(f"rollback commit -> old version healthy, image in the engine's store, median of {RUNS}: container app {c:.0f} ms "
                   f"({min(container):.0f}-{max(container):.0f}); process app {p:.0f} ms ({min(process):.0f}-{max(process):.0f}); "
                   f"`podman run -d` of the old image by hand until /health answers {h:.0f} ms; container / process {c / p:.2f}x, "
                   f"container / podman run {c / h:.2f}x")


def bench_deploy(root, podman, host):
    work = f"{root}/deploy"
    os.makedirs(work)
    first = publish_image(root, host, "bench/web", "0", {"VERSION": "0"})
    repo = new_repo(work, {"web": container_app("0", first)})
    rec = Reconciler(work, repo, ["--container-socket", podman.socket])
    samples, hand = [], []
    try:
        wait("web 0", lambda: healthy(repo, rec.state, "web", "0"))
        for i in range(1, RUNS + 1):
            image = publish_image(root, host, "bench/web", str(i), {"VERSION": str(i)})
            write(f"{repo}/apps/web/app.yaml", container_app(str(i), image))
            t0 = time.time() * 1000
            commit(repo, f"web {i}")
            wait(f"web {i}", lambda: healthy(repo, rec.state, "web", str(i)))
            samples.append(wall_ms(status(repo, rec.state)["web"]["healthySince"]) - t0)
            other = publish_image(root, host, "bench/hand", str(i), {"VERSION": str(i)})
            hand.append(by_hand(podman, other, pull=True))
    finally:
        rec.stop()
        podman.cli("rm", "--all", "--force", "--time", "0", check=False)
    ours, theirs = statistics.median(samples), statistics.median(hand)
    summary.append(f"deploy of a new image (pull + start + healthy), median of {RUNS}: commit -> healthy {ours:.0f} ms "
                   f"({min(samples):.0f}-{max(samples):.0f}); `podman pull` + `podman run -d` until /health answers {theirs:.0f} ms "
                   f"({min(hand):.0f}-{max(hand):.0f}); ratio {ours / theirs:.2f}x")


def idle(root, podman, apps, label):
    """The reconciler's RSS and CPU seconds over 20 s, supervising `apps`."""
    work = f"{root}/idle-{label}"
    os.makedirs(work)
    repo = new_repo(work, apps)
    rec = Reconciler(work, repo, ["--container-socket", podman.socket])
    try:
        wait(f"50 healthy {label} apps", lambda: all(a["health"] == "healthy" for a in status(repo, rec.state).values()), timeout=600, pause=0.5)
        time.sleep(5)
        ticks = lambda: sum(int(x) for x in open(f"/proc/{rec.process.pid}/stat").read().rsplit(")", 1)[1].split()[11:13])
        before = ticks()
        time.sleep(20)
        cpu = (ticks() - before) / os.sysconf("SC_CLK_TCK")
        fields = dict(line.split(":", 1) for line in open(f"/proc/{rec.process.pid}/status").read().splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, cpu / 20 * 100
    finally:
        rec.stop()
        podman.cli("rm", "--all", "--force", "--time", "0", check=False)


def bench_idle(root, podman, host):
    image = publish_image(root, host, "bench/idle", "1.0", {"VERSION": "1.0"})
    rss_c, cpu_c = idle(root, podman, {f"svc-{i:02d}": container_app("1.0", image) for i in range(50)}, "container")
    rss_p, cpu_p = idle(root, podman, {f"svc-{i:02d}": process_app("1.0") for i in range(50)}, "process")
    summary.append(f"reconciler idle with 50 apps (apps excluded), health probes every 100 ms: containers RSS {rss_c:.1f} MB, CPU {cpu_c:.1f}% "
                   f"of a core; processes RSS {rss_p:.1f} MB, CPU {cpu_p:.1f}%; ratio RSS {rss_c / rss_p:.2f}x, CPU {cpu_c / max(cpu_p, 0.01):.2f}x")


def main():
    root = tempfile.mkdtemp(prefix="rewind-bench-containers-")
    os.makedirs(f"{root}/registry")
    registry = Registry(f"{root}/registry")
    host = f"127.0.0.1:{registry.port}"
    podman = Podman(f"{root}/podman", host)
    try:
        if "rollback" in ONLY:
            bench_rollback(root, podman, host)
        if "deploy" in ONLY:
            bench_deploy(root, podman, host)
        if "idle" in ONLY:
            bench_idle(root, podman, host)
    finally:
        podman.close()
        registry.stop()
        shutil.rmtree(root, ignore_errors=True)
    print("\n".join(summary))


if __name__ == "__main__":
    main()
