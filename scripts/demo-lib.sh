# Helpers shared by demo.sh, demo-monitoring.sh and demo-remote.sh (sourced).
# They use $rewind (the binary), $repo (the deployment repository; status is
# read from $status_repo instead when set, with $state_dir when set) and
# $demo_log (the log shown when a wait times out).

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
now_ms() { date +%s%3N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# field APP EXPR: a value from `rewind status --format json` for one app.
# (status exits 7 when something needs a human; the report is the same.)
field() {
  { "$rewind" status --repo "${status_repo:-$repo}" ${state_dir:+--state-dir "$state_dir"} --format json || [ $? -eq 7 ]; } | python3 -c '
import datetime, json, sys
def ms(value):
    """A time from the status JSON (RFC 3339 UTC with milliseconds) as wall-clock ms."""
    return round(datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
app = next(a for a in json.load(sys.stdin)["apps"] if a["app"] == sys.argv[1])
print(eval(sys.argv[2], {"ms": ms}, {"a": app}))' "$1" "$2"
}
# wait_for WHAT SECONDS COMMAND...: polls every 50 ms until COMMAND succeeds.
wait_for() {
  local what=$1 deadline=$(( $(now_ms) + $2 * 1000 )); shift 2
  until "$@"; do
    if (( $(now_ms) > deadline )); then echo "timed out waiting for $what" >&2; tail -20 "$demo_log" >&2; exit 1; fi
    sleep 0.05
  done
}
# runs APP VERSION: the app runs that version and is healthy.
runs() { [ "$(field "$1" 'str(a["applied"]["version"]) + " " + a["health"]')" = "$2 healthy" ]; }
