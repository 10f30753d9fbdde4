#!/usr/bin/env bash
# Fourth part of `make demo`: progressive delivery through a real HAProxy.
# A shop app behind a proxy on a fixed port gets a canary release, which an
# operator promotes; the next canary starts failing and Rewind takes it out
# of traffic at once, then writes the rollback commit. Called by demo.sh;
# cleans up after itself.
set -euo pipefail
rewind=${1:?usage: demo-traffic.sh PATH-TO-REWIND WORK}
work=${2:?}
base="$work/traffic"
repo="$base/deploy"
state_dir="$base/state"
reconciler_pid=""
cleanup() {
  if [ -n "$reconciler_pid" ] && kill -0 "$reconciler_pid" 2>/dev/null; then
    kill -TERM "$reconciler_pid"; wait "$reconciler_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
demo_log="$base/reconciler.log"
. "$(dirname "$0")/demo-lib.sh"
listen=$(free_port)

app_yaml() {  # VERSION [EXTRA-ARGS]
  cat <<EOF
platform: process
version: "$1"
process:
  command: rewind-demo-service
  args: ["--name", "shop"${2:+, $2}]
health:
  http: /health
  interval: 200ms
traffic:
  listen: 127.0.0.1:$listen
  strategy: canary
  steps: [20, 50, 100]
  interval: 1h
EOF
}
# share N: which version answered N requests through the proxy.
share() { for _ in $(seq "$1"); do curl -s "http://127.0.0.1:$listen/" | awk '{print $NF}'; done | sort | uniq -c | sed 's/^/  /'; }
rollout_line() { field shop '(a["traffic"]["rollout"] or {}).get("line", "no rollout")'; }

step "Progressive delivery: shop behind an HAProxy that Rewind starts on 127.0.0.1:$listen"
mkdir -p "$repo/apps/shop"
git init -q -b main "$repo"
printf 'apiVersion: rewind/v1\nbranch: main\napps:\n  - name: shop\n    path: apps/shop\npolicy:\n  cooldown: 0s\n' > "$repo/rewind.yaml"
app_yaml 1.0.0 > "$repo/apps/shop/app.yaml"
git -C "$repo" add -A && git -C "$repo" commit -qm "shop 1.0.0"
printf '$ %s\n' "rewind reconcile --repo $repo --state-dir $state_dir &"
"$rewind" reconcile --repo "$repo" --state-dir "$state_dir" > "$demo_log" 2>&1 &
reconciler_pid=$!
wait_for "shop 1.0.0" 60 runs shop 1.0.0
share 10

step "A canary: shop 1.1.0 gets 20% of the requests, 1.0.0 keeps the rest"
app_yaml 1.1.0 > "$repo/apps/shop/app.yaml"
git -C "$repo" commit -qam "shop 1.1.0"
at_step() { [ "$(rollout_line)" != "no rollout" ]; }
wait_for "the canary" 60 at_step
echo "status: $(rollout_line)"
share 100
show "$rewind" promote shop --repo "$repo" --state-dir "$state_dir" --reason "graphs look fine"

step "A bad canary: shop 1.2.0 starts failing its health checks while at 20%"
app_yaml 1.2.0 "\"--health-fail-file\", \"$base/sick\"" > "$repo/apps/shop/app.yaml"
git -C "$repo" commit -qam "shop 1.2.0: new search"
bad=$(git -C "$repo" rev-parse HEAD)
wait_for "the canary" 60 at_step
echo "status: $(rollout_line)"
touch "$base/sick"
moved() { [ "$(git -C "$repo" rev-parse HEAD)" != "$bad" ]; }
wait_for "the rollback commit" 60 moved
share 20
show git -C "$repo" log -1 --format='%h %an%n%n%B'
show git -C "$repo" notes --ref=rewind show "$bad"

kill -TERM "$reconciler_pid"; wait "$reconciler_pid" || true; reconciler_pid=""
pgrep -f "haproxy.*$base" >/dev/null && { echo "a proxy was left running" >&2; exit 1; } || echo "no proxy left behind"
