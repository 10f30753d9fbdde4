#!/usr/bin/env python3
"""Drives rewind serve's web UI in headless Chromium (Debian's chromium and
chromium-driver, Selenium from PyPI) as an engineer on call would.

    check-web-ui.py URL TOKEN REPO BAD_API_YAML OUTPUT_DIR

REPO is the deployment repository rewind serve follows; BAD_API_YAML is an
app.yaml for `api` that crash-loops. The git CLI commits it (the test's
environment names the author). Steps:

  1. sign in with TOKEN; every app shows healthy;
  2. commit the bad release of api; without a reload, watch api turn
     unhealthy and then rolled back (the activity list and the row);
  3. open the rollback's release page and the bad release's: their diffs;
  4. roll back web from the UI: preview (diff, guards), reason, confirm;
  5. pin worker with a reason, then unpin it;
  6. open the audit page: every chart draws marks;
  7. at 390 px wide (a phone): no page wider than the screen.

Screenshots of each page go to OUTPUT_DIR. Prints one JSON object (the
commits written, what was seen, problems); exits 1 when a step failed or
the browser console has an error. Every page's source is checked for the
token.
"""
import json, os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser import chromium
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys


class Failure(Exception):
    pass


# Every failed step is reported in the JSON (and the exit status), not as a traceback.
def main():
    url, token, repo, bad_yaml, out = sys.argv[1:6]
    viewer_token = sys.argv[6] if len(sys.argv) > 6 else None
    os.makedirs(out, exist_ok=True)
    driver = chromium(1280, 1000)
    result = {"problems": [], "console": [], "screenshots": [], "seenHealth": [], "commits": {}}
    sources = []

    width = [1280]

    def shot(name):
        height = driver.execute_script("return document.documentElement.scrollHeight;")
        driver.set_window_size(width[0], min(max(height, 700), 6000))
        path = os.path.join(out, name + ".png")
        driver.save_screenshot(path)
        result["screenshots"].append(path)
        driver.set_window_size(width[0], 1000)

    def keep_source():
        sources.append((driver.current_url, driver.page_source))

    def wait_for(what, condition, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.05)
        raise Failure("timed out waiting for " + what)

    def go(path):
        driver.get(url + path)
        keep_source()

    def texts(selector):
        # Read in one script call: a live update may replace the elements meanwhile.
        return driver.execute_script("return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent);", selector)

    def type_into(element_id, text, submit=False):
        # A live update may swap the form under the cursor between finding
        # the field and focusing it: find it again and retry.
        for attempt in range(20):
            try:
                field = driver.find_element(By.ID, element_id)
                field.send_keys(text)
                if submit:
                    field.submit()
                return
            except Exception:
                if attempt == 19:
                    raise
                time.sleep(0.1)

    def git(*args):
        return subprocess.run(["git", "-C", repo] + list(args), check=True, capture_output=True, text=True).stdout.strip()

    try:
        # 1. Sign in.
        go("/")
        if "/login" not in driver.current_url:
            raise Failure("without a session, / did not lead to the sign-in page: " + driver.current_url)
        shot("sign-in")
        driver.find_element(By.ID, "token").send_keys(token + Keys.ENTER)
        wait_for("the overview after signing in", lambda: driver.find_elements(By.CSS_SELECTOR, "table.apps tbody tr"))
        keep_source()
        rows = lambda: driver.execute_script(
            "const r = {}; document.querySelectorAll('table.apps tbody tr').forEach(t => r[t.dataset.app] = t.dataset.health); return r;")
        wait_for("every app healthy", lambda: rows() and all(h == "healthy" for h in rows().values()), timeout=30)
        wait_for("the live stream", lambda: driver.find_element(By.ID, "live-state").get_attribute("data-state") == "open", timeout=10)
        result["apps"] = rows()
        # Keyboard: the first Tab reaches the skip link.
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
        if "skip" not in (driver.switch_to.active_element.get_attribute("class") or ""):
            result["problems"].append("the first Tab does not reach the skip link")
        shot("overview")

        # 2. A bad release of api, watched live.
        driver.execute_script("window.__rewindNoReload = 'still here';")
        with open(bad_yaml) as f:
            text = f.read()
        with open(os.path.join(repo, "apps/api/app.yaml"), "w") as f:
            f.write(text)
        git("commit", "-q", "-am", "api 1.1.0: crashes")
        bad = git("rev-parse", "HEAD")
        result["commits"]["bad"] = bad
        seen = []

        def rolled_back():
            row = driver.execute_script(
                "const t = document.getElementById('app-api'); return t ? [t.dataset.health, t.dataset.applied] : [null, null];")
            health, applied = row
            if health and (not seen or seen[-1] != health):
                seen.append(health)
            activity = driver.execute_script("return document.getElementById('activity').innerText;")
            return "rollback" in activity and " of api " in activity and applied == "1.0.0" and seen[-1:] == ["healthy"]

        wait_for("api rolled back on the page", rolled_back, timeout=90)
        result["seenHealth"] = seen
        result["activity"] = driver.execute_script("return document.getElementById('activity').innerText;").split("\n")
        if driver.execute_script("return window.__rewindNoReload;") != "still here":
            result["problems"].append("the page reloaded")
        if not any(h in ("restarting", "failed", "unhealthy", "starting") for h in seen):
            result["problems"].append("api never showed as failing: %s" % seen)
        keep_source()
        shot("overview-after-rollback")
        rollback = git("rev-parse", "HEAD")
        result["commits"]["autoRollback"] = rollback

        # 3. Release pages and their diffs.
        go("/releases/" + rollback)
        result["rollbackDiff"] = texts("pre.diff .d-add, pre.diff .d-del")
        if not result["rollbackDiff"]:
            result["problems"].append("the rollback's release page shows no diff")
        shot("release-rollback")
        go("/releases/" + bad)
        result["badDiff"] = texts("pre.diff .d-add")
        shot("release-bad")

        # 4. Roll back web from the UI: preview, then confirm with a reason.
        go("/apps/web")
        shot("app-web")
        driver.find_element(By.PARTIAL_LINK_TEXT, "Roll back to the default target").click()
        wait_for("the preview", lambda: driver.find_elements(By.ID, "confirm"))
        keep_source()
        result["previewDiff"] = texts("pre.diff .d-add, pre.diff .d-del")
        result["previewGuards"] = texts("ul.guards li")
        before = git("rev-parse", "HEAD")
        if before != rollback:
            result["problems"].append("the preview wrote a commit")
        shot("rollback-preview")
        type_into("reason", "web 3.1.0 looks wrong (from the UI)")
        driver.find_element(By.ID, "confirm").click()
        wait_for("the written commit's page", lambda: "/releases/" in driver.current_url)
        keep_source()
        result["commits"]["uiRollback"] = driver.current_url.rsplit("/", 1)[-1]
        shot("release-ui-rollback")

        # 5. Pin and unpin worker.
        go("/apps/worker")
        type_into("pin-reason", "hold worker during the incident", submit=True)
        wait_for("pinned", lambda: "done=pinned" in driver.current_url and driver.find_elements(By.ID, "unpin-reason"))
        keep_source()
        result["commits"]["pin"] = git("rev-parse", "HEAD")
        shot("app-worker-pinned")
        type_into("unpin-reason", "incident over", submit=True)
        wait_for("unpinned", lambda: "done=unpinned" in driver.current_url and driver.find_elements(By.ID, "pin-reason"))
        keep_source()
        result["commits"]["unpin"] = git("rev-parse", "HEAD")

        # 6. The audit page.
        go("/audit?since=1d")
        charts = driver.execute_script("""
            return Array.from(document.querySelectorAll('svg.chart')).map(svg => ({
              name: svg.getAttribute('data-chart'),
              marks: Array.from(svg.querySelectorAll('.mark')).filter(m => { const b = m.getBBox(); return b.width > 0 || b.height > 0; }).length}));""")
        result["charts"] = charts
        result["auditRollbackLinks"] = len(driver.find_elements(By.CSS_SELECTOR, ".audit a[href^='/releases/']"))
        shot("audit")

        # Labels: every visible input of every form page has one.
        for path in ("/apps/worker", "/apps/web/rollback", "/audit"):
            go(path)
            unlabelled = driver.execute_script("""
                return Array.from(document.querySelectorAll('input:not([type=hidden])')).filter(i =>
                  !(i.id && document.querySelector('label[for="' + i.id + '"]')) && !i.getAttribute('aria-label')).map(i => i.name);""")
            if unlabelled:
                result["problems"].append("inputs without a label on %s: %s" % (path, unlabelled))

        # 7. A phone's width.
        # (Headless Chromium's windows are at least 500 px wide: a phone's
        # screen is emulated.)
        width[0] = 390
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": 390, "height": 900, "deviceScaleFactor": 1, "mobile": True})
        go("/")
        result["narrowViewport"] = driver.execute_script("return window.innerWidth;")
        if result["narrowViewport"] != 390:
            result["problems"].append("the emulated screen is %s px wide, not 390" % result["narrowViewport"])
        shot("overview-390")
        for path in ("/", "/apps/api", "/releases/" + rollback, "/apps/web/rollback", "/audit?since=1d"):
            go(path)
            overflow = driver.execute_script("return document.documentElement.scrollWidth;")
            if overflow > 390:
                result["problems"].append("at 390 px %s is %d px wide" % (path, overflow))

        # 8. A viewer (read-only role) signs in: no action is offered anywhere.
        if viewer_token:
            driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
            go("/")
            driver.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
            wait_for("the sign-in page after signing out", lambda: "/login" in driver.current_url)
            driver.find_element(By.ID, "token").send_keys(viewer_token + Keys.ENTER)
            wait_for("the overview for the viewer", lambda: driver.find_elements(By.CSS_SELECTOR, "table.apps tbody tr"))
            keep_source()
            seen = {"who": " ".join(texts(".who span"))}
            for path in ("/", "/apps/api", "/apps/web/rollback"):
                go(path)
                # One script call: a live update may replace elements between two.
                seen[path] = driver.execute_script("""
                    return {rollbackLinks: document.querySelectorAll("a[href$='/rollback']").length,
                            forms: Array.from(document.querySelectorAll("form[method='post']")).map(f => f.getAttribute('action')),
                            confirm: document.querySelectorAll('#confirm').length};""")
            shot("viewer-app")
            result["viewer"] = seen
            if token in driver.page_source or viewer_token in driver.page_source:
                result["problems"].append("a token is in the viewer's page")
    except Exception as failure:
        result["problems"].append("%s: %s" % (type(failure).__name__, str(failure).split("\n")[0]))
        try:
            shot("failure")
        except Exception:
            pass
    finally:
        logs = driver.get_log("browser")
        driver.quit()
    for entry in logs:
        result["console"].append(entry.get("message"))
        if entry.get("level") == "SEVERE":
            result["problems"].append("console: %s" % entry.get("message"))
    for where, source in sources:
        if token in source or (viewer_token and viewer_token in source):
            result["problems"].append("the token is in the source of " + where)
    result["pagesChecked"] = len(sources)
    print(json.dumps(result))
    if result["problems"]:
        print("\n".join(result["problems"]), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
