"""The console in a real browser: Debian's chromium driven by Playwright against a real Airflow
api-server. Logs in through Airflow's login page, triages the queue, edits a crosswalk, and sees a
cross-origin form refused. Screenshots go to ``data/screenshots/``.

Skips with the reason when chromium (``apt-get install chromium``) or Playwright is missing; no
browser is ever downloaded.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from airflow_api import PROJECT, Server, console_day_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = PROJECT / "data" / "screenshots"

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed (apt-get install -y chromium)"),
    pytest.mark.timeout(300),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, Any]]]:
    pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -r requirements.txt)")
    with console_day_server(tmp_path_factory.mktemp("console_browser")) as served:
        yield served


@pytest.fixture
def evil_site(server: tuple[Server, dict[str, Any]]) -> Iterator[str]:
    """Another origin serving a page that auto-submits a form to the console (a CSRF attempt)."""
    target = f"{server[0].url}/carefabric/crosswalks/cdm"
    html = (f'<form id="f" method="post" action="{target}"><input name="cdm_code" value="EVIL1">'
            '<input name="revenue_account" value="4010"></form><script>f.submit()</script>').encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"  # same site, another origin: the cookie goes along
    httpd.shutdown()


def test_login_triage_crosswalk_edit_and_csrf_refusal(server: tuple[Server, dict[str, Any]], evil_site: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    srv, day = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            # Not logged in: the console answers 401 with a way to log in.
            r = page.goto(f"{srv.url}/carefabric/exceptions")
            assert r is not None and r.status == 401
            page.screenshot(path=str(SHOTS / "01_not_logged_in.png"))

            # Airflow's own login page.
            page.goto(f"{srv.url}/auth/login?next={srv.url}/carefabric/exceptions")
            page.get_by_label("Username").fill("operator")
            page.get_by_label("Password").fill(srv.passwords["operator"])
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30000)
            page.screenshot(path=str(SHOTS / "02_after_login.png"))

            # The queue: sorted by amount at stake, filtered to open held charges.
            page.goto(f"{srv.url}/carefabric/exceptions?status=open&sort=-amount")
            expect(page.locator("header .who")).to_contain_text("operator")
            expect(page.get_by_role("columnheader", name="At stake ↓")).to_be_visible()
            page.screenshot(path=str(SHOTS / "03_queue_by_amount.png"), full_page=True)

            # Bulk: select the payer-remittance exceptions, resolve with one note.
            page.goto(f"{srv.url}/carefabric/exceptions?status=open&interface=payer_remittance")
            boxes = page.locator("input[name=ids]")
            assert boxes.count() == 3
            for i in range(boxes.count()):
                boxes.nth(i).check()
            page.locator("input[name=note]").first.fill("payer resent corrected files")
            page.get_by_role("button", name="Resolve").click()
            expect(page.locator(".flash")).to_contain_text("Resolve: 3 done")
            page.screenshot(path=str(SHOTS / "04_bulk_resolved.png"))

            # A crosswalk edit: the unknown CDM code mapped; the page offers to replay its line.
            code = next(f for f in day["truth"]["faults"] if f["fault"] == "unknown_cdm")["reference"]
            page.goto(f"{srv.url}/carefabric/crosswalks?table=cdm")
            form = page.locator("form#edit")
            form.locator("input[name=cdm_code]").fill(code)
            form.locator("input[name=revenue_account]").fill("4010")
            form.locator("input[name=description]").fill("HBA1C")
            form.get_by_role("button").click()
            expect(page.locator(".flash")).to_contain_text(f"cdm {code} saved (version 1)")
            expect(page.locator("#offer")).to_contain_text("would map now")
            expect(page.locator("table.diff ins").first).to_have_text(code)
            page.screenshot(path=str(SHOTS / "05_crosswalk_saved_offer_replay.png"), full_page=True)

            # Another origin's auto-submitting form: refused, nothing saved.
            page.goto(evil_site)
            page.wait_for_load_state()
            expect(page.locator("body")).to_contain_text("cross-origin request refused")
            page.screenshot(path=str(SHOTS / "06_csrf_refused.png"))
            page.goto(f"{srv.url}/carefabric/audit")
            expect(page.locator("body")).not_to_contain_text("EVIL1")
            expect(page.locator("tbody tr").first).to_contain_text("operator")
            page.screenshot(path=str(SHOTS / "07_audit.png"), full_page=True)
        finally:
            browser.close()
