#!/usr/bin/env bash
# `make demo-commands`: a scripted walk-through of the rollback commands on a fresh deployment repository from
# the template: a few releases, a bad one, `rewind releases`, `rewind
# rollback`, and `git log` showing the trailers. Leaves nothing behind.
set -euo pipefail
rewind=${1:?usage: demo.sh PATH-TO-REWIND}
work=$(mktemp -d /tmp/rewind-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
export REWIND_ARTIFACT_ROOT="$work/artifacts"
export GIT_AUTHOR_NAME="Dana Deployer" GIT_AUTHOR_EMAIL="dana@example.com"
export GIT_COMMITTER_NAME="Dana Deployer" GIT_COMMITTER_EMAIL="dana@example.com"
repo="$work/deploy"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
publish() { mkdir -p "$REWIND_ARTIFACT_ROOT/$(dirname "$1")"; echo "build of $1" > "$REWIND_ARTIFACT_ROOT/$1"; }
release() { # release APP OLD NEW MESSAGE
  sed -i "s/$2/$3/g" "$repo/apps/$1/app.yaml"
  git -C "$repo" commit -qam "$4"
}

for a in api/api-1.4.0.tar.gz worker/worker-2.1.0.tar.gz web/web-3.0.2.tar.gz api/api-1.5.0.tar.gz web/web-3.1.0.tar.gz api/api-1.6.0.tar.gz; do publish "$a"; done

step "A new deployment repository from the template"
show "$rewind" init "$repo"
show "$rewind" validate --repo "$repo"

step "Three ordinary releases"
release api 1.4.0 1.5.0 "api 1.5.0: faster checkout"
release web 3.0.2 3.1.0 "web 3.1.0: new landing page"
release api 1.5.0 1.6.0 "api 1.6.0: new payment provider (this one is bad)"
show git -C "$repo" log --oneline

step "Releases per app, numbered like Helm revisions"
show "$rewind" releases --repo "$repo"

step "api 1.6.0 is failing: roll it back with a commit"
show "$rewind" rollback api --repo "$repo" --reason "error rate 12% after api 1.6.0"

step "The rollback is an ordinary commit; its trailers explain it"
show git -C "$repo" log -1
show "$rewind" releases api --repo "$repo"

step "An engineer's plain 'git revert' is recognised too"
show git -C "$repo" revert --no-edit HEAD~2
show "$rewind" releases web --repo "$repo"

step "Guards: a release whose artifact is gone is refused, and nothing is written"
before=$(git -C "$repo" rev-parse HEAD)
rm "$REWIND_ARTIFACT_ROOT/api/api-1.4.0.tar.gz"
printf '$ %s\n' "rewind rollback api --to #1   # api 1.4.0, whose artifact was deleted"
if "$rewind" rollback api --repo "$repo" --to "#1"; then echo "unexpected success" >&2; exit 1; fi
[ "$(git -C "$repo" rev-parse HEAD)" = "$before" ] && echo "(branch unchanged at ${before:0:7})"

step "Pin an app so that bots cannot undo the rollback; 'rewind check' guards CI"
show "$rewind" pin api --repo "$repo" --reason "hold until the payment fix ships"
pinned=$(git -C "$repo" rev-parse HEAD)
sed -i 's/REQUEST_TIMEOUT_MS=2000/REQUEST_TIMEOUT_MS=9000/' "$repo/apps/api/config.env"
git -C "$repo" commit -qam "bot: bump api config"
printf '$ %s\n' "rewind check $pinned..main"
if "$rewind" check --repo "$repo" "$pinned..main"; then echo "unexpected success" >&2; exit 1; fi

step "Done"
echo "Everything above is in git: git log --format=%B shows who, what, why."
