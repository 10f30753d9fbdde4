#!/usr/bin/env bash
# Second half of `make demo`: the same story through the real monitoring
# stack. The demo service's error rate rises after a bad release, a
# Prometheus rule fires, Alertmanager posts to `rewind serve`, Rewind reverts
# by commit. Called by demo.sh with the repository it built; cleans up after
# itself.
set -euo pipefail
rewind=${1:?usage: demo-monitoring.sh PATH-TO-REWIND REPO WORK}
repo=${2:?}
work=${3:?}
mon="$work/monitoring"
mkdir -p "$mon"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

demo_log="$mon/serve.log"
. "$(dirname "$0")/demo-lib.sh"
reverted_by_alert() { git -C "$repo" log -1 --format=%B | grep -q "Rewind-Trigger: alert"; }
metric() { curl -s "http://$serve_address/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
resolved() { [ -n "$(metric 'rewind_alerts_received_total{status="resolved"}')" ]; }

# worker this time: api's automatic rollback above started its 10-minute cooldown.
api_port=$(free_port); prom_port=$(free_port); am_port=$(free_port)
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$token" > "$mon/hook-token"
ui_token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "demo: $ui_token" > "$mon/ui-tokens"

step "Part 2: the same through Prometheus and Alertmanager"
echo "worker gets a fixed port ($api_port) so that Prometheus can scrape it"
sed -i "s/^  command: rewind-demo-service/  command: rewind-demo-service\n  port: $api_port/" "$repo/apps/worker/app.yaml"
git -C "$repo" commit -qam "worker: fixed port $api_port for monitoring"

printf '$ %s\n' "rewind serve --repo $repo --port 0 --hook-token-file hook-token --ui-tokens-file ui-tokens &"
"$rewind" serve --repo "$repo" --port 0 --hook-token-file "$mon/hook-token" --ui-tokens-file "$mon/ui-tokens" > "$mon/serve.log" 2>&1 &
pids+=($!)
wait_for "rewind serve" 30 test -s "$repo/.git/rewind/state/serve.address"
serve_address=$(cat "$repo/.git/rewind/state/serve.address")
wait_for "worker on port $api_port" 60 runs worker 2.1.0
echo "rewind serve listens on $serve_address"

cat > "$mon/rules.yml" <<RULES
groups:
  - name: rewind-demo
    interval: 1s
    rules:
      # The seeds' trigger is "error rate above 5% for 5 minutes"; the demo waits 2 seconds.
      - alert: HighErrorRate
        expr: sum by (app) (rate(http_requests_total{code="500"}[5s])) / sum by (app) (rate(http_requests_total[5s])) > 0.05
        for: 2s
        labels: {severity: critical}
        annotations: {summary: "error rate above 5%"}
RULES
cat > "$mon/prometheus.yml" <<PROM
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [$mon/rules.yml]
alerting:
  alertmanagers: [{static_configs: [{targets: ["127.0.0.1:$am_port"]}]}]
scrape_configs:
  - job_name: apps
    honor_labels: true
    static_configs: [{targets: ["127.0.0.1:$api_port"]}]
PROM
cat > "$mon/alertmanager.yml" <<AM
route: {receiver: rewind, group_by: [alertname, app], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}
receivers:
  - name: rewind
    webhook_configs:
      - url: http://$serve_address/hooks/alertmanager
        send_resolved: true
        http_config: {authorization: {credentials_file: $mon/hook-token}}
AM
prometheus-alertmanager --config.file="$mon/alertmanager.yml" --storage.path="$mon/am" --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= > "$mon/alertmanager.log" 2>&1 &
pids+=($!)
prometheus --config.file="$mon/prometheus.yml" --storage.tsdb.path="$mon/tsdb" --web.listen-address="127.0.0.1:$prom_port" > "$mon/prometheus.log" 2>&1 &
pids+=($!)
wait_for "prometheus" 30 curl -sf "http://127.0.0.1:$prom_port/-/ready" -o /dev/null
wait_for "alertmanager" 30 curl -sf "http://127.0.0.1:$am_port/-/ready" -o /dev/null
echo "prometheus on 127.0.0.1:$prom_port scrapes worker; alertmanager on 127.0.0.1:$am_port posts to rewind serve"
( while true; do curl -s -o /dev/null "http://127.0.0.1:$api_port/" || true; sleep 0.02; done ) &
pids+=($!)

step "A bad release: worker 2.2.0 fails 30% of its requests (health stays green)"
sed -i 's/2\.1\.0/2.2.0/g; s/args: \["--name", "worker"\]/args: ["--name", "worker", "--fail-rate", "0.3"]/' "$repo/apps/worker/app.yaml"
touch "$REWIND_ARTIFACT_ROOT/worker/worker-2.2.0.tar.gz"
t0=$(now_ms)
git -C "$repo" commit -qam "worker 2.2.0: new retry logic"
wait_for "worker 2.2.0" 60 runs worker 2.2.0
echo "worker 2.2.0 healthy $(( $(field worker 'ms(a["healthySince"])') - t0 )) ms after the commit; its error rate climbs..."
wait_for "the alert to fire and Rewind to revert" 90 reverted_by_alert
t_commit=$(now_ms)
echo "rule fired, Alertmanager posted, Rewind wrote a rollback commit $(( t_commit - t0 )) ms after the bad commit"
wait_for "worker 2.1.0 again" 60 runs worker 2.1.0
show git -C "$repo" log -1 --format='%h %s%n%n%(trailers)'
wait_for "the alert to resolve" 90 resolved
echo "the alert resolved: Alertmanager posted it, Rewind did nothing with it"
show "$rewind" status --repo "$repo" || [ $? -eq 7 ]

step "The web UI: what the browser shows (sign in with the token in $mon/ui-tokens)"
jar="$mon/cookies"
curl -s -o /dev/null -c "$jar" -d "token=$ui_token&next=/" "http://$serve_address/login"
curl -s -b "$jar" "http://$serve_address/" | grep -o 'data-app="[^"]*" data-health="[^"]*" data-applied="[^"]*"' | sed 's/^/  overview: /'
rollback=$(git -C "$repo" rev-parse HEAD)
curl -s -b "$jar" "http://$serve_address/releases/$rollback" | grep -o '<span class="d-\(add\|del\)">[^<]*' | sed 's/<span class="d-[a-z]*">/  release page: /; s/&quot;/"/g; s/&lt;/</g; s/&gt;/>/g; s/&amp;/\&/g'
echo "  (pages: /, /apps/worker, /releases/${rollback:0:8}, /audit; live updates over /api/v1/events)"

step "Measured (Rewind's /metrics)"
sum=$(metric 'rewind_rollback_commit_seconds_sum{trigger="alert"}'); count=$(metric 'rewind_rollback_commit_seconds_count{trigger="alert"}')
python3 -c "print(f'webhook received to rollback commit: {1000*$sum/$count:.1f} ms (mean of $count)')"
echo "alerts received: firing $(metric 'rewind_alerts_received_total{status="firing"}'), resolved $(metric 'rewind_alerts_received_total{status="resolved"}'); rollback commits by alert: $(git -C "$repo" log --format=%B | grep -c 'Rewind-Trigger: alert')"
