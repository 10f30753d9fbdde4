"""Headless Chromium through Selenium for the tests and benchmarks: Debian's
chromium and chromium-driver (Selenium must not look for, or download,
another), with the console log kept."""
from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def chromium(width=1280, height=1000):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=%d,%d" % (width, height)):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
