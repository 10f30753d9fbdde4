#!/usr/bin/env python3
"""Writes the seed corpora of fixtures/fuzz/ (one folder per fuzz target).

Seeds are valid inputs of each parser, plus a few near misses; libFuzzer
mutates from there. Run it again after changing a format; crash inputs
that `make fuzz` saved (crash-*) are kept.
"""
import hashlib, hmac, json, os, pathlib

root = pathlib.Path(__file__).resolve().parent.parent
out = root / "fixtures" / "fuzz"
A = "a" * 40
B = "b" * 40

def write(target, name, text):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(text.encode() if isinstance(text, str) else text)

def files(pattern):
    return sorted(root.glob(pattern))

# rewind.yaml: the template, the fixtures, and the optional sections.
for i, f in enumerate(files("deploy-repo-template/rewind.yaml") + files("fixtures/three-apps/01-initial/rewind.yaml")):
    write("rewind-yaml", f"seed-{i}.yaml", f.read_text())
write("rewind-yaml", "triggers-and-limits.yaml", """apiVersion: rewind/v1
branch: main
artifactRoot: /srv/artifacts
apps:
  - name: api
    path: apps/api
  - name: web
    path: apps/web
    dependsOn: [api]
limits:
  maxFileBytes: 4096
  maxAppFiles: 100
policy:
  window: 30m
  cooldown: 10m
  maxPerHour: 3
  soak: 5m
  crashLoopRestarts: 3
  verify: head
  triggers:
    - name: errors
      query: sum(rate(http_requests_total{app="$app",code=~"5.."}[5m])) / sum(rate(http_requests_total{app="$app"}[5m]))
      threshold: 0.05
      comparison: ">"
      for: 5m
      action: rollback
""")
write("rewind-yaml", "bom.yaml", "\ufeffbranch: main\napps:\n  - name: a\n    path: a\n")

# app.yaml: every app of the template and the fixtures.
for i, f in enumerate(files("deploy-repo-template/apps/*/app.yaml") + files("fixtures/three-apps/*/apps/*/app.yaml")):
    write("app-yaml", f"seed-{i}.yaml", f.read_text())
write("app-yaml", "process-full.yaml", """platform: process
version: "2.0.0"
artifact:
  path: api/api-2.0.0.tar.gz
  sha256: %s
process:
  command: ./bin/api
  args: [--port, "8080"]
  env: {MODE: prod}
  port: 8080
  workingDirectory: bin
health:
  http: /health
  timeout: 10s
  interval: 1s
migrations:
  - id: m1
  - id: m2
    reversible: false
""" % ("0" * 64))
write("app-yaml", "traffic-canary.yaml", """platform: process
version: "1.6.0"
process:
  command: rewind-demo-service
traffic:
  listen: 127.0.0.1:8080
  strategy: canary
  steps: [10, 25, 50, 100]
  interval: 30s
  analysis:
    - name: errors
      query: 'sum(rate(http_requests_total{app="$app",version="$version",code="500"}[1m]))'
      threshold: 0.05
  proxy:
    socket: /run/haproxy/admin.sock
    backend: api
hooks:
  preRollback: ./notify.sh start
  postRollback: [./notify.sh, done]
migrations:
  - id: "001"
    down: [./migrate, down, "001"]
""")

# The pins file.
write("pins", "one.yaml", f"# Apps held by `rewind pin`.\npins:\n  api:\n    tree: {A}\n    target: {B}\n    reason: \"incident 42\"\n")
write("pins", "two.yaml", f"pins:\n  api:\n    tree: {A}\n    target: {B}\n  web:\n    tree: {B}\n    target: {A}\n")
write("pins", "empty.yaml", "pins: {}\n")

# Alertmanager webhook bodies (version 4).
def alert(status="firing", name="HighErrorRate", version="4"):
    return json.dumps({"version": version, "groupKey": "{}:{alertname=\"%s\"}" % name, "status": status, "receiver": "rewind",
                       "groupLabels": {"alertname": name}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am:9093",
                       "alerts": [{"status": status, "labels": {"alertname": name, "app": "api", "severity": "critical"},
                                   "annotations": {"summary": "error rate above 5%"}, "startsAt": "2026-11-21T10:00:00Z",
                                   "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom:9090/graph", "fingerprint": "c0ffee"}]})
write("alertmanager", "firing.json", alert())
write("alertmanager", "resolved.json", alert("resolved"))
write("alertmanager", "version3.json", alert(version="3"))

# Push webhooks: header lines, a blank line, the body (signed with fuzz-secret).
body = json.dumps({"ref": "refs/heads/main", "after": A, "repository": {"full_name": "ops/deploy"}})
mac = hmac.new(b"fuzz-secret", body.encode(), hashlib.sha256).hexdigest()
write("git-push", "github.txt", f"X-GitHub-Event: push\nX-GitHub-Delivery: 1\nX-Hub-Signature-256: sha256={mac}\n\n{body}")
write("git-push", "gitea.txt", f"X-Gitea-Event: push\nX-Gitea-Delivery: 2\nX-Gitea-Signature: {mac}\n\n{body}")
write("git-push", "gitlab.txt", f"X-Gitlab-Event: Push Hook\nX-Gitlab-Token: fuzz-secret\n\n{body}")
write("git-push", "unsigned.txt", f"X-GitHub-Event: push\n\n{body}")

# known_hosts lines.
key = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
write("known-hosts", "plain.txt", f"example.com ssh-ed25519 {key}\n[example.com]:2222 ssh-ed25519 ZnV6ei1ob3N0LWtleQ==\n")
write("known-hosts", "hashed.txt", f"|1|F1E1KeoE/eEWhi10WpGv4OdiO6Y=|3988QV0VE8wmZL7suNrYQLITLCg= ssh-ed25519 {key}\n")
write("known-hosts", "markers.txt", f"# comment\n@revoked * ssh-ed25519 ZnV6ei1ob3N0LWtleQ==\n@cert-authority *.example.com ssh-ed25519 {key}\n*.example.com,!git.example.com ssh-rsa AAAAB3NzaC1yc2E=\n")

# Commit messages with trailers, and git's revert message.
write("trailers", "rollback.txt", f"Roll back api to 1.2.0\n\nRestores the state at {A}.\n\nRewind-Action: rollback\nRewind-Target: {A}\nRewind-App: api\nRewind-Reason: error rate 12%\nRewind-Trigger: alert\nRewind-Alert: HighErrorRate\nRewind-Fingerprint: c0ffee\n")
write("trailers", "multi.txt", f"Roll back api, web\n\nRewind-Action: rollback\nRewind-Target: {A}\nRewind-Target: {B}\nRewind-App: api\nRewind-App: web\nRewind-Trigger: manual\nRewind-Forced: web migration 2 is irreversible\n")
write("trailers", "git-revert.txt", f"Revert \"api 1.3.0\"\n\nThis reverts commit {A}.\n")
write("trailers", "pin.txt", f"Pin api to 1.1.0\n\nRewind-Action: pin\nRewind-Target: {B}\nRewind-App: api\nRewind-Trigger: api\n")

# Note lines under refs/notes/rewind.
write("notes", "lifecycle.txt", "applied app=api time=2026-11-21T10:00:00Z host=h1\nhealthy app=api time=2026-11-21T10:00:05Z host=h1\n")
write("notes", "rollback.txt", "failed app=api reason=\"crash-looping: 3 exits in 1m\" time=2026-11-21T10:01:00Z host=h1\nrolled-back app=api by=abc1234 to=1.2.0 time=2026-11-21T10:01:01Z host=h1\n")
write("notes", "hand-written.txt", "checked by hand, looks fine\nverified app=web time=2026-11-21T10:02:00Z host=h2\nescalated app=api reason=\"rollback did not recover\"\n")

# Durations.
for i, d in enumerate(["1h30m", "250ms", "5m", "10s", "2d", " 45s ", "1h1m1s1ms"]):
    write("durations", f"seed-{i}.txt", d)

# Remote URLs.
for i, u in enumerate(["ssh://git@example.com:2222/ops/deploy.git", "git@example.com:ops/deploy.git", "https://example.com/ops/deploy.git",
                       "file:///srv/deploy.git", "git://127.0.0.1:9418/deploy.git", "https://user:token@example.com/x.git", "[::1]:deploy.git"]):
    write("remote-urls", f"seed-{i}.txt", u)

# State files.
instance = {"tree": A, "commit": B, "version": "1.2.0", "pid": 4242, "pidStartTime": 123456, "port": 8080, "startedAt": 1763719200000, "platform": "process"}
write("state", "app.json", json.dumps({"instance": instance, "release": B, "health": "healthy", "exits": [1, 2], "restarts": 1,
                                       "lastGood": {"commit": B, "tree": A, "version": "1.2.0"}, "observes": False}, sort_keys=True))
write("state", "reconciler.json", json.dumps({"format": 1, "lastApplied": B, "tip": B, "pendingNotes": [{"commit": B, "key": "applied app=api ", "line": "applied app=api"}],
                                              "invalid": {"commit": A, "message": "refused", "details": ["rewind.yaml:1: error"]}}, sort_keys=True))
write("state", "damaged.json", "{ not json")

# Dates of --since/--until and note times.
for name, d in [("utc", "2026-11-21T19:30:07Z"), ("offset", "2026-11-21T20:30:07.250+01:00"), ("leap-day", "2024-02-29"), ("age", "30d"),
                ("impossible", "2026-02-30T25:61:61Z"), ("long-fraction", "0000-01-01T00:00:00.123456789Z")]:
    write("dates", f"{name}.txt", d)

# The web UI's forms.
write("web-form", "seed-rollback", "csrf=0123456789abcdef&reason=bad+deploy+%26+more&to=%231&force=1")
write("web-form", "seed-login", "token=alice-0123456789abcdef&next=%2Fapps%2Fapi%3Fpage%3D2")
write("web-form", "seed-odd", "%zz&=&&a=b=c&%&%4&%e2%82%ac=euro&x")

# Tokens files (--ui-tokens-file).
write("tokens", "seed-valid", "# team\nalice: alice-0123456789abcdef\nbob:   bob-0123456789abcdef01  \n\n")
write("tokens", "seed-no-colon", "alice alice-0123456789abcdef\n")
write("tokens", "seed-roles", "alice: alice-0123456789abcdef viewer\nops: ops-0123456789abcdef break-glass\nbob: bob-0123456789abcdef superuser\n")
write("tokens", "seed-duplicate", "alice: secret-0123456789abcdef\nalice: secret-0123456789abcdefX\nbad name: secret-0123456789abcdefY\n")
write("tokens", "seed-short", "a: short\n")
