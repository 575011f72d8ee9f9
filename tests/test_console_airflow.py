"""The console as Airflow serves it: a real ``airflow api-server`` with SimpleAuthManager, real
logins (POST /auth/token), the UI's ``_token`` cookie, and Airflow's REST API for replay.

Every route of the console app is enumerated and must refuse a request without a login and a
cross-origin (or token-less) state change; viewers read, operators act, and every audit entry
names the logged-in user.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from airflow_api import PROJECT, Server, console_day_server
from fastapi.routing import APIRoute
from sqlalchemy import func, select

from carefabric.store.db import get_engine, session_scope
from carefabric.store.models import AuditLog, ExceptionRecord

EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, Any]]]:
    with console_day_server(tmp_path_factory.mktemp("console_airflow")) as served:
        yield served


def console_routes() -> list[APIRoute]:
    """Every route of the app the plugin mounts, read from the app itself: a route added later
    (by any router) is covered without touching this test."""
    spec = importlib.util.spec_from_file_location("carefabric_console_plugin_routes", PROJECT / "plugins" / "carefabric_console.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    others = [r for r in module.app.routes if not isinstance(r, APIRoute)]
    assert others == [], f"routes this test cannot call: {others}"  # a Mount or raw Route would escape it
    return list(module.app.routes)


def concrete(path: str, exception_id: int) -> str:
    """The route with its path parameters filled (a valid-looking value; unknown ones get 1)."""
    values = {"exception_id": str(exception_id), "action": "discard", "table": "cdm", "run_id": "manual__x"}
    return "/carefabric" + re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "1"), path)


def first_open(day: dict[str, Any], reason: str) -> int:
    engine = get_engine(day["url"])
    try:
        with session_scope(engine) as s:
            return s.scalar(select(func.min(ExceptionRecord.id)).where(
                ExceptionRecord.reason_code == reason, ExceptionRecord.status == "open"))
    finally:
        engine.dispose()


def audit_count(day: dict[str, Any], **where: str) -> int:
    engine = get_engine(day["url"])
    try:
        with session_scope(engine) as s:
            return s.scalar(select(func.count()).select_from(AuditLog).filter_by(**where)) or 0
    finally:
        engine.dispose()


def test_every_route_refuses_a_request_without_a_login(server: tuple[Server, dict[str, Any]]) -> None:
    srv, day = server
    routes = console_routes()
    assert len(routes) >= 25 and {"/api/replay", "/api/crosswalks/{table}", "/crosswalks/{table}"} <= {r.path for r in routes}
    exc_id = first_open(day, "UNKNOWN_PAYER")
    before = audit_count(day)
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        for route in routes:
            for method in route.methods:
                url = concrete(route.path, exc_id)
                for headers in ({}, {"Authorization": "Bearer not-a-jwt"}, {"Cookie": "_token=forged"}):
                    r = c.request(method, url, headers=headers, json={})
                    assert r.status_code == 401, (method, url, headers, r.status_code, r.text[:200])
        assert c.get("/carefabric/no/such/page").status_code == 401  # unknown paths tell a stranger nothing
        page = c.get("/carefabric/exceptions")
        assert "text/html" in page.headers["content-type"] and "Log in to Airflow" in page.text
    assert audit_count(day) == before


def test_every_state_change_refuses_cross_origin_and_token_less_requests(server: tuple[Server, dict[str, Any]]) -> None:
    srv, day = server
    token = srv.token("operator")
    exc_id = first_open(day, "UNKNOWN_PAYER")
    changing = [(m, r) for r in console_routes() for m in r.methods if m not in ("GET", "HEAD")]
    before = audit_count(day)
    assert len(changing) >= 8
    cookie = {"Cookie": f"_token={token}"}
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        csrf = c.get("/carefabric/api/session", headers=cookie).json()["csrf_token"]
        for method, route in changing:
            url = concrete(route.path, exc_id)
            attempts = (
                {**cookie, "Origin": EVIL, "X-CSRF-Token": csrf},  # a page elsewhere, even knowing the token
                {**cookie, "Origin": srv.url},  # our origin but no token (a same-site attacker)
                {**cookie, "X-CSRF-Token": "0" * 64},  # a wrong token
                {"Authorization": f"Bearer {token}", "Origin": EVIL},  # a script on another origin
            )
            for headers in attempts:
                r = c.request(method, url, headers=headers, json={"note": "x", "exception_ids": [exc_id]})
                assert r.status_code == 403, (method, url, headers.keys(), r.status_code, r.text[:200])
            form = c.request(method, url, headers={**cookie, "Origin": EVIL},
                             data={"csrf_token": csrf, "note": "csrf", "cdm_code": "EVIL1", "revenue_account": "4010"})
            assert form.status_code == 403, (method, url, form.text[:200])
    assert audit_count(day) == before


def test_viewers_read_operators_act_and_the_audit_names_them(server: tuple[Server, dict[str, Any]]) -> None:
    srv, day = server
    viewer, operator = srv.token("viewer"), srv.token("operator")
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        for path in ("/carefabric/", "/carefabric/exceptions", "/carefabric/crosswalks", "/carefabric/audit",
                     "/carefabric/reconciliation", "/carefabric/api/docs", "/carefabric/api/openapi.json"):
            assert c.get(path, headers={"Cookie": f"_token={viewer}"}).status_code == 200, path
        session = c.get("/carefabric/api/session", headers={"Authorization": f"Bearer {viewer}"}).json()
        assert session["user"] == "viewer" and session["can_read"] and not session["can_act"]
        exc_id = first_open(day, "UNKNOWN_PAYER")
        denied = c.post(f"/carefabric/api/exceptions/{exc_id}/resolve", headers={"Authorization": f"Bearer {viewer}"})
        assert denied.status_code == 403

        # The operator, from the browser: cookie + the page's CSRF token, same origin.
        cookie = {"Cookie": f"_token={operator}", "Origin": srv.url}
        page = c.get(f"/carefabric/exceptions/{exc_id}", headers=cookie)
        csrf = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text).group(1)
        r = c.post(f"/carefabric/exceptions/{exc_id}/discard", headers=cookie,
                   data={"csrf_token": csrf, "note": "payer test file"}, follow_redirects=False)
        assert r.status_code == 303, r.text[:300]
        detail = c.get(f"/carefabric/api/exceptions/{exc_id}", headers=cookie).json()
        assert detail["status"] == "discarded" and detail["events"][-1]["actor"] == "operator"
        # ... and a script with its bearer token.
        other = first_open(day, "REMIT_UNBALANCED")
        r = c.post(f"/carefabric/api/exceptions/{other}/resolve", headers={"Authorization": f"Bearer {operator}"},
                   json={"note": "re-sent"})
        assert r.status_code == 200 and r.json()["events"][-1]["actor"] == "operator"
        entries = c.get("/carefabric/api/audit", headers=cookie).json()
    mine = [e for e in entries if e["actor"] != "test-setup"]  # the fixture's crosswalk import
    assert {e["actor"] for e in mine} == {"operator"} and len(mine) >= 2
    assert audit_count(day, actor="operator") == len(mine)


def test_replay_triggers_exception_replay_through_the_rest_api_as_the_user(server: tuple[Server, dict[str, Any]]) -> None:
    srv, day = server
    operator, admin = srv.token("operator"), srv.token("admin")
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        r = c.post("/carefabric/api/replay", headers={"Authorization": f"Bearer {operator}"},
                   json={"reason_code": "INACTIVE_COST_CENTER"})
        assert r.status_code == 200, r.text[:500]
        body = r.json()
        run = body["run"]
        assert body["mode"] == "triggered" and run["state"] == "queued"
        assert run["url"] == f"{srv.url}/dags/exception_replay/runs/{quote(run['run_id'], safe='')}"
        airflow_run = c.get(f"/api/v2/dags/exception_replay/dagRuns/{run['run_id']}",
                            headers={"Authorization": f"Bearer {admin}"}).json()
        assert airflow_run["conf"] == {"exception_ids": [], "reason_code": "INACTIVE_COST_CENTER"}
        assert airflow_run["triggering_user_name"] == "operator"
        status = c.get(f"/carefabric/api/replay/runs/{run['run_id']}", headers={"Authorization": f"Bearer {operator}"})
        assert status.json()["run_id"] == run["run_id"]
        missing = c.get("/carefabric/api/replay/runs/nope", headers={"Authorization": f"Bearer {operator}"})
        assert missing.status_code == 404
    assert audit_count(day, actor="operator", action="exception.replay_requested") == len(body["exception_ids"]) > 0
