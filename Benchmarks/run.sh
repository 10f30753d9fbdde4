#!/usr/bin/env bash
# `make bench`: Rewind side by side with the git CLI on the synthetic
# deployment repository (100,000 commits, 50 apps, 4 files each), built once
# by Benchmarks/generate.py under Benchmarks/data/ (git-ignored).
#
#   Benchmarks/run.sh PATH-TO-REWIND [--runs N]
#
# Prints each benchmark's median for both, the ratio, and the target from
# the issue; the raw hyperfine JSON is left in Benchmarks/data/results/.
set -euo pipefail
rewind=$(realpath "${1:?usage: run.sh PATH-TO-REWIND [--runs N]}")
runs=${3:-15}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/synthetic.sh"
tip=$(git -C "$repo" rev-parse main)
echo "repository: $(git -C "$repo" rev-list --count main) commits, $(git -C "$repo" ls-tree -d --name-only main:apps | wc -l) apps"

median() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]["median"])' "$1" "$2"; }
summary=()
report() { # name rewind-median peer-median target
  local ratio
  ratio=$(python3 -c "print(f'{$2/$3:.2f}')")
  summary+=("$(printf '%-44s rewind %8.1f ms   git %8.1f ms   ratio %5sx   target: %s' "$1" "$(python3 -c "print($2*1000)")" "$(python3 -c "print($3*1000)")" "$ratio" "$4")")
}

echo; echo "== 1. releases, all 50 apps, cold (no index) vs git log for one app"
hyperfine -N -w 2 -r "$runs" --export-json "$results/releases-cold.json" \
  "$rewind releases --repo $repo --format json --no-cache" \
  "git -C $repo log --first-parent --format=%H -- apps/app-07" >/dev/null
report "releases cold (all apps) vs git log (1 app)" "$(median "$results/releases-cold.json" 0)" "$(median "$results/releases-cold.json" 1)" "ratio <= 1"

echo "== 1b. the same with --limit 0 (every release of every app: $(git -C "$repo" rev-list --count main) rows)"
hyperfine -N -w 1 -r 5 --export-json "$results/releases-all.json" \
  "$rewind releases --repo $repo --format json --no-cache --limit 0" \
  "git -C $repo log --first-parent --format=%H -- apps/app-07" >/dev/null
report "releases cold --limit 0 vs git log (1 app)" "$(median "$results/releases-all.json" 0)" "$(median "$results/releases-all.json" 1)" "(information)"

echo "== 2. releases with the index, after one new commit"
parent=$(git -C "$repo" rev-parse main~1)
hyperfine -N -w 2 -r "$runs" --export-json "$results/releases-warm.json" \
  --prepare "sh -c 'git -C $repo update-ref refs/heads/main $parent && $rewind releases --repo $repo --format json >/dev/null && git -C $repo update-ref refs/heads/main $tip'" \
  "$rewind releases --repo $repo --format json" \
  "git -C $repo log --first-parent --format=%H -- apps/app-07" >/dev/null
report "releases, index + 1 new commit (20/app)" "$(median "$results/releases-warm.json" 0)" "$(median "$results/releases-warm.json" 1)" "rewind <= 50 ms"
for n in 1 256; do
  hyperfine -N -w 2 -r "$runs" --export-json "$results/releases-warm-$n.json" \
    --prepare "sh -c 'git -C $repo update-ref refs/heads/main $parent && $rewind releases --repo $repo --format json --limit $n >/dev/null && git -C $repo update-ref refs/heads/main $tip'" \
    "$rewind releases --repo $repo --format json --limit $n" \
    "git -C $repo log --first-parent --format=%H -- apps/app-07" >/dev/null
  report "releases, index + 1 new commit ($n/app)" "$(median "$results/releases-warm-$n.json" 0)" "$(median "$results/releases-warm-$n.json" 1)" "(information)"
done

echo "== 3. revert of a commit about 1,000 back, in two working-tree clones"
target=$(git -C "$repo" log --first-parent --format=%H --grep 'tune values' -n 1 main)
echo "   target $(git -C "$repo" log -1 --format='%h %s' "$target"), $(git -C "$repo" rev-list --count "$target..main") commits back"
for c in rw gitcli; do
  [ -d "$data/clone-$c" ] || git clone -q "$repo" "$data/clone-$c"
  git -C "$data/clone-$c" reset -q --hard "$tip"
done
hyperfine -N -w 2 -r "$runs" --export-json "$results/revert.json" \
  --prepare "git -C $data/clone-rw reset -q --hard $tip" \
  "$rewind revert $target --repo $data/clone-rw" \
  --prepare "git -C $data/clone-gitcli reset -q --hard $tip" \
  "git -C $data/clone-gitcli revert --no-edit $target" >/dev/null
if [ "$(git -C "$data/clone-rw" rev-parse HEAD^{tree})" = "$(git -C "$data/clone-gitcli" rev-parse HEAD^{tree})" ]; then
  echo "   same tree as git revert: yes"
else
  echo "   tree differs from git revert" >&2; exit 1
fi
report "revert ~1000 back (guards included)" "$(median "$results/revert.json" 0)" "$(median "$results/revert.json" 1)" "rewind <= 50 ms, ratio <= 3"

echo "== 4. peak memory (maximum resident set size)"
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
rw_cold=$(rss "$rewind" releases --repo "$repo" --format json --no-cache)
rw_all=$(rss "$rewind" releases --repo "$repo" --format json --no-cache --limit 0)
git_rss=$(rss git -C "$repo" log --first-parent --format=%H -- apps/app-07)
summary+=("$(printf '%-44s rewind %8.1f MB   git %8.1f MB   ratio %5sx   target: %s' "peak memory, releases cold" "$(python3 -c "print($rw_cold/1024)")" "$(python3 -c "print($git_rss/1024)")" "$(python3 -c "print(f'{$rw_cold/$git_rss:.2f}')")" "rewind <= 100 MB")")
summary+=("$(printf '%-44s rewind %8.1f MB' "peak memory, releases cold --limit 0" "$(python3 -c "print($rw_all/1024)")")")

echo; echo "== summary (medians of $runs runs; hyperfine JSON in $results)"
printf '%s\n' "${summary[@]}"
