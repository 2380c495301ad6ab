"""Screenshots of every page of ``grukit serve`` at 1280x800 and at phone width (390x844), for docs/web.md.

Run from the repository: ``PYTHONPATH=tests python tests/web/take_screenshots.py docs/web`` (needs the test extra and
chromium; see tests/helpers/browser.py). The course notes' printed numbers are typed in as in
tests/web/test_browser.py, so the checked page shows the notes' one wrong entry.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from helpers import EXAMPLES
from helpers.browser import chromium, live_server, missing
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from grukit.derive.audit.claims import load_claims

SIZES = {"desktop": (1280, 800), "phone": (390, 844)}


def viewport(driver, width: int, height: int) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


def wait_for(driver, css: str):
    return WebDriverWait(driver, 60).until(ready.presence_of_element_located((By.CSS_SELECTOR, css)))


def checked_course_notes(driver, url: str) -> None:
    driver.get(url + "/example")
    wait_for(driver, "#calculation")
    for claim in load_claims(EXAMPLES / "course-notes-claims.yaml").claims:
        entry = driver.find_element(By.CSS_SELECTOR, f'.entry[data-name="{claim.node}"]')
        for field, printed in zip(entry.find_elements(By.CSS_SELECTOR, ".cells input"), claim.numbers.ravel()):
            field.clear()
            field.send_keys(printed.text)
    driver.find_element(By.ID, "check").click()
    wait_for(driver, "#summary")


def scroll_to(driver, css: str) -> None:
    driver.execute_script("document.querySelector(arguments[0]).scrollIntoView({block: 'start'});"
                          "window.scrollBy(0, -70);", css)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with live_server() as url, chromium() as driver, tempfile.TemporaryDirectory() as tmp:
        hostile = Path(tmp) / "laughs.yaml"
        hostile.write_text('a: &a ["lol", "lol"]\nb: [*a, *a]\n')
        for size, (width, height) in SIZES.items():
            viewport(driver, width, height)

            def shot(name: str) -> None:
                driver.save_screenshot(str(out / f"{name}-{size}.png"))

            driver.get(url + "/")
            wait_for(driver, "#open-example")
            shot("choose")
            driver.get(url + "/example")
            wait_for(driver, "#calculation")
            shot("exercise")
            checked_course_notes(driver, url)
            shot("checked")
            scroll_to(driver, '.entry[data-verdict="wrong"]')
            shot("wrong-entry")
            driver.get(url + "/")
            driver.find_element(By.ID, "problem-file").send_keys(str(hostile))
            driver.find_element(By.ID, "upload").click()
            wait_for(driver, "#error")
            shot("error")
            driver.get(url + "/conventions?a=colah&b=cho2014")
            wait_for(driver, "#answer")
            shot("conventions")


if __name__ == "__main__":
    reason = missing()
    if reason:
        sys.exit(f"take_screenshots: {reason}")
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/web"))
