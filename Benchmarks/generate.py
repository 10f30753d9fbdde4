#!/usr/bin/env python3
"""Builds the synthetic deployment repository for the benchmarks.

    generate.py DIR [--commits 100000] [--apps 50] [--audit]

DIR becomes a git repository (with a working tree) whose branch main has
COMMITS commits on a first-parent chain over APPS apps of 4 files each:
- every commit bumps one app's version in app.yaml (round robin);
- every 1000th commit (n % 1000 == 1) changes one app's values.yaml, which
  nothing else touches for a long time: a clean revert target;
- every 1000th commit (n % 1000 == 999) is a plain `git revert` of the
  previous commit, as an engineer would write it.
With --audit (for Benchmarks/audit.py), also:
- every 250th commit (n % 250 == 100) is a Rewind rollback of the previous
  commit, with trailers (revert and rollback in turn, triggers manual,
  alert, analysis, api in turn): with the plain reverts, 500 rollbacks;
- notes under refs/notes/rewind on every 10th commit (applied, healthy;
  verified on rollbacks) and a failed note on each release a rollback undoes.
The repository is written with git fast-import, then `git gc`.
"""
import argparse, os, subprocess, sys

def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--commits", type=int, default=100_000)
    p.add_argument("--apps", type=int, default=50)
    p.add_argument("--audit", action="store_true")
    a = p.parse_args()
    notes = {}
    triggers = ["manual", "alert", "analysis", "api"]

    def iso(ts):
        import datetime
        return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
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
        elif a.audit and n % 250 == 100 and last_sha_mark:
            prev_name, prev_text = previous_app_yaml["last"]
            k = n // 250
            action = "revert" if k % 2 == 0 else "rollback"
            trigger = triggers[k % 4]
            target = "{SHA}" if action == "revert" else "{SHA2}"
            msg = (f"rewind: {action} {prev_name} to {prev_text[1]}\n\nRewind-Action: {action}\nRewind-Target: {target}\n"
                   f"Rewind-App: {prev_name}\nRewind-Reason: {prev_name} release failed: crash-looping\nRewind-Trigger: {trigger}\n"
                   + ("Rewind-Alert: HighErrorRate\n" if trigger == "alert" else "")
                   + ("Rewind-Actor: rewind@bench\n" if trigger != "manual" else ""))
            versions[prev_name] = prev_text[1]
            files.append((f"apps/{prev_name}/app.yaml", app_yaml(prev_name)))
            ts = t0 + n * 60
            notes[n] = (f"applied app={prev_name} version=1.0.{prev_text[1]} tree=0000000 duration=800ms time={iso(ts + 30)} host=bench\n"
                        f"healthy app={prev_name} version=1.0.{prev_text[1]} time={iso(ts + 45)} host=bench\n"
                        f"verified app={prev_name} time={iso(ts + 50)} host=bench\n")
            bad = t0 + (n - 1) * 60
            notes[n - 1] = (f"applied app={prev_name} version={prev_text[0]} tree=0000000 duration=800ms time={iso(bad + 20)} host=bench\n"
                            f"healthy app={prev_name} version={prev_text[0]} time={iso(bad + 30)} host=bench\n"
                            f"failed app={prev_name} version={prev_text[0]} reason=crash-looping time={iso(bad + 50)} host=bench\n")
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
        for placeholder, mark in (("{SHA}", n - 1), ("{SHA2}", n - 2)):
            if placeholder in msg:
                # A message cannot name a mark; ask fast-import for the id (answered on its stdout).
                out.write(f"get-mark :{mark}\n".encode())
                out.flush()
                msg = msg.replace(placeholder, fi.stdout.readline().decode().strip())
        if a.audit and n % 10 == 0 and n not in notes and msg.startswith(name + " 1.0."):
            ts = t0 + n * 60
            notes[n] = (f"applied app={name} version=1.0.{n} tree=0000000 duration=800ms time={iso(ts + 30)} host=bench\n"
                        f"healthy app={name} version=1.0.{n} time={iso(ts + 45)} host=bench\n")
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
    if notes:
        ts = t0 + (a.commits + 1) * 60
        out.write(f"commit refs/notes/rewind\ncommitter Bench Author <bench@example.com> {ts} +0000\ndata 12\nbench notes\n".encode())
        for mark in sorted(notes):
            data = notes[mark].encode()
            out.write(f"N inline :{mark}\ndata {len(data)}\n".encode() + data + b"\n")
        out.write(b"\n")
    out.write(b"done\n")
    out.close()
    if fi.wait() != 0:
        sys.exit("fast-import failed")
    subprocess.run(["git", "gc", "-q"], cwd=a.dir, check=True)
    subprocess.run(["git", "checkout", "-q", "-f", "main"], cwd=a.dir, check=True)

if __name__ == "__main__":
    main()
