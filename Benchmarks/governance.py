#!/usr/bin/env python3
"""`make bench-governance`: the governance issue's benchmarks (issue 27).

    python3 Benchmarks/governance.py PATH-TO-REWIND [--before PATH-TO-EARLIER-REWIND] [--runs N]

1. An escalation -> PagerDuty event accepted and email accepted: rewind
   serve with a routes file (a pagerduty target at the loopback stand-in of
   fixtures/pagerduty, an email target at aiosmtpd requiring STARTTLS and
   AUTH); an Alertmanager alert for an app the policy may not roll back
   (maxPerHour: 0) is escalated; from the webhook's POST to each server's
   arrival time, median of N.
2. An API write with roles and the middleware against the build before
   (--before): POST /api/v1/apps/api/pin {"dryRun": true} with the API
   token over one keep-alive connection, median of 300, both builds in the
   same run, as a ratio (target: within 10%).
"""
import http.client, json, os, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(__file__))
from reconciler import REWIND, new_repo, status, wait, write  # noqa: E402
from remote import free_port  # noqa: E402
from serve import Serve, alert  # noqa: E402

RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 10
BEFORE = os.path.realpath(sys.argv[sys.argv.index("--before") + 1]) if "--before" in sys.argv else None
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
summary = []


def exec_app(version):
    return f"platform: exec\nversion: \"{version}\"\nexec:\n  apply: [\"true\"]\n"


def lines(path):
    try:
        return [json.loads(l) for l in open(path) if l.strip()]
    except FileNotFoundError:
        return []


def escalation_to_pager_and_mail(runs):
    root = tempfile.mkdtemp(prefix="rewind-bench-gov-")
    procs, serve = [], None
    try:
        pd_port, smtp_port = free_port(), free_port()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{root}/ca.key", "-out", f"{root}/ca.pem", "-days", "2",
                        "-subj", "/CN=bench CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"], check=True, capture_output=True)
        subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{root}/server.key", "-out", f"{root}/server.csr", "-subj", "/CN=localhost"],
                       check=True, capture_output=True)
        write(f"{root}/server.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        subprocess.run(["openssl", "x509", "-req", "-in", f"{root}/server.csr", "-CA", f"{root}/ca.pem", "-CAkey", f"{root}/ca.key", "-CAcreateserial",
                        "-out", f"{root}/server.pem", "-days", "2", "-extfile", f"{root}/server.ext"], check=True, capture_output=True)
        procs.append(subprocess.Popen([sys.executable, f"{ROOT}/fixtures/pagerduty/receiver.py", str(pd_port), f"{root}/pd.jsonl"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen([sys.executable, f"{ROOT}/fixtures/smtp/server.py", str(smtp_port), f"{root}/server.pem", f"{root}/server.key", "rewind", "bench-pass",
                                       f"{root}/mail.jsonl"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        write(f"{root}/pd-key", "BENCHROUTINGKEY0123456789ab\n")
        write(f"{root}/smtp-password", "bench-pass\n")
        write(f"{root}/notify.yaml", f"""targets:
  oncall: {{type: pagerduty, routingKeyFile: {root}/pd-key, url: "http://127.0.0.1:{pd_port}/v2/enqueue"}}
  mail: {{type: email, server: "localhost:{smtp_port}", from: rewind@example.com, to: [oncall@example.com], user: rewind, passwordFile: {root}/smtp-password}}
routes:
  - {{name: page, events: [escalated], targets: [oncall, mail]}}
""")
        repo = new_repo(root, {"api": exec_app("1.0.0")}, policy="  maxPerHour: 0\n")
        wait("receivers", lambda: all(subprocess.run(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{p}"], capture_output=True).returncode == 0 for p in (pd_port, smtp_port)))
        serve = Serve(root, repo, extra=["--notify-routes", f"{root}/notify.yaml", "--ca-file", f"{root}/ca.pem"])
        wait("1.0.0", lambda: status(repo, serve.state)["api"]["health"] == "healthy")
        to_pager, to_mail = [], []
        for i in range(runs):
            pages, mails = len(lines(f"{root}/pd.jsonl")), len(lines(f"{root}/mail.jsonl"))
            t0 = time.time()
            code, answer = serve.post(alert(f"fp-{i}", f"2026-12-04T10:{i:02d}:00Z"))
            assert b"escalated" in answer, answer
            wait("the page and the mail", lambda: len(lines(f"{root}/pd.jsonl")) > pages and len(lines(f"{root}/mail.jsonl")) > mails, timeout=30)
            page, mail = lines(f"{root}/pd.jsonl")[-1], lines(f"{root}/mail.jsonl")[-1]
            assert page["valid"] and page["body"]["event_action"] == "trigger", page
            to_pager.append((page["at"] - t0) * 1000)
            to_mail.append((mail["at"] - t0) * 1000)
        summary.append(f"escalation (Alertmanager webhook) -> PagerDuty event accepted: median {statistics.median(to_pager):.1f} ms "
                       f"(min {min(to_pager):.1f}, max {max(to_pager):.1f}); -> email accepted (STARTTLS, AUTH): median {statistics.median(to_mail):.1f} ms "
                       f"(min {min(to_mail):.1f}, max {max(to_mail):.1f}); n={runs}")
    finally:
        if serve:
            serve.stop()
        for p in procs:
            p.terminate()
            p.wait()
        shutil.rmtree(root, ignore_errors=True)


def api_write(binary, requests=300):
    root = tempfile.mkdtemp(prefix="rewind-bench-gov-")
    serve = None
    try:
        repo = new_repo(root, {"api": exec_app("1.0.0")}, policy="  maxPerHour: 3\n")
        write(f"{root}/api-token", "bench-api-token-0123456789\n")
        serve = Serve(root, repo, binary=binary, extra=["--api-token-file", f"{root}/api-token"])
        wait("1.0.0", lambda: status(repo, serve.state)["api"]["health"] == "healthy")
        c = http.client.HTTPConnection(serve.host, serve.port, timeout=10)
        headers = {"Authorization": "Bearer bench-api-token-0123456789", "Content-Type": "application/json"}
        times = []
        for i in range(requests + 20):
            t = time.time()
            c.request("POST", "/api/v1/apps/api/pin", body='{"dryRun": true}', headers=headers)
            r = c.getresponse()
            r.read()
            assert r.status == 200, r.status
            if i >= 20:
                times.append((time.time() - t) * 1000)
        return statistics.median(times)
    finally:
        if serve:
            serve.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    escalation_to_pager_and_mail(RUNS)
    print(summary[-1], flush=True)
    if BEFORE:
        now, before = [], []
        for _ in range(3):  # in turns, so that both builds see the same machine
            now.append(api_write(REWIND))
            before.append(api_write(BEFORE))
        a, b = statistics.median(now), statistics.median(before)
        summary.append(f"API write (POST pin dryRun, API token) with roles and the middleware: median {a:.2f} ms, the build before {b:.2f} ms: "
                       f"{a / b:.2f}x (target: within 10%)")
    else:
        summary.append(f"API write (POST pin dryRun, API token): median {api_write(REWIND):.2f} ms (give --before for the ratio)")
    print(summary[-1], flush=True)
    print("\n== summary (governance)")
    print("\n".join(summary))
