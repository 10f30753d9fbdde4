#!/usr/bin/env bash
# `make demo`: Rewind's main job on a fresh deployment repository from the
# template. The reconciler runs the apps as local processes (the demo
# service), a good release goes out, then a bad one crash-loops and Rewind
# rolls it back by writing a commit, and reconciles that commit (then, with
# Prometheus, a remote git host and an HAProxy canary). Measured
# times are printed at the end. Leaves no process and no file behind.
set -euo pipefail
rewind=${1:?usage: demo.sh PATH-TO-REWIND}
work=$(mktemp -d /tmp/rewind-demo.XXXXXX)
repo="$work/deploy"
reconciler_pid=""
cleanup() {
  if [ -n "$reconciler_pid" ] && kill -0 "$reconciler_pid" 2>/dev/null; then
    kill -TERM "$reconciler_pid"; wait "$reconciler_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
export REWIND_ARTIFACT_ROOT="$work/artifacts"
export GIT_AUTHOR_NAME="Dana Deployer" GIT_AUTHOR_EMAIL="dana@example.com"
export GIT_COMMITTER_NAME="Dana Deployer" GIT_COMMITTER_EMAIL="dana@example.com"

demo_log="$work/reconciler.log"
. "$(dirname "$0")/demo-lib.sh"
publish() { mkdir -p "$REWIND_ARTIFACT_ROOT/$(dirname "$1")"; echo "build of $1" > "$REWIND_ARTIFACT_ROOT/$1"; }
moved() { [ "$(git -C "$repo" rev-parse HEAD)" != "$1" ]; }
# since_ms APP T0: milliseconds from T0 until the app's running version became healthy.
since_ms() { echo $(( $(field "$1" 'ms(a["healthySince"])') - $2 )); }

for a in api/api-1.4.0.tar.gz worker/worker-2.1.0.tar.gz web/web-3.0.2.tar.gz api/api-1.5.0.tar.gz api/api-1.6.0.tar.gz; do publish "$a"; done

step "A new deployment repository from the template: api and worker run as processes, web through exec scripts"
show "$rewind" init "$repo"

step "Start the reconciler (log: reconciler.log)"
printf '$ %s\n' "rewind reconcile --repo $repo &"
"$rewind" reconcile --repo "$repo" > "$work/reconciler.log" 2>&1 &
reconciler_pid=$!
wait_for "the first deploy" 60 runs web 3.0.2
wait_for "the first deploy" 60 runs worker 2.1.0
show "$rewind" status --repo "$repo" || [ $? -eq 7 ]

step "A good release: api 1.5.0"
sed -i 's/1\.4\.0/1.5.0/g' "$repo/apps/api/app.yaml"
t0=$(now_ms)
git -C "$repo" commit -qam "api 1.5.0: faster checkout"
wait_for "api 1.5.0" 60 runs api 1.5.0
good_ms=$(since_ms api "$t0")
echo "api 1.5.0 applied and healthy ${good_ms} ms after the commit"

step "A bad release: api 1.6.0 crashes a second after it starts"
sed -i 's/1\.5\.0/1.6.0/g; s/args: \["--name", "api"\]/args: ["--name", "api", "--crash-after", "1s"]/' "$repo/apps/api/app.yaml"
t1=$(now_ms)
git -C "$repo" commit -qam "api 1.6.0: new payment provider"
bad=$(git -C "$repo" rev-parse HEAD)
wait_for "api 1.6.0 to start" 60 runs api 1.6.0
bad_ms=$(since_ms api "$t1")
echo "api 1.6.0 applied and healthy ${bad_ms} ms after the commit; now watch it crash..."
wait_for "the automatic rollback" 60 moved "$bad"
wait_for "api 1.5.0 again" 60 runs api 1.5.0
grep -E "crash|restart|rolled back|verified" "$work/reconciler.log" | sed 's/^/  log: /'

step "The rollback is an ordinary commit, written by the reconciler; its trailers explain it"
show git -C "$repo" log -1 --format='%h %an%n%n%B' 
show "$rewind" releases api --repo "$repo"

step "What happened on the platform is in git notes"
show git -C "$repo" log --notes=rewind -3 --format='%h %s%n%N'

step "Status"
show "$rewind" status --repo "$repo" || [ $? -eq 7 ]

step "The incident report the reconciler wrote when it verified its rollback (refs/notes/rewind-incident)"
incident_written() { git -C "$repo" notes --ref=rewind-incident show HEAD >/dev/null 2>&1; }
wait_for "the incident report" 30 incident_written
show git -C "$repo" notes --ref=rewind-incident show HEAD | sed -n '1,/^## What changed/p'

step "The audit, from git alone: rollbacks with their durations, DORA metrics, rollback metrics"
show "$rewind" audit --repo "$repo" --since 1h
"$rewind" audit --repo "$repo" --since 1h --format html --output "$work/audit.html"
echo "the same as one self-contained page: $work/audit.html"

step "Stop the reconciler: it stops the processes it supervises"
kill -TERM "$reconciler_pid"; wait "$reconciler_pid" || true; reconciler_pid=""
left() { pgrep -f "rewind-demo-service" | while read -r p; do grep -qs "$work" "/proc/$p/environ" && echo "$p"; done || true; }
[ -z "$(left)" ] && echo "no process left behind" || { echo "processes left: $(left)" >&2; exit 1; }

step "Measured"
timeline=$({ "$rewind" status --repo "$repo" --format json || [ $? -eq 7 ]; } | python3 -c '
import datetime, json, sys
ms = lambda v: round(datetime.datetime.strptime(v, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
t = next(a for a in json.load(sys.stdin)["apps"] if a["app"] == "api")["lastRollback"]
print(ms(t["committedAt"]) - ms(t["failedAt"]), ms(t["healthyAt"]) - ms(t["committedAt"]))')
read -r detect_ms heal_ms <<< "$timeline"
echo "commit to applied (good release):      ${good_ms} ms"
echo "commit to applied (bad release):       ${bad_ms} ms"
echo "failure noticed to rollback commit:    ${detect_ms} ms"
echo "rollback commit to healthy:            ${heal_ms} ms"

if command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null; then
  "$(dirname "$0")/demo-monitoring.sh" "$rewind" "$repo" "$work"
  [ -z "$(left)" ] && echo "no process left behind" || { echo "processes left: $(left)" >&2; exit 1; }
else
  echo "(prometheus and prometheus-alertmanager are not installed: skipping the monitoring half)"
fi

"$(dirname "$0")/demo-remote.sh" "$rewind" "$repo" "$work"
[ -z "$(left)" ] && echo "no process left behind" || { echo "processes left: $(left)" >&2; exit 1; }

"$(dirname "$0")/demo-traffic.sh" "$rewind" "$work"
[ -z "$(left)" ] && echo "no process left behind" || { echo "processes left: $(left)" >&2; exit 1; }
