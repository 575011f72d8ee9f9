"""The finance email opened in a real browser (Debian's chromium driven by Playwright).

A real day: HL7 and 835s ingested, the bank statement read (cash of the unknown payer's and the
unbalanced 835 goes to suspense), everything posted to the sandbox ERP, billing read back, and
the nightly close run against the ERP's own ledger. The email of that day must show, as the
browser renders it, the held charge dollars and the suspense dollars by reason (in their own
table and as lines of the control totals) and the AR roll-forward per facility with its payers;
the next day, when nothing arrived, the email must warn about the missing feeds and open the
roll-forward where the day before closed. Screenshots go to the test's tmp dir.

Skips with the reason when chromium or Playwright is missing; no browser is ever downloaded.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import scenario
from sqlalchemy.engine import Engine

from carefabric.interfaces import bank_statement, erp_posting
from carefabric.interfaces.claims_reconciliation import build_report, reconcile_day, refresh_billing_charges
from carefabric.report import format_money
from sandbox.opening_balances import EXTRA_ACCOUNTS
from sandbox.runner import SandboxServers

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DAY = scenario.BUSINESS_DATE

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed (apt-get install -y chromium)"),
    pytest.mark.timeout(300),
]


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two closes against the real sandbox: the scenario day, and the empty day after it (SQLite
    store: the rendering is under test here; both stores run the close in test_ledger_close)."""
    root = tmp_path_factory.mktemp("finance_browser")
    day_dir = root / "day"
    day_dir.mkdir()
    scenario.generate_day(day_dir, encounters=12)
    with pytest.MonkeyPatch.context() as mp, SandboxServers(root / "sandbox") as peers:
        mp.setenv("CAREFABRIC_DATA_DIR", str(root / "data"))
        scenario.reset_peers(peers, day_dir, extra_accounts=list(EXTRA_ACCOUNTS))
        with scenario.migrated_store(f"sqlite:///{root / 'store.db'}") as engine:
            scenario.seed_store(engine, day_dir)
            scenario.ingest_day(engine, day_dir, peers.billing_url)
            (statement,) = sorted((day_dir / "bank").glob("*.bai"))
            bank_statement.process_statement(statement, engine, business_date=DAY)
            erp = scenario.erp_client(peers.erp_url)
            erp_posting.post_day(engine, erp, DAY)
            refresh_billing_charges(engine, scenario.billing_client(peers.billing_url), DAY)
            yield {"today": _close(engine, erp, DAY), "tomorrow": _close(engine, erp, DAY + dt.timedelta(days=1))}


def _close(engine: Engine, erp: Any, day: dt.date) -> dict[str, Any]:
    _, items, totals = reconcile_day(engine, erp, day)
    return {"totals": totals, "report": build_report(engine, day, items, totals)}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -r requirements.txt)")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def open_email(browser: Any, html: str, path: Path) -> Any:
    """The email's HTML as a file, opened in a page; a full-page screenshot beside it."""
    path.write_text(html, encoding="utf-8")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(path.as_uri())
    page.screenshot(path=str(path.with_suffix(".png")), full_page=True)
    return page


def test_the_days_email_shows_held_and_suspense_dollars_and_the_rollforward(closed: dict[str, Any], browser: Any,
                                                                            tmp_path: Path) -> None:
    held = closed["today"]["totals"]["money_held"]
    assert held["charges_cents"] > 0 and held["suspense_cents"] > 0  # the scenario day has both
    page = open_email(browser, closed["today"]["report"].html, tmp_path / "finance_today.html")
    assert page.locator("#money-held").is_visible()
    table = page.locator("#money-held-table").inner_text()
    for reason, value in held["charges"].items():
        assert reason in table and format_money(value["cents"]) in table
    for status, value in held["suspense"].items():
        assert status in table and format_money(value["cents"]) in table
    assert "suspense" in table and format_money(held["charges_cents"] + held["remittances_cents"]
                                                + held["suspense_cents"]) in table
    # the same dollars are lines of the control totals
    lines = page.locator("#control-totals-table tr.held-line")
    assert lines.count() == len(held["charges"]) + len(held["remittances"]) + len(held["suspense"])
    assert "Not posted: 835 cash in suspense" in page.locator("#control-totals-table").inner_text()

    table_rows = closed["today"]["totals"]["ar_rollforward"]
    facilities = page.locator("#ar-rollforward-table tr.rollforward-facility")
    assert facilities.count() == len(table_rows) > 0
    first = facilities.first.inner_text()
    assert table_rows[0]["facility"] in first and format_money(table_rows[0]["closing_cents"]) in first
    payers = {p["payer_id"] for r in table_rows for p in r["payers"]} - {"(charges)"}
    assert payers and all(p in page.locator("#ar-rollforward-table").inner_text() for p in payers)
    assert page.locator(".missing-feed").count() == 0  # every feed of the day arrived
    page.close()


def test_the_empty_day_after_warns_about_missing_feeds(closed: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    page = open_email(browser, closed["tomorrow"]["report"].html, tmp_path / "finance_tomorrow.html")
    warnings = page.locator(".missing-feed")
    texts = [warnings.nth(i).inner_text() for i in range(warnings.count())]
    assert any("no EHR charges arrived" in t for t in texts) and any("no bank statement" in t for t in texts)
    assert page.locator("#empty-day").is_visible() and "All matched" not in page.content()
    # the roll-forward opens where the day before closed
    closing = {r["facility"]: r["closing_cents"] for r in closed["today"]["totals"]["ar_rollforward"]}
    rows = page.locator("#ar-rollforward-table tr.rollforward-facility")
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td")
        facility = cells.nth(0).inner_text().strip()
        assert cells.nth(1).inner_text().strip() == format_money(closing[facility])
    page.close()
