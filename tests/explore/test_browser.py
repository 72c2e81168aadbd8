"""``kelm explore`` in a real browser: the system's headless Chromium, driven by Selenium
through the system's chromedriver (nothing is downloaded). A question is typed and explored;
the highlighted spans, the graph canvas vis-network draws and the score table must appear; the
graph browser goes from a node to a clicked neighbour. A screenshot is saved in the test's
temporary folder (its path is printed).

Skipped, saying why, when selenium, chromium or chromedriver is missing (``make test`` installs
the Debian packages ``chromium`` and ``chromium-driver`` when it can).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("gradio", reason="kelm explore needs gradio (the explore extra)")
pytest.importorskip("pyvis", reason="kelm explore needs pyvis (the explore extra)")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from kelm.explore import Explorer  # noqa: E402
from kelm.explore.app import launch  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver")
WAIT = 60  # seconds for a page update on a busy 2-core machine


def _which(names: tuple[str, ...]) -> str | None:
    return next((found for name in names if (found := shutil.which(name))), None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    binary, driver = _which(BROWSERS), _which(DRIVERS)
    if binary is None:
        pytest.skip("no Chromium on PATH (apt-get install chromium chromium-driver)")
    if driver is None:
        pytest.skip("no chromedriver on PATH (apt-get install chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1400,2400")
    chrome = webdriver.Chrome(service=webdriver.ChromeService(driver), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture(scope="module")
def page(tiny: dict[str, Path]) -> Iterator[str]:
    explorer = Explorer(tiny["graph"], runs=[tiny["qagnn"], tiny["kagnet"]], qa_file=tiny["qa"])
    app = launch(explorer, port=None, block=False)
    try:
        yield app.local_url
    finally:
        app.close()


def _text(chrome: Any, css: str) -> str:
    found = chrome.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else ""


def test_a_question_in_the_browser(browser: Any, page: str, tmp_path: Path) -> None:
    wait = WebDriverWait(browser, WAIT)
    browser.get(page)
    question = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#kelm-question textarea"))
    question.send_keys("where does a dog live")
    browser.find_element(By.CSS_SELECTOR, "#kelm-choices textarea").send_keys("house\nsky\nocean")
    browser.find_element(By.CSS_SELECTOR, "#kelm-go").click()

    # the linked spans, highlighted with their nodes
    wait.until(lambda b: "dog" in _text(b, "#kelm-linked .highlighted"))
    spans = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#kelm-linked .highlighted")]
    assert any(s.startswith("dog") for s in spans) and any(s.startswith("house") for s in spans)
    # the graph: a canvas vis-network drew into
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#kelm-graph .kelm-graph[data-drawn]"))
    assert browser.find_elements(By.CSS_SELECTOR, "#kelm-graph canvas")
    # the scores of both runs, and the status line naming their picks
    wait.until(lambda b: "kagnet (run-kagnet)" in _text(b, "#kelm-scores"))
    assert "qagnn (run-qagnn)" in _text(browser, "#kelm-scores")
    assert "picks" in _text(browser, "#kelm-status")
    assert "Traceback" not in browser.page_source

    shot = tmp_path / "kelm-explore.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {shot}")


def test_a_bad_question_shows_a_message(browser: Any, page: str) -> None:
    wait = WebDriverWait(browser, WAIT)
    browser.get(page)
    wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#kelm-question textarea"))
    browser.find_element(By.CSS_SELECTOR, "#kelm-go").click()
    wait.until(lambda b: "type a question" in _text(b, "#kelm-status"))
    assert "Traceback" not in browser.page_source


def test_the_graph_browser_clicks_through(browser: Any, page: str) -> None:
    wait = WebDriverWait(browser, WAIT)
    browser.get(page)
    tab = wait.until(
        lambda b: next(
            (
                e
                for e in b.find_elements(By.CSS_SELECTOR, "button[role='tab']")
                if e.text == "Graph"
            ),
            None,
        )
    )
    tab.click()
    search = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#kelm-search textarea"))
    search.send_keys("dog", Keys.ENTER)
    wait.until(lambda b: "dog: 3 neighbours" in _text(b, "#kelm-graph-status"))
    cell = wait.until(
        lambda b: next(
            (
                e
                for e in b.find_elements(By.CSS_SELECTOR, "#kelm-neighbours [role='gridcell']")
                if e.text == "house"
            ),
            None,
        )
    )
    cell.click()
    wait.until(lambda b: "house: " in _text(b, "#kelm-graph-status"))
    assert "Traceback" not in browser.page_source
