"""The page in a real browser (headless chromium through Selenium), as a student uses it.

* The course notes: the notes' printed numbers typed in (docs/examples/course-notes-claims.yaml,
  numbers as printed), one check, and exactly one wrong entry -- dL/dh[0] -- with the two paths the
  notes drop named (docs/course-notes-errata.md: through U_z and through the reset product), beside
  the worked step typeset by the KaTeX the package serves.
* A generated exercise filled with correct values rounded to 4 decimals -- computed here by the plain
  NumPy GRU of tests/helpers/numpy_gru.py and central differences of its loss, independently of
  grukit -- and no entry wrong.
* A hostile problem file uploaded: the one-line error in the page.
* The keyboard alone: tab to a field, type, Enter checks.

Skipped cleanly without selenium, chromium or chromedriver (``.ci/run`` installs them).
"""
from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest
import yaml
from helpers import EXAMPLES
from helpers.browser import chromium, live_server, missing
from helpers.numpy_gru import gru_reference

if missing():
    pytest.skip(missing(), allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as ready  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from grukit.derive.audit.claims import load_claims  # noqa: E402
from grukit.derive.cell.presets import PRESETS  # noqa: E402


@pytest.fixture(scope="module")
def site():
    with live_server() as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


def wait_for(driver, css: str, seconds: float = 60):
    return WebDriverWait(driver, seconds).until(ready.presence_of_element_located((By.CSS_SELECTOR, css)))


def fill(driver, name: str, texts: list[str]) -> None:
    """Type ``texts`` into the fields of entry ``name``, in their order (row-major)."""
    entry = driver.find_element(By.CSS_SELECTOR, f'.entry[data-name="{name}"]')
    fields = entry.find_elements(By.CSS_SELECTOR, ".cells input")
    assert len(fields) == len(texts), name
    for field, text in zip(fields, texts):
        field.clear()
        field.send_keys(text)


def verdicts(driver) -> dict[str, str]:
    return {e.get_attribute("data-name"): e.get_attribute("data-verdict")
            for e in driver.find_elements(By.CSS_SELECTOR, ".entry[data-verdict]")}


def check(driver) -> None:
    driver.find_element(By.ID, "check").click()
    wait_for(driver, "#summary, #error")


def test_the_course_notes_numbers_show_exactly_one_wrong_entry_with_the_dropped_paths(site, browser):
    browser.get(site + "/")
    browser.find_element(By.ID, "open-example").click()
    wait_for(browser, "#calculation")
    typed = {}
    for claim in load_claims(EXAMPLES / "course-notes-claims.yaml").claims:  # the notes' numbers, as printed
        typed[claim.node] = [p.text for p in claim.numbers.ravel()]
    for name, texts in typed.items():
        fill(browser, name, texts)
    check(browser)
    found = verdicts(browser)
    assert set(found) == set(typed)
    assert [name for name, v in found.items() if v == "wrong"] == ["dL/dh[0]"]
    wrong = browser.find_element(By.CSS_SELECTOR, '.entry[data-name="dL/dh[0]"]')
    assert "wrong" in wrong.find_element(By.CSS_SELECTOR, ".badge.verdict").text
    diagnosis = " ".join(d.text for d in wrong.find_elements(By.CSS_SELECTOR, ".diagnosis-line"))
    assert "dropped paths" in diagnosis
    assert "through U_z (update gate)" in diagnosis and "through the reset product r ⊙ h" in diagnosis
    worked = wrong.find_element(By.CSS_SELECTOR, ".worked")
    assert worked.find_elements(By.CSS_SELECTOR, ".katex-display"), "the worked step is typeset by KaTeX"
    assert "-0.0968" in worked.text.replace("−", "-")


def _rounded(values, decimals: int = 4) -> list[str]:
    return [str(Decimal(repr(float(v))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))
            for v in np.ravel(values)]


def _reference(problem: dict):
    """Every number filled in, by the independent NumPy GRU: forward values, the softmax cross-entropy
    of the output layer at the last step, and its gradients by central differences."""
    conv = PRESETS[problem["convention"]]
    keys = {conv.key(p): (p.role, p.gate) for p in conv.parameters()}
    params = {keys[k]: np.asarray(v, float) for k, v in problem["weights"].items()}
    inputs, h0 = np.asarray(problem["inputs"], float), np.asarray(problem["h0"], float)
    W_o, b_o = np.asarray(problem["loss"]["W_o"], float), np.asarray(problem["loss"]["b_o"], float)
    target = problem["loss"]["target"]

    def loss(params, inputs, h0):
        h = gru_reference(conv.axes(), params, inputs, h0)[-1]["h"]
        o = W_o @ h + b_o
        return math.log(np.exp(o).sum()) - o[target]

    def gradient(value, change):
        out = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            step = np.zeros_like(value)
            step[index] = 1e-6
            out[index] = (change(value + step) - change(value - step)) / 2e-6
        return out

    steps = gru_reference(conv.axes(), params, inputs, h0)
    T = len(steps)
    o = W_o @ steps[-1]["h"] + b_o
    p = np.exp(o) / np.exp(o).sum()
    numbers = {f"o[{T}]": o, f"p[{T}]": p, "loss": [loss(params, inputs, h0)],
               f"dL/do[{T}]": p - np.eye(len(p))[target],
               "dL/dh[0]": gradient(h0, lambda v: loss(params, inputs, v))}
    for t, s in enumerate(steps, start=1):
        numbers |= {f"{q}[{t}]": s[q] for q in ("z", "r", "candidate", "h")}
        numbers[f"dL/dx[{t}]"] = gradient(inputs[t - 1], lambda v, t=t: loss(params, np.vstack(
            [inputs[:t - 1], v, inputs[t:]]), h0))
    for key, rg in keys.items():
        numbers[f"dL/d{key}"] = gradient(params[rg], lambda v, rg=rg: loss(params | {rg: v}, inputs, h0))
    return numbers


def test_a_generated_exercise_filled_with_correct_rounded_values_has_no_wrong_entry(site, browser):
    browser.get(site + "/")
    Select(browser.find_element(By.ID, "g-convention")).select_by_value("pytorch")
    for field, value in (("g-inputs", "2"), ("g-hidden", "3"), ("g-steps", "2"), ("g-seed", "7")):
        element = browser.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    browser.find_element(By.ID, "generate").click()
    wait_for(browser, "#calculation")
    problem = yaml.safe_load(browser.find_element(By.NAME, "problem").get_attribute("value"))
    assert problem["convention"] == "pytorch" and len(problem["inputs"]) == 2
    numbers = _reference(problem)
    for name, values in numbers.items():
        fill(browser, name, _rounded(values))
    check(browser)
    found = verdicts(browser)
    assert set(found) == set(numbers)
    assert "wrong" not in found.values() and "propagated" not in found.values(), found


def test_a_hostile_problem_file_shows_one_line_error(site, browser, tmp_path):
    hostile = tmp_path / "laughs.yaml"
    hostile.write_text('a: &a ["lol", "lol"]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n')
    browser.get(site + "/")
    browser.find_element(By.ID, "problem-file").send_keys(str(hostile))
    browser.find_element(By.ID, "upload").click()
    error = wait_for(browser, "#error")
    assert error.get_attribute("role") == "alert"
    assert error.text.startswith("laughs.yaml: ") and "anchor" in error.text and "\n" not in error.text
    assert "Traceback" not in browser.page_source


def test_the_keyboard_alone_fills_and_checks(site, browser):
    browser.get(site + "/example")
    wait_for(browser, "#calculation")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    for _ in range(12):  # past the skip link and the header's links, the Check button, to the first field
        active = browser.switch_to.active_element
        if active.get_attribute("id") == "e0_0":
            break
        active.send_keys(Keys.TAB)
    active = browser.switch_to.active_element
    assert active.get_attribute("id") == "e0_0"
    label = browser.find_element(By.CSS_SELECTOR, 'label[for="e0_0"]')
    assert label.get_attribute("textContent") == active.get_attribute("data-element")
    active.send_keys("0.26", Keys.ENTER)  # Enter submits the form with its first button: Check
    wait_for(browser, "#summary")
    assert verdicts(browser) == {"W_z x[1]": "ok"}
