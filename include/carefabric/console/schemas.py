"""Pydantic models of the console's JSON API: request bodies, and responses FastAPI validates and
documents (``/api/docs``), so a query that starts returning something else fails loudly in tests
instead of leaking a new field to clients.

Bodies never carry an actor: who acts is the authenticated user.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

ID_MAX = 2**31 - 1  # ids are 32-bit integers in both stores; larger ones are a 400, never an overflow
ExceptionIdField = Annotated[int, Field(ge=1, le=ID_MAX)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoteBody(Strict):
    note: str | None = Field(None, max_length=2000)


class BulkBody(Strict):
    """Several selected exceptions, one note for all of them."""

    exception_ids: list[ExceptionIdField] = Field(..., min_length=1, max_length=500)
    note: str | None = Field(None, max_length=2000)


class ReplayBody(Strict):
    exception_ids: list[ExceptionIdField] | None = Field(None, max_length=500)
    reason_code: str | None = Field(None, max_length=40)
    interface: str | None = Field(None, max_length=40)
    business_date_from: dt.date | None = None
    business_date_to: dt.date | None = None


class CrosswalkBody(Strict):
    """Column values of one crosswalk row (keys and values of that crosswalk; others are refused)."""

    values: dict[str, str | None] = Field(..., max_length=10)


class SessionInfo(BaseModel):
    user: str
    role: str | None
    can_read: bool
    can_act: bool
    csrf_token: str


class Event(BaseModel):
    id: int
    at: str | None
    action: str
    actor: str
    note: str | None


class ExceptionItem(BaseModel):
    id: int
    kind: str
    reason_code: str
    interface: str
    record_type: str
    record_key: str
    summary: str
    detail: dict[str, Any] | None
    status: str
    attempts: int
    created_at: str | None
    updated_at: str | None
    closed_at: str | None
    amount: str | None
    business_date: str | None
    age_hours: float
    replayable: bool


class ExceptionDetail(ExceptionItem):
    events: list[Event]
    audit: list[dict[str, Any]]
    trace_key: str
    replay_command: str | None


class ExceptionPage(BaseModel):
    total: int
    page: int
    page_size: int
    pages: int
    filters: dict[str, Any]
    items: list[ExceptionItem]


class BulkResult(BaseModel):
    done: list[int]
    failed: dict[int, str]


class Run(BaseModel):
    dag_id: str
    run_id: str
    state: str
    url: str | None
    conf: dict[str, Any]


class ReplayResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    mode: str
    exception_ids: list[int]
    message: str | None = None
    command: str | None = None
    run: Run | None = None


class CrosswalkTable(BaseModel):
    table: str
    key: list[str]
    values: list[str]
    rows: list[dict[str, Any]]


class Change(BaseModel):
    field: str
    before: Any
    after: Any


class HistoryEntry(BaseModel):
    crosswalk: str
    key: str
    version: int
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changes: list[Change]
    changed_at: str | None
    changed_by: str | None


class AuditEntry(BaseModel):
    id: int
    at: str | None
    actor: str
    action: str
    target: str
    detail: dict[str, Any] | None
    summary: str
