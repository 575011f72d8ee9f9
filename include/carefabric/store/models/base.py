"""The declarative base, naming convention and column helpers every model shares."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, MetaData
from sqlalchemy.orm import DeclarativeBase, mapped_column

from carefabric.store.types import BigIntPK, UTCDateTime, utcnow

#: Constraint names are deterministic so Alembic (and SQLite batch mode) can find them again.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every carefabric store model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


def pk() -> Any:
    """A surrogate primary key (BIGINT, INTEGER on SQLite)."""
    return mapped_column(BigIntPK, primary_key=True, autoincrement=True)


def cents(nullable: bool = False, default: int | None = None) -> Any:
    """An amount in integer cents (BIGINT)."""
    return mapped_column(BigInteger, nullable=nullable, default=default)


def fk(target: str, *, nullable: bool = False, ondelete: str | None = "CASCADE", index: bool = True) -> Any:
    """A BIGINT foreign key to ``target`` (``table.id``), indexed."""
    return mapped_column(BigInteger, ForeignKey(target, ondelete=ondelete), nullable=nullable, index=index)


def created_at() -> Any:
    return mapped_column(UTCDateTime(), default=utcnow, nullable=False)


def updated_at() -> Any:
    return mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False)


def one_of(column: str, values: tuple[str, ...], name: str | None = None) -> CheckConstraint:
    """A CHECK that ``column`` holds one of ``values`` (named ``ck_<table>_<column>``)."""
    allowed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=name or column)
