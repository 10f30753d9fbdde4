#!/usr/bin/env python3
"""`make bench-artifacts`: pulling an artifact from an OCI registry (issue 24), on loopback.

    python3 Benchmarks/artifacts.py PATH-TO-REWIND [--runs N] [--megabytes M]

pull: `rewind pull REF@DIGEST` of a single-layer artifact (M MB of random
bytes, default 50, tar+gzip) from Debian's docker-registry into an empty
cache (manifest, blob, every digest verified, the layer unpacked), against
`skopeo copy docker://REF dir:DIR` (which copies the blobs and does not
unpack) from the same registry, in turns, median of N (default 5).
"""
import hashlib, json, os, shutil, statistics, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from remote import free_port  # noqa: E402

REWIND = os.path.abspath(sys.argv[1])
RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
MEGABYTES = int(sys.argv[sys.argv.index("--megabytes") + 1]) if "--megabytes" in sys.argv else 50


def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(f"{layout}/blobs/sha256/{digest}", "wb") as f:
        f.write(data)
    return f"sha256:{digest}", len(data)


def main():
    root = tempfile.mkdtemp(prefix="rewind-bench-artifacts-")
    port = free_port()
    with open(f"{root}/config.yml", "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\nhttp:\n  addr: 127.0.0.1:{port}\n")
    registry = subprocess.Popen(["/usr/bin/docker-registry", "serve", f"{root}/config.yml"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except Exception:
                if time.time() > deadline:
                    raise SystemExit("docker-registry did not start")
                time.sleep(0.05)
        tree, layout = f"{root}/tree", f"{root}/layout"
        os.makedirs(tree)
        os.makedirs(f"{layout}/blobs/sha256")
        with open(f"{tree}/payload", "wb") as f:
            f.write(os.urandom(MEGABYTES << 20))
        subprocess.run(["tar", "--owner=0", "--group=0", "-czf", f"{root}/layer.tar.gz", "-C", tree, "."], check=True)
        layer = blob(layout, open(f"{root}/layer.tar.gz", "rb").read())
        config = blob(layout, b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}')
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config[0], "size": config[1]},
                               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer[0], "size": layer[1]}]}).encode()
        digest, size = blob(layout, manifest)
        with open(f"{layout}/oci-layout", "w") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')
        with open(f"{layout}/index.json", "w") as f:
            json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
                                                          "annotations": {"org.opencontainers.image.ref.name": "1.0"}}]}, f)
        host = f"127.0.0.1:{port}"
        subprocess.run(["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false", f"oci:{layout}:1.0", f"docker://{host}/bench/api:1.0"], check=True)
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
    finally:
        registry.terminate()
        registry.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
