"""A real browser on the page of ``grukit serve``: the app served from a thread, Debian's chromium driven
headless through its chromedriver by Selenium. :func:`missing` says what is not installed (the
browser tests skip then); tests/web/take_screenshots.py uses the same two pieces.
"""
from __future__ import annotations

import importlib.util
import shutil
import tempfile
import threading
from contextlib import contextmanager

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage")


def missing() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    for module in ("flask", "selenium"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[test]')"
    for program in ("chromium", "chromedriver"):
        if shutil.which(program) is None:
            return f"{program} is not installed (apt-get install chromium chromium-driver)"
    return None


@contextmanager
def live_server():
    """The page served on 127.0.0.1 at a free port, from a thread; yields its base URL."""
    from werkzeug.serving import make_server

    from grukit.codegen.web.app import create_app

    server = make_server("127.0.0.1", 0, create_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


@contextmanager
def chromium(width: int = 1280, height: int = 800):
    """Headless chromium (a fresh profile in a temporary folder) through Debian's chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="grukit-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={width},{height}")
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        try:
            driver.set_page_load_timeout(60)
            yield driver
        finally:
            driver.quit()
