#!/usr/bin/env python3
"""Signs in to rewind serve's web UI through single sign-on in headless
Chromium (Debian's chromium and chromium-driver, Selenium from PyPI): the
"Sign in with single sign-on" button, the provider's page (oidc-provider-mock:
its button for a predefined user), and back.

    check-sso.py SERVE_URL USER

Prints one JSON object: where the browser ended, who the page says is
signed in, whether it offers a rollback, and the problems; exits 1 on a problem.
"""
import json, os, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser import chromium
from selenium.webdriver.common.by import By


def main():
    url, user = sys.argv[1:3]
    driver = chromium(1280, 1000)
    result = {"problems": []}
    try:
        driver.get(url + "/apps/api")
        if "/login" not in driver.current_url:
            raise RuntimeError("without a session, the page did not lead to sign-in: " + driver.current_url)
        driver.find_element(By.ID, "sso").click()
        # The provider's page: the button of a predefined user.
        deadline = time.time() + 30
        while time.time() < deadline and not driver.find_elements(By.CSS_SELECTOR, "button[name='sub'][value='%s']" % user):
            time.sleep(0.05)
        driver.find_element(By.CSS_SELECTOR, "button[name='sub'][value='%s']" % user).click()
        while time.time() < deadline and not driver.current_url.startswith(url):
            time.sleep(0.05)
        while time.time() < deadline and not driver.find_elements(By.CSS_SELECTOR, ".who"):
            time.sleep(0.05)
        result["url"] = driver.current_url
        # Read in one script call: a live update (Server-Sent Events) may
        # replace the page's elements between two calls (a stale element).
        seen = driver.execute_script("""
            const who = document.querySelector('.who > span');
            return {who: who ? who.textContent : '', rollbackLinks: document.querySelectorAll("a[href$='/rollback']").length,
                    heading: Array.from(document.querySelectorAll('h1')).map(e => e.textContent).join(' ')};""")
        result.update(seen)
    except Exception as failure:
        result["problems"].append("%s: %s" % (type(failure).__name__, str(failure).split("\n")[0]))
    finally:
        driver.quit()
    print(json.dumps(result))
    sys.exit(1 if result["problems"] else 0)


if __name__ == "__main__":
    main()
