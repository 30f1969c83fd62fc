"""Headless Chromium for the playground's checks and screenshots: Debian's `chromium` driven by
the `playwright` Python package (no browser download), with a fresh profile each run."""

import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager

CHROMIUM = os.environ.get("RBEE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def missing():
    """What is missing to drive a browser, each with how to install it."""
    problems = []
    if not os.access(CHROMIUM, os.X_OK):
        problems.append(
            f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium` "
            "(or set RBEE_CHROMIUM to a Chromium binary)"
        )
    try:
        import playwright  # noqa: F401
    except ImportError:
        problems.append(
            "the playwright Python package is missing: `python3 -m pip install playwright` "
            "(it drives the system Chromium; no `playwright install` needed)"
        )
    return problems


@contextmanager
def chromium(**options):
    """A browser context on a fresh profile; exits with status 3 naming what is missing."""
    problems = missing()
    if problems:
        print("cannot drive a browser:\n  " + "\n  ".join(problems), file=sys.stderr)
        sys.exit(3)
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="rbee-chromium-")
    try:
        with sync_playwright() as driver:
            context = driver.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=ARGS, **options
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def open_page(context, url):
    """A page at `url` whose script errors and CSP violations are collected in `page.faults`."""
    page = context.new_page()
    page.faults = []
    page.on("pageerror", lambda error: page.faults.append(f"script error: {error}"))
    page.on(
        "console",
        lambda message: "Content Security Policy" in message.text
        and page.faults.append(f"CSP: {message.text}"),
    )
    page.goto(url)
    return page


def poll(what, condition, timeout=30.0):
    """Calls `condition` until it returns something truthy, and returns that; fails naming
    `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        # Pacing between polls; the loop is bounded by `deadline`.
        time.sleep(0.02)
