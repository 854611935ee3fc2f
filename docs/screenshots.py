"""Take the dashboard screenshots in docs/screenshots/ from a fresh demo database.

    .venv/bin/python docs/screenshots.py

Uses Debian's Chromium (/usr/bin/chromium, or $CHROMIUM) through Playwright, like the browser tests.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from pathlib import Path

from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr_cbt import create_app, db  # noqa: E402
from ivr_cbt.demo import run_demo  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/screens.sqlite"
        db.upgrade_database(url)
        app = create_app({"DATABASE_URL": url, "APP_ENV": "development"})
        run_demo(app, lambda _line: None)
        httpd = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{httpd.server_port}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=ARGS
            )
            page = browser.new_context(base_url=base, viewport={"width": 1280, "height": 860}).new_page()

            def shot(name: str) -> None:
                page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
                print(f"docs/screenshots/{name}.png")

            page.goto("/login")
            shot("login")
            page.fill("#email", "tara@demo.invalid")
            page.fill("#password", "demo-password-tara")
            page.click("button[type=submit]")
            page.wait_for_url("**/")
            shot("caseload")
            page.get_by_role("link", name="Eve Demo").click()
            page.wait_for_selector("svg#chart-pain")
            shot("patient")
            for section in ("feedback", "goals", "settings"):
                page.locator(f"section#{section}").screenshot(path=str(OUT / f"patient-{section}.png"))
                print(f"docs/screenshots/patient-{section}.png")
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Feedback").click()
            page.wait_for_selector("article.message-card")
            page.locator("article.message-card details.segments").first.click()  # open one segment list
            shot("feedback-queue")
            page.goto("/alerts")
            shot("alerts")
            page.goto("/practice/")
            page.select_option(
                "#practice-patient", label=page.locator("#practice-patient option", has_text="Raj Demo").inner_text()
            )
            page.click("#call-button")
            page.wait_for_selector("#transcript li")
            for keys, expect in (("9753", "average pain"), ("4#", "sleep")):
                for key in keys:
                    page.click(f".key[data-key='{key}']")
                page.wait_for_function("e => document.getElementById('transcript').innerText.includes(e)", arg=expect)
            shot("practice-phone")
            page.click("text=Sign out")
            page.fill("#email", "ada@demo.invalid")
            page.fill("#password", "demo-password-ada")
            page.click("button[type=submit]")
            page.goto("/admin/assignments")
            shot("admin-assignments")
            browser.close()
        httpd.shutdown()


if __name__ == "__main__":
    main()
