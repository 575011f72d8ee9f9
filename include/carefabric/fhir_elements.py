"""Shape-checked access to FHIR R4 JSON elements, references and identifiers.

Every helper names the element path in its error (``FhirError``), never a value: a resource
whose ``identifier`` is a string instead of a list is one exception for that line, not an
``AttributeError`` that stops the file. References resolve three ways, as R4 allows: a
contained resource (``#id``), a literal ``Type/id`` found earlier in the same file (or by the
caller's lookup), or a logical reference by ``identifier``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


class FhirError(ValueError):
    """A resource that cannot become a canonical record (reason names the element, no PHI)."""

    def __init__(self, reason: str, code: str = "FHIR_PARSE_ERROR") -> None:
        super().__init__(reason)
        self.code = code


def obj(value: Any, path: str) -> dict[str, Any]:
    """An optional complex element: ``{}`` when absent, an error when not a JSON object."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FhirError(f"{path} is not an object")
    return value


def items(value: Any, path: str) -> list[dict[str, Any]]:
    """A repeating complex element: ``[]`` when absent; every entry must be an object."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise FhirError(f"{path} is not a list")
    for number, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise FhirError(f"{path}[{number}] is not an object")
    return value


def text(value: Any, path: str) -> str | None:
    """A primitive string (code, id, uri, dateTime); numbers are not accepted as strings."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise FhirError(f"{path} is not a string")
    return value.strip() or None


def number(value: Any, path: str) -> Decimal | None:
    """A FHIR decimal; NaN and infinities (``json`` reads them as floats) are not numbers."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise FhirError(f"{path} is not a number")
    result = Decimal(value)
    if not result.is_finite():
        raise FhirError(f"{path} is not a finite number")
    return result


def codes(concept: Any, path: str) -> list[tuple[str | None, str | None]]:
    """(system, code) of a CodeableConcept's codings."""
    return [
        (text(c.get("system"), f"{path}.coding.system"), text(c.get("code"), f"{path}.coding.code"))
        for c in items(obj(concept, path).get("coding"), f"{path}.coding")
    ]


def ident_value(ident: dict[str, Any], path: str) -> tuple[str | None, str | None, list[str]]:
    """(system, value, type codes) of one Identifier."""
    type_codes = [code for _, code in codes(ident.get("type"), f"{path}.type") if code]
    return text(ident.get("system"), f"{path}.system"), text(ident.get("value"), f"{path}.value"), type_codes


def by_system(identifiers: Any, path: str, systems: tuple[str, ...]) -> str | None:
    """The value of the first identifier whose system is one of ``systems``."""
    for ident in items(identifiers, path):
        system, value, _ = ident_value(ident, path)
        if value and system in systems:
            return value
    return None


def by_type(identifiers: Any, path: str, type_code: str) -> str | None:
    """The value of the first identifier typed ``type_code`` (v2-0203: VN, MR, ...)."""
    for ident in items(identifiers, path):
        _, value, type_codes = ident_value(ident, path)
        if value and type_code in type_codes:
            return value
    return None


@dataclass(slots=True)
class Target:
    """What a Reference points at: a resource (contained or seen) or only an identifier."""

    resource_type: str | None
    resource_id: str | None
    resource: dict[str, Any] | None = None
    identifier: dict[str, Any] | None = None


@dataclass
class FileIndex:
    """Resources read earlier in the same file, by ``Type/id``, for literal references."""

    seen: dict[str, Any] = field(default_factory=dict)

    def remember(self, resource_type: str, resource_id: str | None, value: Any) -> None:
        if resource_id:
            self.seen[f"{resource_type}/{resource_id}"] = value

    def get(self, resource_type: str | None, resource_id: str | None) -> Any:
        return self.seen.get(f"{resource_type}/{resource_id}") if resource_type and resource_id else None


def resolve(reference: Any, path: str, container: dict[str, Any]) -> Target | None:
    """Read a Reference: contained (``#id``), literal (``Type/id`` or an absolute URL ending so),
    or logical (``identifier`` only). ``None`` when the element is absent."""
    ref = obj(reference, path)
    if not ref:
        return None
    literal = text(ref.get("reference"), f"{path}.reference")
    ident = obj(ref.get("identifier"), f"{path}.identifier") or None
    rtype = text(ref.get("type"), f"{path}.type")
    if literal and literal.startswith("#"):
        for res in items(container.get("contained"), "contained"):
            if res.get("id") == literal[1:]:
                return Target(res.get("resourceType"), literal[1:], res, ident)
        raise FhirError(f"{path}.reference names a contained resource that is not there")
    if literal:
        parts = literal.rstrip("/").split("/")
        if len(parts) >= 2:
            return Target(parts[-2], parts[-1], None, ident)
        return Target(rtype, parts[-1], None, ident)
    return Target(rtype, None, None, ident)
