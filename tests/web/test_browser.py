"""The dashboard in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`) driven by Selenium clicks through every page of a database filled by
the real pipeline over two weeks, checks what each shows, that no request leaves
127.0.0.1, and saves a screenshot of each page under the test's tmp folder
(`<tmp_path>/screenshots/*.png`, printed at the end)."""

from __future__ import annotations

import json
import shutil
import urllib.parse
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
MISSING = (
    None
    if CHROMIUM and DRIVER
    else "needs headless Chromium and its driver from Debian's packages: "
    "apt-get install -y chromium chromium-driver"
)

pytestmark = [pytest.mark.skipif(MISSING is not None, reason=MISSING or ""), pytest.mark.slow]


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (.[test])")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        # nothing but 127.0.0.1 resolves, and the browser's own services stay off
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--no-first-run",
        "--no-default-browser-check",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=DRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver) -> list[str]:
    """Every URL the browser asked for since the last call (its network log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def screenshot(driver, folder: Path, name: str) -> Path:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(height + 120, 700), 4000))
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)
    return path


@pytest.mark.history(14)
def test_click_through_every_page_in_chromium(browser, dashboard, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    shots = tmp_path / "screenshots"
    shots.mkdir()
    wait = WebDriverWait(browser, 30)
    saved = []

    browser.get(dashboard + "/")
    assert browser.title == "Alerts · newswatch"
    marks = browser.find_elements(By.CSS_SELECTOR, ".snippet mark")
    assert {m.text for m in marks} >= {"Popular Mobilization Forces", "Antonio Guterres"}
    assert browser.find_elements(By.CSS_SELECTOR, ".channels .state.dead")
    # the other sources of a story: the wire's UN chief story names the agency's copy
    others = {o.text for o in browser.find_elements(By.CSS_SELECTOR, ".others a")}
    assert others == {"agency", "wire"}
    saved.append(screenshot(browser, shots, "1-alerts"))

    Select(browser.find_element(By.ID, "f-watchlist")).select_by_visible_text("guterres")
    browser.find_element(By.ID, "f-apply").click()
    wait.until(ec.url_contains("watchlist=guterres"))
    tags = {t.text for t in browser.find_elements(By.CSS_SELECTOR, ".alert .tag")}
    assert tags == {"guterres"}
    saved.append(screenshot(browser, shots, "2-alerts-guterres"))

    browser.find_element(By.ID, "nav-sources").click()
    wait.until(ec.title_is("Sources · newswatch"))
    main = browser.find_element(By.TAG_NAME, "main").text
    assert "http_404" in main and "switched off by newswatch after errors" in main
    assert "disabled: removed from the config" in main
    assert browser.find_elements(By.CSS_SELECTOR, "#gap-records tr.gap")  # two weeks: gaps
    # one sparkline per source, each drawn by the shipped uPlot on a canvas
    sparks = browser.find_elements(By.CSS_SELECTOR, ".spark")
    assert len(sparks) == 5
    wait.until(lambda d: all(s.get_attribute("data-drawn") == "yes" for s in sparks))
    assert all(s.find_elements(By.TAG_NAME, "canvas") for s in sparks)
    saved.append(screenshot(browser, shots, "3-sources"))

    for nav, title, expect in (
        ("nav-deliveries", "Deliveries", "HTTP 400"),
        ("nav-config", "Config", "Last rejected edit"),
    ):
        browser.find_element(By.ID, nav).click()
        wait.until(ec.title_is(f"{title} · newswatch"))
        assert expect in browser.find_element(By.TAG_NAME, "main").text
        saved.append(screenshot(browser, shots, f"{len(saved) + 1}-{title.lower()}"))

    browser.find_element(By.ID, "nav-watchlists").click()
    wait.until(ec.title_is("Watchlists · newswatch"))
    assert "pmf" in browser.find_element(By.TAG_NAME, "main").text
    saved.append(screenshot(browser, shots, "6-watchlists"))
    browser.find_element(By.ID, "nav-alerts").click()
    wait.until(ec.title_is("Alerts · newswatch"))
    browser.find_element(By.CSS_SELECTOR, 'a.tag[href="/watchlists/pmf"]').click()
    wait.until(ec.title_is("pmf · newswatch"))
    # the chart drawn by the shipped uPlot: a canvas, bars for the days with mentions
    wait.until(lambda d: d.find_element(By.ID, "chart").get_attribute("data-drawn") == "yes")
    assert browser.find_elements(By.CSS_SELECTOR, "#chart canvas")
    assert "name: Popular Mobilization Forces" in browser.find_element(By.ID, "rule").text
    together = browser.find_element(By.ID, "together").text
    assert "guterres" in together and "Antonio Guterres" in together
    saved.append(screenshot(browser, shots, "7-watchlist-pmf"))

    # from a watchlist to the one that matched the same articles
    browser.find_element(By.CSS_SELECTOR, '#together a[href="/watchlists/guterres"]').click()
    wait.until(ec.title_is("guterres · newswatch"))
    assert "Popular Mobilization Forces" in browser.find_element(By.ID, "together").text

    # a watchlist that never matched: reached from the Watchlists page, its near misses
    browser.find_element(By.ID, "nav-watchlists").click()
    wait.until(ec.title_is("Watchlists · newswatch"))
    browser.find_element(By.CSS_SELECTOR, '#quiet a[href="/watchlists/rates"]').click()
    wait.until(ec.title_is("rates · newswatch"))
    near = browser.find_element(By.ID, "near-misses").text
    assert "Markets steady after rate decision" in near
    assert 'rule needs "rate cut": not found' in near
    saved.append(screenshot(browser, shots, "8-watchlist-rates"))

    urls = requested_urls(browser)
    assert any(u.endswith("/static/uPlot.iife.min.js") for u in urls)
    elsewhere = [u for u in urls if urllib.parse.urlsplit(u).hostname != "127.0.0.1"]
    assert elsewhere == [], elsewhere
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors  # no script error, nothing refused by the CSP
    print("screenshots:", *saved, sep="\n  ")
