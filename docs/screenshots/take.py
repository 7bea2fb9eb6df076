"""Screenshot every page of a running demo site into docs/screenshots/.

    .venv/bin/python docs/screenshots/take.py http://127.0.0.1:8011 ops ops
"""

import shutil
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

HERE = Path(__file__).resolve().parent
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]


def main(base: str, username: str, password: str, scheme: str = "light") -> None:
    suffix = "" if scheme == "light" else "-dark"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        page = browser.new_page(base_url=base, viewport={"width": 1440, "height": 900}, color_scheme=scheme)
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("#overview-live")).to_be_visible()
        shots = {"overview": "/", "jobs": "/jobs/", "failures": "/failures/", "workers": "/workers/",
                 "queues": "/queues/", "audit": "/audit/"}
        for name, url in shots.items():
            page.goto(url)
            page.screenshot(path=HERE / f"{name}{suffix}.png", full_page=True)
        page.goto("/jobs/?state=running")
        page.locator("#job-table tbody a").first.click()
        expect(page.locator("#job-live")).to_be_visible()
        page.screenshot(path=HERE / f"job_detail{suffix}.png", full_page=True)
        page.goto("/jobs/?state=failed&function=sync.pull_orders")
        page.locator("#job-table tbody td.mono a").first.click()
        expect(page.locator("#job-live")).to_contain_text("HTTPError")
        page.screenshot(path=HERE / f"job_detail_failed{suffix}.png", full_page=True)
        # The phone: the person paged at 3 a.m. (390 px wide, nothing scrolls sideways).
        phone = browser.new_page(base_url=base, viewport={"width": 390, "height": 844}, color_scheme=scheme,
                                 device_scale_factor=2, is_mobile=True, has_touch=True)
        phone.context.add_cookies(page.context.cookies())
        for name, url in {"overview": "/", "jobs": "/jobs/?state=failed"}.items():
            phone.goto(url)
            phone.screenshot(path=HERE / f"{name}-phone{suffix}.png")
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
