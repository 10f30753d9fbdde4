#!/usr/bin/env python3
"""`make bench-audit`: rewind audit and rewind incident on a 100,000-commit
history with notes on 10% of its commits and 500 rollbacks, side by side
with the git CLI in the same run.

    python3 Benchmarks/audit.py PATH-TO-REWIND [--runs N]

1. audit of the whole history, cold (`--no-cache`: the release index is
   neither read nor written) vs `git log --first-parent --notes=rewind
   --format='%H %ct %(trailers)%N'` on the same repository; target <= 1.0x.
2. the same audit warm (the release index and the audit's digest built
   once before), as JSON and as the default table: target <= 100 ms.
3. `rewind incident` for one rollback: target <= 50 ms.

Prints each median, the ratio to git and the target; peak memory of the
cold audit from /usr/bin/time. The repository is built once under
Benchmarks/data/synthetic-audit (git-ignored) by generate.py --audit.
"""
import os, shutil, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
REPO = os.path.join(DATA, "synthetic-audit")


def timed(argv, runs, **kw):
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, **kw)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000, samples


def peak_kb(argv):
    result = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    return int(result.stderr.strip().splitlines()[-1])


def main():
    rewind = os.path.abspath(sys.argv[1])
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 11
    if not os.path.exists(os.path.join(REPO, ".generated")):
        print("generating the audit repository (once; a few minutes)...", flush=True)
        shutil.rmtree(REPO, ignore_errors=True)
        subprocess.run([sys.executable, os.path.join(HERE, "generate.py"), REPO, "--audit"], check=True)
        open(os.path.join(REPO, ".generated"), "w").close()
    commits = subprocess.run(["git", "-C", REPO, "rev-list", "--count", "main"], capture_output=True, text=True, check=True).stdout.strip()
    notes = len(subprocess.run(["git", "-C", REPO, "notes", "--ref=rewind", "list"], capture_output=True, text=True, check=True).stdout.splitlines())
    print(f"repository: {commits} commits, {notes} notes")
    audit = [rewind, "audit", "--repo", REPO, "--since", "2000-01-01", "--format", "json"]
    git_log = ["git", "-C", REPO, "log", "--first-parent", "--notes=rewind", "--format=%H %ct %(trailers)%N", "main"]
    rows = json_rows(audit)
    print(f"the audit lists {rows} rollbacks")

    # 1. cold, interleaved with git so that both see the same machine.
    cold, peer = [], []
    for _ in range(max(3, runs // 2)):
        cold.append(timed(audit + ["--no-cache"], 1)[0])
        peer.append(timed(git_log, 1)[0])
    cold_ms, git_ms = statistics.median(cold), statistics.median(peer)
    memory = peak_kb(audit + ["--no-cache"]) / 1024

    # 2. warm: the index is built by a first run.
    subprocess.run(audit, stdout=subprocess.DEVNULL, check=True)
    warm_ms, _ = timed(audit, runs)
    table_ms, _ = timed(audit[:-2], runs)

    # 3. incident for one rollback (the newest).
    rollback = subprocess.run(["git", "-C", REPO, "log", "--first-parent", "-1", "--grep=^Rewind-Action: ", "--format=%H", "main"],
                              capture_output=True, text=True, check=True).stdout.strip()
    incident_ms, _ = timed([rewind, "incident", rollback, "--repo", REPO], runs)
    incident_json_ms, _ = timed([rewind, "incident", rollback, "--repo", REPO, "--format", "json"], runs)

    print()
    print(f"{'audit, whole history, cold (no index)':44} rewind {cold_ms:8.1f} ms   git log {git_ms:8.1f} ms   ratio {cold_ms / git_ms:5.2f}x   target: <= 1.0x")
    print(f"{'audit, whole history, warm (index)':44} rewind {warm_ms:8.1f} ms   ratio to git log {warm_ms / git_ms:5.2f}x   target: <= 100 ms")
    print(f"{'audit, whole history, warm, table':44} rewind {table_ms:8.1f} ms   ratio to git log {table_ms / git_ms:5.2f}x   target: <= 100 ms")
    print(f"{'incident, one rollback (markdown)':44} rewind {incident_ms:8.1f} ms   target: <= 50 ms")
    print(f"{'incident, one rollback (json)':44} rewind {incident_json_ms:8.1f} ms   target: <= 50 ms")
    print(f"{'peak memory, cold audit':44} {memory:8.1f} MB")


def json_rows(audit):
    import json
    out = subprocess.run(audit, capture_output=True, text=True, check=True).stdout
    return len(json.loads(out)["rollbacks"])


if __name__ == "__main__":
    main()
