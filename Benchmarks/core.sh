#!/usr/bin/env bash
# `make bench-core`: the reconciler-core issue's benchmarks, this build side
# by side with an earlier one (BEFORE, another rewind binary) and with the
# git CLI, in one run:
#   1. start-up: `rewind --version` against `git --version`;
#   2. `rewind revert` of a commit ~1,000 back against `git revert --no-edit`
#      (the synthetic repository of run.sh);
#   3. Benchmarks/reconciler.py for both builds: ref update → apply, an idle
#      pass over 1,000 apps, rollback commit → healthy, RSS with 50 apps.
#
#   Benchmarks/core.sh PATH-TO-REWIND PATH-TO-EARLIER-REWIND [--runs N]
set -euo pipefail
rewind=$(realpath "${1:?usage: core.sh PATH-TO-REWIND PATH-TO-EARLIER-REWIND [--runs N]}")
before=$(realpath "${2:?usage: core.sh PATH-TO-REWIND PATH-TO-EARLIER-REWIND [--runs N]}")
runs=${4:-20}
# reconcile runs in rewind-daemon, and the demo apps in rewind-demo-service,
# each found beside the rewind binary.
for helper in rewind-daemon rewind-demo-service; do
  for bin in "$rewind" "$before"; do
    [ -x "$(dirname "$bin")/$helper" ] || { echo "core.sh: $(dirname "$bin")/$helper is missing; copy it beside $bin" >&2; exit 64; }
  done
done
here=$(cd "$(dirname "$0")" && pwd)
. "$here/synthetic.sh"
medians() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(" ".join("%.2f" % (x["median"]*1000) for x in r))' "$1"; }

echo "== 1. start-up: --version, whole process"
hyperfine -N -w 3 -r "$runs" --export-json "$results/core-version.json" "$rewind --version" "$before --version" "git --version" >/dev/null
read -r now was git <<<"$(medians "$results/core-version.json")"
printf '   rewind %s ms   before %s ms   git %s ms   ratio to git %s (before %s)\n' "$now" "$was" "$git" \
  "$(python3 -c "print(f'{$now/$git:.1f}x')")" "$(python3 -c "print(f'{$was/$git:.1f}x')")"

echo "== 2. revert ~1,000 back, in three working-tree clones"
tip=$(git -C "$repo" rev-parse main)
target=$(git -C "$repo" log --first-parent --format=%H --grep 'tune values' -n 1 main)
for c in core-now core-before core-git; do
  [ -d "$data/clone-$c" ] || git clone -q "$repo" "$data/clone-$c"
  git -C "$data/clone-$c" reset -q --hard "$tip"
done
hyperfine -N -w 2 -r "$runs" --export-json "$results/core-revert.json" \
  --prepare "git -C $data/clone-core-now reset -q --hard $tip" "$rewind revert $target --repo $data/clone-core-now" \
  --prepare "git -C $data/clone-core-before reset -q --hard $tip" "$before revert $target --repo $data/clone-core-before" \
  --prepare "git -C $data/clone-core-git reset -q --hard $tip" "git -C $data/clone-core-git revert --no-edit $target" >/dev/null
read -r now was git <<<"$(medians "$results/core-revert.json")"
printf '   rewind %s ms   before %s ms   git %s ms   ratio to git %s (before %s; target <= 2x)\n' "$now" "$was" "$git" \
  "$(python3 -c "print(f'{$now/$git:.1f}x')")" "$(python3 -c "print(f'{$was/$git:.1f}x')")"

echo "== 3. the reconciler, this build"
python3 "$here/reconciler.py" "$rewind" --runs 5 --only ref-to-apply,idle-pass,rollback-to-healthy,memory
echo "== 3. the reconciler, the build before"
python3 "$here/reconciler.py" "$before" --runs 5 --only ref-to-apply,idle-pass,rollback-to-healthy,memory
