"""Issue 10's acceptance, from the console alone: an operator logged in through Airflow's login page
finds the held line of an unknown CDM code, maps the code on the crosswalk page, replays every open
``UNKNOWN_CDM`` exception by reason code, watches the ``exception_replay`` run to success and sees
the exception replayed; the ERP then holds the posting, read back from the sandbox ERP's own API.

Everything is real: Debian's chromium (Playwright), ``airflow api-server`` and ``airflow
scheduler`` (LocalExecutor, the task through the task SDK), the sandbox billing and ERP servers,
and a store holding a generated day that was ingested, routed and posted before the fix.
Screenshots go to ``data/screenshots/replay_*.png``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import scenario
from airflow_api import AIRFLOW, PROJECT, Server, airflow_api_server

from carefabric.interfaces import ehr_ingest, erp_posting, payer_remittance
from sandbox import ERP_TOKEN

sys.path.insert(0, str(PROJECT / "tools"))
from airflow_runtime import load_settings  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = PROJECT / "data" / "screenshots"
DAY = scenario.BUSINESS_DATE

pytestmark = [
    pytest.mark.slow,  # a scheduler, an api-server and a browser: minutes on a shared machine
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed (apt-get install -y chromium)"),
    pytest.mark.timeout(1200),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Peers, a store with the day posted except the held line, and Airflow (api-server +
    scheduler) with the connections pointing at the peers and ``exception_replay`` unpaused."""
    pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -r requirements.txt)")
    from sandbox.runner import SandboxServers

    root = tmp_path_factory.mktemp("replay_e2e")
    day_dir = root / "day"
    truth = scenario.generate_day(day_dir)
    store_url = f"sqlite:///{root / 'store.db'}"
    data = root / "data"
    with SandboxServers(root / "sandbox") as servers, pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAREFABRIC_DATA_DIR", str(data))
        scenario.reset_peers(servers, day_dir)
        with scenario.migrated_store(store_url) as engine:
            scenario.seed_store(engine, day_dir)
            for path in sorted((day_dir / "ehr").glob("*.hl7")):
                ehr_ingest.ingest_file(path, engine, business_date=DAY, validate=False)
            for path in sorted((day_dir / "sftp").glob("*/*.835")):
                payer_remittance.process_file(path, engine, payer_folder=path.parent.name, business_date=DAY)
            ehr_ingest.route_charges(engine, scenario.billing_client(servers.billing_url))
            erp_posting.post_day(engine, scenario.erp_client(servers.erp_url), DAY)

        def prepare(env: dict[str, str]) -> None:
            erp_port = int(servers.erp_url.rsplit(":", 1)[1].split("/")[0])
            billing_port = int(servers.billing_url.rsplit(":", 1)[1].split("/")[0])
            load_settings(env, overrides={"erp_api": {"host": "127.0.0.1", "port": erp_port},
                                          "billing_api": {"host": "127.0.0.1", "port": billing_port}})
            subprocess.run([str(AIRFLOW), "dags", "unpause", "exception_replay"], env=env, check=True,
                           capture_output=True, timeout=600)

        home = root / "airflow_home"
        home.mkdir()
        extra = {"CAREFABRIC_DATA_DIR": str(data), "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"}
        with airflow_api_server(home, store_url, extra_env=extra, prepare=prepare, scheduler=True) as srv:
            yield {"srv": srv, "servers": servers, "truth": truth, "day_dir": day_dir, "url": store_url, "home": home}


def erp_verdict(world: dict[str, Any], *, after_fix: bool) -> list[str]:
    """The judge's differences, from the sandbox ERP's own journal, movement and receipt lists."""
    from sandbox.judge import judge

    return judge(world["day_dir"] / "ground_truth.json", world["servers"].erp_url, ERP_TOKEN,
                 after_fix=after_fix)["differences"]


def test_operator_fixes_an_unknown_cdm_and_replays_it_by_reason_code(world: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    srv: Server = world["srv"]
    fix = world["truth"]["after_fix"]["crosswalk"]
    # Before: the ERP holds the day as posted, without the held line (the judge after the fix misses it).
    assert erp_verdict(world, after_fix=False) == []
    missing = erp_verdict(world, after_fix=True)
    assert missing and all("expected line not posted" in d for d in missing), missing

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(30000)
        try:
            _login(page, srv, "operator")
            exc_id = _open_held_line(page, srv, fix["cdm_code"])
            _map_the_code(page, srv, fix)
            try:
                run_id = _replay_by_reason(page, srv)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{_task_logs(world['home'])}") from None
            page.goto(f"{srv.url}/carefabric/exceptions/{exc_id}")
            expect(page.locator("body")).to_contain_text("replayed")
            page.screenshot(path=str(SHOTS / "replay_5_exception_replayed.png"), full_page=True)
            detail = page.request.get(f"{srv.url}/carefabric/api/exceptions/{exc_id}").json()
        finally:
            browser.close()

    assert detail["status"] == "replayed", detail["status"]
    assert {e["actor"] for e in detail["events"][1:]} == {"operator"}, detail["events"]
    # The run the console started is the operator's, with the reason code and no ids.
    admin = srv.token("admin")
    import httpx

    run = httpx.get(f"{srv.url}/api/v2/dags/exception_replay/dagRuns/{run_id}",
                    headers={"Authorization": f"Bearer {admin}"}, timeout=30).json()
    assert (run["state"], run["triggering_user_name"]) == ("success", "operator")
    assert run["conf"] == {"exception_ids": [], "reason_code": "UNKNOWN_CDM"}
    # After: the ERP holds exactly the day plus the replayed line, each document once.
    assert erp_verdict(world, after_fix=True) == []


def _login(page: Any, srv: Server, user: str) -> None:
    page.goto(f"{srv.url}/auth/login?next={srv.url}/carefabric/")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(srv.passwords[user])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)


def _open_held_line(page: Any, srv: Server, code: str) -> int:
    """The queue filtered to open UNKNOWN_CDM holds; the one exception's page says what it means."""
    from playwright.sync_api import expect

    page.goto(f"{srv.url}/carefabric/exceptions?status=open&reason_code=UNKNOWN_CDM")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    page.screenshot(path=str(SHOTS / "replay_1_queue_unknown_cdm.png"), full_page=True)
    rows.first.locator("a").first.click()
    page.wait_for_url("**/carefabric/exceptions/*")
    expect(page.locator("body")).to_contain_text(code)
    page.screenshot(path=str(SHOTS / "replay_2_exception.png"), full_page=True)
    return int(page.url.rstrip("/").rsplit("/", 1)[1].split("?")[0])


def _map_the_code(page: Any, srv: Server, fix: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    page.goto(f"{srv.url}/carefabric/crosswalks?table=cdm")
    form = page.locator("form#edit")
    form.locator("input[name=cdm_code]").fill(fix["cdm_code"])
    form.locator("input[name=revenue_account]").fill(fix["revenue_account"])
    for field in ("procedure_code", "description"):
        if fix.get(field) and form.locator(f"input[name={field}]").count():
            form.locator(f"input[name={field}]").fill(fix[field])
    form.get_by_role("button").click()
    expect(page.locator(".flash")).to_contain_text(f"cdm {fix['cdm_code']} saved")
    expect(page.locator("#offer")).to_contain_text("1 held line(s) would map now")
    page.screenshot(path=str(SHOTS / "replay_3_crosswalk_fixed.png"), full_page=True)


def _replay_by_reason(page: Any, srv: Server) -> str:
    """'Replay by reason' on the filtered queue; the run page refreshes itself until the run ends."""
    from playwright.sync_api import expect

    page.goto(f"{srv.url}/carefabric/exceptions?status=open&reason_code=UNKNOWN_CDM")
    page.get_by_role("button", name="Replay by reason").click()
    expect(page.locator("#run-link")).to_be_visible()
    run_id = page.locator("#run-link").inner_text().strip()
    expect(page.locator("#run-state")).to_have_text("success", timeout=360000)
    expect(page.locator("#outcome tbody")).to_contain_text("replayed")  # the list, as the run left it
    page.screenshot(path=str(SHOTS / "replay_4_run_succeeded.png"), full_page=True)
    return run_id



def _task_logs(home: Path) -> str:
    """The replay run's task logs and the scheduler's tail, for a failing run's message."""
    logs = sorted((home / "logs").rglob("*exception_replay*/**/*.log")) + [home / "scheduler.log"]
    return "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in logs if p.is_file())[-12000:]
