#!/usr/bin/env python3
"""Builds the synthetic deployment repository for the benchmarks.

    generate.py DIR [--commits 100000] [--apps 50]

DIR becomes a git repository (with a working tree) whose branch main has
COMMITS commits on a first-parent chain over APPS apps of 4 files each:
- every commit bumps one app's version in app.yaml (round robin);
- every 1000th commit (n % 1000 == 1) changes one app's values.yaml, which
  nothing else touches for a long time: a clean revert target;
- every 1000th commit (n % 1000 == 999) is a plain `git revert` of the
  previous commit, as an engineer would write it.
The repository is written with git fast-import, then `git gc`.
"""
import argparse, os, subprocess, sys

def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--commits", type=int, default=100_000)
    p.add_argument("--apps", type=int, default=50)
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", a.dir], check=True)
    fi = subprocess.Popen(["git", "fast-import", "--quiet", "--done"], cwd=a.dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out = fi.stdin
    names = [f"app-{i:02d}" for i in range(a.apps)]
    versions = {n: 0 for n in names}
    values = {n: 0 for n in names}
    previous_app_yaml = {}

    def blob(path, text):
        data = text.encode()
        out.write(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")

    def app_yaml(name):
        return (f"platform: exec\nversion: 1.0.{versions[name]}\n"
                f"artifact: shared/runtime.tar.gz\n"
                f"exec:\n  apply: ./deploy.sh\n  timeout: 60s\n"
                f"health:\n  command: ./health.sh\n"
                f"migrations:\n  - id: 0001_init\n    reversible: true\n")

    t0 = 1_700_000_000
    last_sha_mark = None
    for n in range(1, a.commits + 1):
        name = names[n % a.apps]
        files = []
        if n == 1:
            msg = "Initial deployment state"
            cfg = "branch: main\napps:\n" + "".join(f"  - name: {x}\n    path: apps/{x}\n" for x in names)
            files.append(("rewind.yaml", cfg))
            for x in names:
                files += [(f"apps/{x}/app.yaml", app_yaml(x)), (f"apps/{x}/config.env", f"APP={x}\nPOOL=10\n"),
                          (f"apps/{x}/values.yaml", f"replicas: 2\nvalues_rev: 0\n"), (f"apps/{x}/README.md", f"# {x}\n")]
        elif n % 1000 == 999 and last_sha_mark:
            prev_name, prev_text = previous_app_yaml["last"]
            msg = f"Revert \"{prev_name} {prev_text[0]}\"\n\nThis reverts commit {{SHA}}.\n"
            versions[prev_name] = prev_text[1]
            files.append((f"apps/{prev_name}/app.yaml", app_yaml(prev_name)))
        elif n % 1000 == 1:
            target = names[(n // 1000) % a.apps]
            values[target] += 1
            msg = f"{target}: tune values (rev {values[target]})"
            files.append((f"apps/{target}/values.yaml", f"replicas: {2 + values[target] % 3}\nvalues_rev: {values[target]}\n"))
        else:
            old = versions[name]
            versions[name] = n
            msg = f"{name} 1.0.{n}"
            previous_app_yaml["last"] = (name, (f"1.0.{n}", old))
            files.append((f"apps/{name}/app.yaml", app_yaml(name)))
        if "{SHA}" in msg:
            # A message cannot name a mark; ask fast-import for the id (answered on its stdout).
            out.write(f"get-mark :{n-1}\n".encode())
            out.flush()
            msg = msg.replace("{SHA}", fi.stdout.readline().decode().strip())
        data = msg.encode()
        ts = t0 + n * 60
        out.write(f"commit refs/heads/main\nmark :{n}\nauthor Bench Author <bench@example.com> {ts} +0000\n"
                  f"committer Bench Author <bench@example.com> {ts} +0000\ndata {len(data)}\n".encode() + data + b"\n")
        if n > 1:
            out.write(f"from :{n-1}\n".encode())
        for path, text in files:
            blob(path, text)
        out.write(b"\n")
        last_sha_mark = n
    out.write(b"done\n")
    out.close()
    if fi.wait() != 0:
        sys.exit("fast-import failed")
    subprocess.run(["git", "gc", "-q"], cwd=a.dir, check=True)
    subprocess.run(["git", "checkout", "-q", "-f", "main"], cwd=a.dir, check=True)

if __name__ == "__main__":
    main()
