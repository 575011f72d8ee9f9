"""Small shared pieces of the generator: random streams, ids, the billing seed, file writers."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from carefabric.money import format_cents
from carefabric.phi import token
from sandbox.reference import Patient, Payer
from sandbox.x12_writer import RemitClaim


def rng_for(seed: int, *parts: object) -> random.Random:
    """An independent, reproducible stream per part of the scenario (string seeding is stable
    across processes and ``PYTHONHASHSEED``)."""
    return random.Random(":".join(["carefabric", str(seed), *map(str, parts)]))


def scramble(seq: int, factor: int, modulus: int) -> int:
    """A bijection on [0, modulus) so ids look random but never collide."""
    return (seq * factor + 7) % modulus


def make_patient(rng: random.Random, seq: int, payer: Payer) -> Patient:
    from sandbox.reference import FAMILY_NAMES, GIVEN_NAMES, STREETS

    mrn = f"M{scramble(seq, 7919, 10**8):08d}"
    return Patient(
        mrn=mrn,
        enterprise_id=f"E{scramble(seq, 104723, 10**9):09d}",
        family=rng.choice(FAMILY_NAMES),
        given=rng.choice(GIVEN_NAMES),
        middle=rng.choice("ABCDEJKLMRST"),
        birth_date=dt.date(1938, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 85)),
        sex=rng.choice("FM"),
        street=f"{rng.randint(10, 9999)} {rng.choice(STREETS)}",
        city="SPRINGFIELD",
        zip_code=f"{rng.randint(10000, 99999)}",
        member_id=f"{payer.plan_code[:3]}{scramble(seq, 31337, 10**9):09d}",
        token=token(mrn) or "",
    )


def encounter_id(seq: int) -> str:
    return f"V{seq:07d}"


def claim_id(facility_code: str, seq: int) -> str:
    """The patient control number billing sends on the 837 and the payer echoes in CLP01."""
    return f"CLM-{facility_code}-{seq:07d}"


def cents_of(amount: Decimal) -> int:
    """Dollars (any precision) to cents, half up: the contract's rounding of a fractional line."""
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def quantity_text(quantity: Decimal | int) -> str:
    """A quantity as the ERP and the truth write it: no exponent, no trailing zeros ("-2.5", "3")."""
    text = f"{Decimal(quantity).normalize():f}"
    return "0" if text in ("-0", "0") else text


@dataclass(slots=True)
class Seq:
    """The one counter behind encounter and claim numbers, so no two ever collide."""

    value: int = 0

    def next(self) -> int:
        self.value += 1
        return self.value


@dataclass(slots=True)
class Counts:
    files: Counter[str] = field(default_factory=Counter)
    messages: Counter[str] = field(default_factory=Counter)
    fhir: Counter[str] = field(default_factory=Counter)
    encounters_hl7: int = 0
    encounters_fhir: int = 0
    charge_lines: int = 0
    supply_lines: int = 0
    credit_lines: int = 0
    posted_lines: int = 0
    held: Counter[str] = field(default_factory=Counter)
    claims_remitted: int = 0
    remit_transactions: int = 0


@dataclass(slots=True)
class BillingSeed:
    """What billing already holds before the day: claims, payments, patient balances."""

    claims: list[dict[str, str]] = field(default_factory=list)
    payments: list[dict[str, str]] = field(default_factory=list)
    balances: list[dict[str, str]] = field(default_factory=list)

    def add_claim(
        self, claim: RemitClaim, payer_id: str, status: str, submitted: dt.date, updated: str
    ) -> None:
        self.claims.append(
            {
                "claim_id": claim.claim_id,
                "encounter_id": claim.encounter_id,
                "facility": claim.facility,
                "payer_id": payer_id,
                "total_charge": format_cents(abs(claim.charge_cents)),
                "status": status,
                "submitted_date": submitted.isoformat(),
                "updated_at": updated,
            }
        )

    def add_payment(
        self, claim_id_: str, payer_id: str, cents: int, paid: dt.date, trace: str, updated: str
    ) -> None:
        self.payments.append(
            {
                "payment_id": f"PMT-{len(self.payments) + 1:07d}",
                "claim_id": claim_id_,
                "payer_id": payer_id,
                "amount": format_cents(cents),
                "paid_date": paid.isoformat(),
                "trace_number": trace,
                "updated_at": updated,
            }
        )


def dump_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, sort_keys=True, indent=2) + "\n", encoding="utf-8")


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def write_json_lists(path: Path, lists: dict[str, list[dict[str, str]]]) -> None:
    """A JSON object of lists written item by item (billing seeds get large in benchmarks)."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write("{\n")
        for key_index, key in enumerate(sorted(lists)):
            handle.write(f"  {json.dumps(key)}: [")
            for index, item in enumerate(lists[key]):
                handle.write(("\n    " if index == 0 else ",\n    ") + json.dumps(item, sort_keys=True))
            handle.write("\n  ]" if lists[key] else "]")
            handle.write(",\n" if key_index < len(lists) - 1 else "\n")
        handle.write("}\n")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(slots=True)
class World:
    """Everything the day builders share: arguments, the scenario's records and its truth so far."""

    out: Path
    seed: int
    facilities: list[Any]  # sandbox.reference.Facility
    dates: list[dt.date]
    day_counts: list[int]
    ledger: Any  # sandbox.ground_truth.Ledger: what must post
    after_fix: Any  # Ledger: what posts once the missing chargemaster entry is added and replayed
    payer_fix: Any  # Ledger: what posts once the unknown payer is mapped and its 835 replayed
    seq: Seq = field(default_factory=Seq)
    counts: Counts = field(default_factory=Counts)
    billing: BillingSeed = field(default_factory=BillingSeed)
    faults: list[dict[str, Any]] = field(default_factory=list)
    features: dict[str, Any] = field(default_factory=dict)

    @property
    def codes(self) -> list[str]:
        return [fac.code for fac in self.facilities]

    def feature(self, name: str, value: Any) -> None:
        """Record where a scenario feature landed (``ground_truth.json`` "scenario")."""
        self.features.setdefault(name, []).append(value)
