"""The nightly GX Checkpoint and its Data Docs, on a generated day run through the real interfaces.

One module fixture: the console tests' day (sandbox generator, ingest and remittance into a
SQLite store, a reconciliation run), two PHI-shaped values written into rows that then fail
their expectations, and the close's step (``quality.nightly.build_day_docs``) run on it. The
tests read the site from disk, through the console (behind its login) and from the email.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from test_console import BUSINESS_DATE, build_day, make_client

from carefabric.quality import docs_site
from carefabric.store.db import get_engine, session_scope
from carefabric.store.models import Charge, Encounter, ReconciliationRun

# Shaped like what a shifted HL7 field puts in a code column: a name and an MRN.
PHI_NAME = "QXDOE^JANE^Q"
PHI_MRN = "MRN86753091"


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from carefabric.quality.nightly import build_day_docs

    root = tmp_path_factory.mktemp("data_docs_day")
    with pytest.MonkeyPatch.context() as mp:
        day = build_day(root, mp)
        mp.setenv("CAREFABRIC_DATA_DIR", str(root / "data"))
        mp.setenv("CAREFABRIC_DATA_DOCS_URL", "https://airflow.hospital.example/carefabric/data-docs")
        engine = get_engine(day["url"])
        with session_scope(engine) as s:
            first = s.scalars(select(Charge).where(Charge.business_date == BUSINESS_DATE).order_by(Charge.id)).first()
            assert first is not None
            s.execute(update(Charge).where(Charge.id == first.id).values(cdm_code=PHI_NAME))
            s.execute(update(Encounter).where(Encounter.encounter_id == first.encounter_id).values(event_type=PHI_MRN))
        docs = build_day_docs(engine, BUSINESS_DATE)
        yield {**day, "engine": engine, "docs": docs, "site": docs_site.site_dir(), "gx": docs_site.gx_root()}
        engine.dispose()


def test_the_site_lists_every_suite_and_the_night(night: dict[str, Any]) -> None:
    index = (night["site"] / "index.html").read_text()
    for dataset in ("charges", "encounters", "remit_claims", "remittances"):
        assert f"carefabric.{dataset}" in index
        assert f"validations/carefabric/{dataset}/nightly-{BUSINESS_DATE}" in index
    datasets = {d.dataset: d for d in night["docs"].datasets}
    assert datasets["charges"].rows > 0 and datasets["remittances"].rows > 0
    for d in datasets.values():
        assert (night["site"] / d.page).is_file(), d.page


def test_the_failing_expectations_show_as_failed(night: dict[str, Any]) -> None:
    docs = night["docs"]
    datasets = {d.dataset: d for d in docs.datasets}
    assert not docs.success
    assert datasets["charges"].failures == ["expect_column_values_to_match_regex(cdm_code)"]
    assert datasets["encounters"].failures == ["expect_column_values_to_be_in_set(event_type)"]
    assert datasets["remittances"].success and datasets["remit_claims"].success
    page = (night["site"] / datasets["charges"].page).read_text()
    (section,) = [x for x in re.split(r'<div id="section-\d+" class="ge-section', page)
                  if re.search(r'<h5 class="m-0" >\s*cdm_code\s*</h5>', x)]
    rows = {re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", r)).strip(): r for r in re.findall(r"<tr.*?</tr>", section, flags=re.S)}
    (regex,) = [r for text, r in rows.items() if "must match this regular expression" in text]
    assert "fa-times" in regex and "fa-check" not in regex  # the red cross: failed
    assert "1 unexpected values found" in re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", regex))
    (not_null,) = [r for text, r in rows.items() if "must never be null" in text]
    assert "fa-check" in not_null
    day = (night["site"] / docs_site.day_page(BUSINESS_DATE)).read_text()
    assert re.search(r'<tr class="failed"><td><a href="\.\./validations/carefabric/charges/', day)
    assert re.search(r'<tr class="ok"><td><a href="\.\./validations/carefabric/remittances/', day)


def test_no_phi_value_anywhere_in_the_site_or_the_stored_results(night: dict[str, Any]) -> None:
    files = [p for p in night["gx"].rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" and "uncommitted/validations" in p.as_posix() for p in files)
    leaks = {
        str(p.relative_to(night["gx"])): [v for v in (PHI_NAME, "QXDOE", PHI_MRN, "86753091") if v in text]
        for p in files
        for text in [p.read_bytes().decode("utf-8", "replace")]
    }
    assert not {k: v for k, v in leaks.items() if v}
    assert not list((night["gx"] / "batches").rglob("*.csv")), "the staged day must be removed after the run"


def test_the_context_is_reused_not_rebuilt(night: dict[str, Any]) -> None:
    from carefabric.quality.checkpoint import CHECKPOINT, nightly_context

    suite_file = night["gx"] / "expectations" / "carefabric" / "charges.json"
    before = suite_file.stat().st_mtime_ns
    context = nightly_context()
    assert suite_file.stat().st_mtime_ns == before  # specs unchanged: the suite is not rewritten
    assert [c.name for c in context.checkpoints.all()] == [CHECKPOINT]
    assert len(context.checkpoints.get(CHECKPOINT).validation_definitions) == 4


def test_the_console_serves_the_site_behind_its_login(night: dict[str, Any]) -> None:
    client, engine = make_client(night)
    try:
        assert client.get("/data-docs/index.html", headers={"Authorization": ""}).status_code == 401
        assert client.get("/data-docs/index.html", headers={"Authorization": "Bearer mallory"}).status_code == 401
        index = client.get("/data-docs/index.html")
        assert index.status_code == 200 and "carefabric.charges" in index.text
        csp = index.headers["content-security-policy"]
        assert "sandbox" in csp and "default-src 'self'" in csp
        root = client.get("/data-docs", follow_redirects=False)
        assert root.status_code == 307 and root.headers["location"].endswith("/data-docs/index.html")
        day = client.get(f"/data-docs/{docs_site.day_page(BUSINESS_DATE)}")
        assert day.status_code == 200 and "Data quality for" in day.text
        # out of the site: GX's own config one level up, the store two up; encoded or not
        for probe in ("..%2Fgreat_expectations.yml", "%2e%2e/%2e%2e/store.db", "days/..%2F..%2F..%2Fstore.db",
                      "%2Fetc%2Fpasswd", "validations/%00.html", "no-such-page.html"):
            response = client.get(f"/data-docs/{probe}")
            assert response.status_code == 404, probe
            assert "config_version" not in response.text and "SQLite" not in response.text
        assert client.post("/data-docs/index.html").status_code in (403, 405)
        page = client.get("/reconciliation", params={"day": BUSINESS_DATE.isoformat()})
        assert f'href="/data-docs/days/{BUSINESS_DATE}.html"' in page.text
    finally:
        engine.dispose()


def test_the_email_links_the_nights_data_docs(night: dict[str, Any]) -> None:
    from carefabric.interfaces.reconciliation_email import report_for_run

    with session_scope(night["engine"]) as s:
        run_id = s.scalar(select(ReconciliationRun.id).where(ReconciliationRun.business_date == BUSINESS_DATE))
    report = report_for_run(night["engine"], run_id, BUSINESS_DATE)
    url = f"https://airflow.hospital.example/carefabric/data-docs/days/{BUSINESS_DATE}.html"
    assert f'href="{url}"' in report.html
    assert url in report.text


def test_the_default_link_is_the_console_route(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAREFABRIC_DATA_DOCS_URL", raising=False)
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    day = dt.date(2026, 11, 23)
    assert docs_site.data_docs_url(day) == "http://localhost:8080/carefabric/data-docs/days/2026-11-23.html"
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example/ops/")
    assert docs_site.data_docs_url(day) == "https://airflow.example/ops/carefabric/data-docs/days/2026-11-23.html"
    monkeypatch.setenv("CAREFABRIC_DATA_DOCS_URL", "https://docs.example/gx")
    assert docs_site.data_docs_url(day) == "https://docs.example/gx/days/2026-11-23.html"


def test_resolve_in_site_refuses_a_symlink_out(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "days").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("outside")
    (site / "days" / "link.html").symlink_to(tmp_path / "secret.txt")
    (site / "index.html").write_text("in")
    assert docs_site.resolve_in_site("days/link.html", site) is None
    assert docs_site.resolve_in_site("../secret.txt", site) is None
    assert docs_site.resolve_in_site("/index.html", site) == (site / "index.html").resolve()
    assert docs_site.resolve_in_site("", site) == (site / "index.html").resolve()


def test_prune_removes_nights_before_the_cutoff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from carefabric.quality.checkpoint import prune

    monkeypatch.setenv("CAREFABRIC_DATA_DIR", str(tmp_path))
    gx, site = docs_site.gx_root(), docs_site.site_dir()
    nights = ("2026-08-01", "2026-11-22", "2026-11-23")
    for night in nights:
        for base in (gx / "uncommitted" / "validations", site / "validations"):
            (base / "carefabric" / "charges" / f"nightly-{night}" / "t").mkdir(parents=True)
        (site / "days").mkdir(exist_ok=True)
        (site / "days" / f"{night}.html").write_text(night)
    assert prune(dt.date(2026, 11, 23)) == 2
    left = sorted(p.name for p in (gx / "uncommitted" / "validations" / "carefabric" / "charges").iterdir())
    assert left == ["nightly-2026-11-23"]
    assert sorted(p.name for p in (site / "validations" / "carefabric" / "charges").iterdir()) == left
    assert [p.name for p in (site / "days").iterdir()] == ["2026-11-23.html"]


@pytest.mark.timeout(300)
def test_the_night_in_a_browser(night: dict[str, Any]) -> None:
    """Debian's chromium opens the console's day link and follows it to GX's page of the failed dataset."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    import uvicorn

    client, engine = make_client(night)
    server = uvicorn.Server(uvicorn.Config(client.app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    shots = Path(__file__).resolve().parents[1] / "data" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    try:
        while not server.started:
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1300, "height": 900},
                                    extra_http_headers={"Authorization": "Bearer victor"})  # a read-only user
            try:
                page.goto(f"http://127.0.0.1:{port}/reconciliation?day={BUSINESS_DATE}")
                page.click("#data-docs a")
                page.wait_for_selector("#datasets")
                page.screenshot(path=str(shots / "data_docs_day.png"), full_page=True)
                assert "FAILED" in page.inner_text("#datasets tr.failed")
                page.click("#datasets tr.failed a >> nth=0")
                page.wait_for_load_state()
                assert "/data-docs/validations/carefabric/" in page.url
                page.screenshot(path=str(shots / "data_docs_validation.png"))
                assert "cdm_code" in page.content() and PHI_NAME not in page.content()
            finally:
                browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()
