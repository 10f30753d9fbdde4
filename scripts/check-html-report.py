#!/usr/bin/env python3
"""Opens an HTML report in headless Chromium (Debian's chromium and
chromium-driver, Selenium from PyPI) as a reader would, offline.

    check-html-report.py REPORT.html SCREENSHOT.png

Prints one JSON object: the browser's console messages, the marks each
chart (svg.chart) draws, the resources the page loaded, and the screenshot's
path. Exits 1, saying why, when the console has an error or a warning, a
chart has no visible mark, or the page loaded anything besides itself.
"""
import json, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser import chromium


def main():
    report, screenshot = sys.argv[1], sys.argv[2]
    driver = chromium(1280, 2400)
    try:
        driver.get("file://" + os.path.abspath(report))
        charts = driver.execute_script("""
            return Array.from(document.querySelectorAll('svg.chart')).map(svg => {
              const marks = Array.from(svg.querySelectorAll('.mark')).filter(m => {
                const box = m.getBBox();
                return box.width > 0 || box.height > 0;
              });
              return {name: svg.getAttribute('data-chart'), marks: marks.length};
            });""")
        resources = driver.execute_script("return performance.getEntriesByType('resource').map(r => r.name);")
        title = driver.title
        height = driver.execute_script("return document.documentElement.scrollHeight;")
        driver.set_window_size(1280, min(max(height, 800), 8000))
        driver.save_screenshot(screenshot)
        logs = driver.get_log("browser")
    finally:
        driver.quit()
    problems = []
    for entry in logs:
        if entry.get("level") in ("SEVERE", "WARNING"):
            problems.append("console: %s" % entry.get("message"))
    if not charts:
        problems.append("no chart (svg.chart) on the page")
    for chart in charts:
        if chart["marks"] == 0:
            problems.append("chart %s draws no visible mark" % chart["name"])
    if resources:
        problems.append("the page loaded other resources: %s" % resources)
    print(json.dumps({"title": title, "charts": charts, "console": logs, "resources": resources, "screenshot": screenshot, "problems": problems}))
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
