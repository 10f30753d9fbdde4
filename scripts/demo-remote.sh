#!/usr/bin/env bash
# Third part of `make demo`: the deployment repository on a git server
# (git daemon on loopback). An engineer pushes a release and a signed push
# webhook makes `rewind serve` fetch it at once; then the git host goes down,
# a rollback still happens (committed on Rewind's mirror, applied, queued);
# then it hangs (accepts connections, never answers) and a command still
# answers within its idle deadline; and the rollback is pushed once the host is back. Called by demo.sh with the
# repository it built; cleans up after itself.
set -euo pipefail
rewind=${1:?usage: demo-remote.sh PATH-TO-REWIND REPO WORK}
repo=${2:?}
work=${3:?}
remote="$work/remote"
mkdir -p "$remote/served"
pids=()
daemon_pid=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$daemon_pid" ] && kill -- "-$daemon_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

demo_log="$remote/serve.log"
. "$(dirname "$0")/demo-lib.sh"
git_port=$(free_port)
url="git://127.0.0.1:$git_port/deploy.git"
mirror="$remote/mirror"
state="$remote/state"
status_repo="$mirror" state_dir="$state"   # demo-lib's helpers read status from the mirror
start_daemon() {
  setsid git daemon --reuseaddr --export-all --enable=receive-pack --listen=127.0.0.1 --port="$git_port" \
    --base-path="$remote/served" "$remote/served" >> "$remote/daemon.log" 2>&1 &
  daemon_pid=$!
  wait_for "git daemon" 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$git_port" 2>/dev/null
}
stop_daemon() { kill -- "-$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=""; }
secret=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$secret" > "$remote/hook-secret"
hook() { # DELIVERY-ID: a GitHub-style push webhook, signed with the secret
  local body='{"ref":"refs/heads/main"}' signature
  signature=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" | sed 's/^.* //')
  curl -s -o /dev/null -w '%{http_code}' -X POST "http://$serve_address/hooks/git" -H "X-GitHub-Event: push" \
    -H "X-GitHub-Delivery: $1" -H "X-Hub-Signature-256: sha256=$signature" --data "$body"
}
publish() { mkdir -p "$REWIND_ARTIFACT_ROOT/$(dirname "$1")"; echo "build of $1" > "$REWIND_ARTIFACT_ROOT/$1"; }

step "Part 3: the repository on a git server"
git clone -q --bare "$repo" "$remote/served/deploy.git"
start_daemon
echo "git daemon serves $url"
printf '$ %s\n' "rewind serve --repo $url --mirror mirror --git-hook-secret-file hook-secret --port 0 &"
"$rewind" serve --repo "$url" --mirror "$mirror" --state-dir "$state" --port 0 --git-hook-secret-file "$remote/hook-secret" \
  > "$remote/serve.log" 2>&1 &
pids+=($!)
wait_for "rewind serve" 30 test -s "$state/serve.address"
serve_address=$(cat "$state/serve.address")
current=$(git -C "$repo" show HEAD:apps/api/app.yaml | sed -n 's/^version: //p')
wait_for "api $current from the mirror" 60 runs api "$current"
echo "rewind serve listens on $serve_address; api runs $current, read from the mirror"

step "An engineer pushes api 1.7.0; the push webhook makes Rewind fetch at once"
publish api/api-1.7.0.tar.gz
git clone -q "$url" "$remote/engineer"
sed -i "s/$current/1.7.0/" "$remote/engineer/apps/api/app.yaml"
git -C "$remote/engineer" commit -qam "api 1.7.0"
show git -C "$remote/engineer" push -q origin main
t0=$(now_ms)
echo "POST /hooks/git (X-Hub-Signature-256) -> HTTP $(hook delivery-1)"
echo "the same delivery again -> HTTP $(hook delivery-1) (duplicate)"
wait_for "api 1.7.0" 30 runs api 1.7.0
webhook_ms=$(( $(field api 'ms(a["healthySince"])') - t0 ))
echo "webhook to api 1.7.0 healthy: ${webhook_ms} ms"

step "The git host goes down; a rollback still happens"
stop_daemon
show "$rewind" rollback api --repo "$url" --mirror "$mirror" --reason "error budget burning while git is down"
wait_for "api back on $current" 60 runs api "$current"
show "$rewind" status --repo "$mirror" --state-dir "$state" || [ $? -eq 7 ]

step "The git host hangs (accepts connections, never answers): a command answers within its idle deadline"
python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16); held = []
while True: held.append(s.accept()[0])
' "$git_port" &
stall_pid=$!
pids+=("$stall_pid")
wait_for "the hanging host" 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$git_port" 2>/dev/null
t0=$(now_ms)
show "$rewind" releases api --repo "$url" --mirror "$mirror" --git-idle-timeout 2s
echo "answered in $(( $(now_ms) - t0 )) ms with --git-idle-timeout 2s (without a deadline, libgit2 waits forever)"
kill "$stall_pid"; wait "$stall_pid" 2>/dev/null || true

step "The host is back: the queued commit is pushed once"
start_daemon
echo "POST /hooks/git -> HTTP $(hook delivery-2)"
pushed() { git -C "$remote/served/deploy.git" log -1 --format=%s main | grep -q "^Roll back api"; }
wait_for "the rollback on the server" 30 pushed
show git -C "$remote/served/deploy.git" log --format='%h %s' -3 main
unpushed() { [ "$({ "$rewind" status --repo "$mirror" --state-dir "$state" --format json || [ $? -eq 7 ]; } | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["unpushed"]))')" = 0 ]; }
wait_for "nothing unpushed" 30 unpushed
echo "nothing left unpushed"

kill -TERM "${pids[0]}"; wait "${pids[0]}" || true; pids=()
echo "webhook to healthy: ${webhook_ms} ms"
