"""Journal batches (CHARGES, SUPPLY, REMIT) from mapped records, set-based.

Every business event becomes one *event row* (amount, debit side, credit side); the rows are
split into signed *entries* (debit positive, credit negative) and then either netted per
(account, cost_center, location, facility) with a pandas groupby (summary posting) or kept one
line per event side (detail posting). Working on integer-cent columns keeps a million charges
a matter of a second or two, and the same entries are returned as *contributions* so
reconciliation knows what each claim, trace and charge line did to the ledger even when the
ERP only holds summary lines.

Contributions DataFrame (one row per non-zero entry), columns ``CONTRIBUTION_COLUMNS``:

- ``record_type``: "charge" (record_key = line_key), "claim" (record_key = CLP01),
  "trace" (record_key = TRN02; the cash-clearing side of CLP04 and PLB), "plb"
  (record_key = ``<trace>|<reason>|<reference>``; the non-cash side of a PLB)
- ``record_key``, ``account``, ``amount_cents`` (int64, signed: debit positive)
- ``component``: which policy rule produced it (``policy.COMPONENT_*``)
- ``cost_center``, ``location``, ``facility`` (None where the policy sets none)
- ``trace_number``, ``claim_id``, ``payer_id`` (remittance rows; None for charges)
- ``business_date``, ``company``, ``source``, ``external_id`` of the batch

Every amount is integer cents; Decimal appears only where mapped records are read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from carefabric.canonical import JournalBatch, JournalLine, MappedCharge, MappedRemittance
from carefabric.money import to_cents
from carefabric.posting import policy
from carefabric.posting.external_ids import external_id
from carefabric.posting.policy import Mode

# The columns charges_frame() returns and the charge/supply builders read.
CHARGE_COLUMNS = [
    "line_key",  # str: source|control id|line number (idempotency key; no PHI)
    "company",  # str
    "facility",  # str
    "service_date",  # date: FT1-4
    "transaction_type",  # str: FT1-6 (only CG and CD post)
    "cdm_code",  # str
    "cost_center",  # str: department crosswalk
    "revenue_account",  # str: CDM crosswalk
    "amount_cents",  # int64, signed: a credit (CD) is negative
    "erp_item",  # str | None: set on supply lines
    "location",  # str | None: the facility's inventory location
    "quantity_micros",  # int64: quantity x 10^6, signed like amount (CD negative)
    "unit_cost",  # Decimal | None: ERP item unit cost
    "supply_cost_cents",  # int64: quantity x unit cost rounded half-up per line; 0 if not supply
]

# Columns of remit_events_frame().
REMIT_EVENT_COLUMNS = [
    "company",
    "business_date",
    "facility",
    "payer_id",  # ERP payer id (payer crosswalk)
    "trace_number",  # TRN02
    "claim_id",  # CLP01, None for PLB events
    "claim_status",  # CLP02, None for PLB events
    "component",  # payment | patient_responsibility | contractual | denial | plb
    "group",  # CAS group or None
    "reason",  # CARC or PLB reason, None for payments
    "reference",  # PLB reference, None otherwise
    "amount_cents",  # int64 as the 835 writes it (reversals negative)
    "debit_account",
    "credit_account",
]

CONTRIBUTION_COLUMNS = [
    "record_type",
    "record_key",
    "account",
    "amount_cents",
    "component",
    "cost_center",
    "location",
    "facility",
    "trace_number",
    "claim_id",
    "payer_id",
    "business_date",
    "company",
    "source",
    "external_id",
]

_SIDE_FIELDS = ("account", "cost_center", "location", "record_type", "record_key", "component")
_GROUP_KEYS = ["account", "cost_center", "location", "facility"]
_MICROS = 1_000_000


class UnbalancedJournalError(ValueError):
    """A journal whose debits do not equal its credits: a bug, never something to post."""


@dataclass(slots=True)
class JournalPosting:
    """A journal (None when nothing nets to a line) and the contributions behind it."""

    journal: JournalBatch | None
    contributions: pd.DataFrame


# --------------------------------------------------------------------------- frames


def _quantity_micros(quantity: Decimal) -> int:
    scaled = quantity * _MICROS
    if scaled != scaled.to_integral_value():
        raise ValueError(f"quantity {quantity} has more than 6 decimal places")
    return int(scaled)


def charges_frame(charges: Iterable[MappedCharge]) -> pd.DataFrame:
    """Mapped charges as the integer-cent DataFrame the builders work on (``CHARGE_COLUMNS``).

    This is the parse boundary: Decimals become cents here, a credit (FT1-6 ``CD``) is made
    negative whatever sign FT1-11 carried, and the supply cost is rounded half-up per line
    (the contract rounds per charge line, then summarizes). A supply line without a unit cost
    cannot be costed and raises: the mapper should have routed it to the exception queue.
    """
    cols: dict[str, list] = {name: [] for name in CHARGE_COLUMNS}
    missing_cost: list[str] = []
    for mc in charges:
        c = mc.charge
        amount = to_cents(c.extended_amount)
        quantity = c.quantity
        if c.transaction_type == policy.CREDIT_TYPE:
            amount = -abs(amount)
            quantity = -abs(quantity)
        line_key = c.line_key
        cost_cents = 0
        if mc.erp_item is not None:
            if mc.item_unit_cost is None:
                missing_cost.append(line_key)
            else:
                cost_cents = to_cents(quantity * mc.item_unit_cost)
        cols["line_key"].append(line_key)
        cols["company"].append(mc.company)
        cols["facility"].append(c.facility)
        cols["service_date"].append(c.transaction_date)
        cols["transaction_type"].append(c.transaction_type)
        cols["cdm_code"].append(c.cdm_code)
        cols["cost_center"].append(mc.cost_center)
        cols["revenue_account"].append(mc.revenue_account)
        cols["amount_cents"].append(amount)
        cols["erp_item"].append(mc.erp_item)
        cols["location"].append(mc.location)
        cols["quantity_micros"].append(_quantity_micros(quantity))
        cols["unit_cost"].append(mc.item_unit_cost)
        cols["supply_cost_cents"].append(cost_cents)
    if missing_cost:
        shown = ", ".join(missing_cost[:5])
        raise ValueError(f"{len(missing_cost)} supply line(s) without an item unit cost: {shown}")
    frame = pd.DataFrame(cols, columns=CHARGE_COLUMNS)
    for name in ("amount_cents", "quantity_micros", "supply_cost_cents"):
        frame[name] = frame[name].astype("int64")
    frame["unit_cost"] = frame["unit_cost"].astype(object)
    return frame


def remit_events_frame(remits: Iterable[MappedRemittance]) -> pd.DataFrame:
    """One row per money event of the mapped 835s (``REMIT_EVENT_COLUMNS``), accounts decided.

    CLP04 -> Dr 1010 / Cr 1200; each CAS (claim and line level) -> Dr 1210 (PR), 4910 (other
    group on a denied claim) or 4900 / Cr 1200; each PLB amount a -> Dr 7100 (L6) or 1200 / Cr
    1010. Amounts keep the 835 sign, so a reversal (CLP02 22) posts the opposite way. An
    unbalanced remittance raises: the contract posts only balanced transactions.
    """
    rows: list[tuple] = []
    for mr in remits:
        r = mr.remittance
        if not r.balanced:
            raise ValueError(
                f"remittance trace {r.trace_number} (ST02 {r.transaction_control}) is not balanced; "
                "it belongs in the exception queue (REMIT_UNBALANCED), not in a journal"
            )
        base = (mr.company, mr.business_date, mr.facility, mr.erp_payer_id, r.trace_number)
        for claim in r.claims:
            rows.append(
                base
                + (
                    claim.patient_control_number,
                    claim.status,
                    policy.COMPONENT_PAYMENT,
                    None,
                    None,
                    None,
                    to_cents(claim.paid),
                    policy.CASH_CLEARING,
                    policy.AR_INSURANCE,
                )
            )
            adjustments = list(claim.adjustments)
            for line in claim.lines:
                adjustments.extend(line.adjustments)
            for adj in adjustments:
                component = policy.adjustment_component(adj.group, claim.status)
                rows.append(
                    base
                    + (
                        claim.patient_control_number,
                        claim.status,
                        component,
                        adj.group,
                        adj.reason,
                        None,
                        to_cents(adj.amount),
                        policy.ADJUSTMENT_DEBIT_ACCOUNT[component],
                        policy.AR_INSURANCE,
                    )
                )
        for plb in r.provider_adjustments:
            rows.append(
                base
                + (
                    None,
                    None,
                    policy.COMPONENT_PLB,
                    None,
                    plb.reason,
                    plb.reference,
                    to_cents(plb.amount),
                    policy.plb_debit_account(plb.reason),
                    policy.CASH_CLEARING,
                )
            )
    frame = pd.DataFrame.from_records(rows, columns=REMIT_EVENT_COLUMNS)
    frame["amount_cents"] = frame["amount_cents"].astype("int64")
    return frame


# --------------------------------------------------------------------------- core


def _double_entry(events: dict[str, object], n: int) -> pd.DataFrame:
    """Signed entries from event columns: debit side +amount, credit side -amount.

    ``events`` maps ``debit_<field>``/``credit_<field>`` (``_SIDE_FIELDS``), ``amount_cents``,
    ``facility``, ``memo``, ``trace_number``, ``claim_id``, ``payer_id`` to arrays or scalars of
    length n. Rows are ordered event by event, debit before credit, which detail posting keeps.
    """
    amount = np.asarray(events["amount_cents"], dtype="int64")
    seq = np.arange(n, dtype="int64")
    sides = []
    for side_no, (side, sign) in enumerate((("debit", 1), ("credit", -1))):
        data: dict[str, object] = {f: events[f"{side}_{f}"] for f in _SIDE_FIELDS}
        data["amount_cents"] = amount * sign
        for f in ("facility", "memo", "trace_number", "claim_id", "payer_id"):
            data[f] = events[f]
        data["_seq"] = seq
        data["_side"] = side_no
        sides.append(pd.DataFrame(data, index=pd.RangeIndex(n)))
    entries = pd.concat(sides, ignore_index=True)
    entries = entries[entries["amount_cents"] != 0]
    return entries.sort_values(["_seq", "_side"], kind="stable").reset_index(drop=True)


def _none_if_empty(values: Iterable[object]) -> list[str | None]:
    """A text column's cells, with pandas' missing values (None, "", NA, NaN) as None."""
    return [
        None if (v is None or v == "" or v is pd.NA or (isinstance(v, float) and np.isnan(v))) else str(v)
        for v in values
    ]


def _lines(entries: pd.DataFrame, mode: Mode) -> list[JournalLine]:
    """Journal lines: netted per (account, cost_center, location, facility), or one per entry."""
    if entries.empty:
        return []
    if mode == "summary":
        net = entries.groupby(_GROUP_KEYS, sort=True, dropna=False, observed=True)["amount_cents"].sum()
        net = net[net != 0]
        keys = net.index.to_frame(index=False)
        amounts = net.to_numpy(dtype="int64")
        memos = [""] * len(amounts)
    else:
        keys = entries[_GROUP_KEYS]
        amounts = entries["amount_cents"].to_numpy(dtype="int64")
        memos = entries["memo"].fillna("").astype(str).tolist()
    debit = np.where(amounts > 0, amounts, 0).tolist()
    credit = np.where(amounts < 0, -amounts, 0).tolist()
    return [
        JournalLine(
            account=a, cost_center=cc, location=loc, facility=fac, debit_cents=d, credit_cents=c, memo=m
        )
        for a, cc, loc, fac, d, c, m in zip(
            keys["account"].astype(str).tolist(),
            _none_if_empty(keys["cost_center"].tolist()),
            _none_if_empty(keys["location"].tolist()),
            _none_if_empty(keys["facility"].tolist()),
            debit,
            credit,
            memos,
            strict=True,
        )
    ]


def assert_balanced(batch: JournalBatch) -> None:
    """Raise ``UnbalancedJournalError`` unless debits equal credits and every line is one-sided."""
    bad = [
        i
        for i, line in enumerate(batch.lines)
        if line.debit_cents < 0
        or line.credit_cents < 0
        or (line.debit_cents != 0) == (line.credit_cents != 0)
    ]
    if bad:
        raise UnbalancedJournalError(
            f"{batch.source} {batch.company} {batch.journal_date}: line(s) {bad[:5]} must carry exactly one "
            "positive amount (debit or credit)"
        )
    debit, credit = batch.total_debit_cents, batch.total_credit_cents
    if debit != credit:
        raise UnbalancedJournalError(
            f"{batch.source} {batch.company} {batch.journal_date}: debits {debit} != credits {credit} cents "
            f"(difference {debit - credit})"
        )


def _post(
    entries: pd.DataFrame,
    *,
    source: str,
    company: str,
    business_date: dt.date,
    mode: Mode,
    with_contributions: bool,
) -> JournalPosting:
    policy.check_mode(mode)
    total = int(entries["amount_cents"].sum()) if len(entries) else 0
    if total != 0:
        raise UnbalancedJournalError(
            f"{source} {company} {business_date}: entries do not net to zero ({total})"
        )
    lines = _lines(entries, mode)
    batch: JournalBatch | None = None
    ext_id: str | None = None
    if lines:
        ext_id = external_id("journal", source, company, business_date, lines)
        batch = JournalBatch(
            external_id=ext_id, company=company, journal_date=business_date, source=source, lines=lines
        )
        assert_balanced(batch)
    if not with_contributions:
        return JournalPosting(batch, _empty_contributions())
    contrib = entries.drop(columns=["_seq", "_side", "memo"])
    for col in ("cost_center", "location", "trace_number", "claim_id", "payer_id"):
        contrib[col] = contrib[col].mask(contrib[col] == "", None)
    contrib["business_date"] = business_date
    contrib["company"] = company
    contrib["source"] = source
    contrib["external_id"] = ext_id
    return JournalPosting(batch, contrib[CONTRIBUTION_COLUMNS].reset_index(drop=True))


def _empty_contributions() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in CONTRIBUTION_COLUMNS})
    frame["amount_cents"] = frame["amount_cents"].astype("int64")
    return frame


def _check_company(frame: pd.DataFrame, company: str, what: str) -> None:
    if len(frame) and "company" in frame.columns:
        others = frame.loc[frame["company"] != company, "company"].unique()
        if len(others):
            raise ValueError(f"{what} for company {sorted(map(str, others))} passed to the {company} batch")


def _as_charges_frame(charges: Iterable[MappedCharge] | pd.DataFrame) -> pd.DataFrame:
    return charges if isinstance(charges, pd.DataFrame) else charges_frame(charges)


def _postable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["transaction_type"].isin(policy.CHARGE_TYPES)]


# --------------------------------------------------------------------------- CHARGES


def _charge_entries(frame: pd.DataFrame) -> pd.DataFrame:
    n = len(frame)
    line_key = frame["line_key"].to_numpy(dtype=object)
    return _double_entry(
        {
            "amount_cents": frame["amount_cents"].to_numpy(dtype="int64"),
            "facility": frame["facility"].to_numpy(dtype=object),
            "memo": line_key,
            "trace_number": "",
            "claim_id": "",
            "payer_id": "",
            "debit_account": policy.AR_INSURANCE,
            "debit_cost_center": "",
            "debit_location": "",
            "debit_record_type": "charge",
            "debit_record_key": line_key,
            "debit_component": policy.COMPONENT_CHARGE,
            "credit_account": frame["revenue_account"].to_numpy(dtype=object),
            "credit_cost_center": frame["cost_center"].to_numpy(dtype=object),
            "credit_location": "",
            "credit_record_type": "charge",
            "credit_record_key": line_key,
            "credit_component": policy.COMPONENT_REVENUE,
        },
        n,
    )


def _charges_posting(
    charges: Iterable[MappedCharge] | pd.DataFrame,
    entries: Callable[[pd.DataFrame], pd.DataFrame],
    source: str,
    what: str,
    *,
    business_date: dt.date,
    company: str,
    mode: Mode,
    with_contributions: bool,
) -> JournalPosting:
    """The journal one rule (``entries``) makes of the postable charges of one company."""
    frame = _postable(_as_charges_frame(charges))
    _check_company(frame, company, what)
    return _post(
        entries(frame), source=source, company=company, business_date=business_date, mode=mode,
        with_contributions=with_contributions,
    )


def charge_posting(
    charges: Iterable[MappedCharge] | pd.DataFrame,
    *,
    business_date: dt.date,
    company: str,
    mode: Mode = "summary",
    with_contributions: bool = True,
) -> JournalPosting:
    """CHARGES journal and its contributions: Dr 1200 / Cr revenue account (revenue cost center).

    Only FT1-6 ``CG``/``CD`` lines post (payments and adjustments belong to billing). ``charges``
    is mapped charges or a ``charges_frame`` DataFrame.
    """
    return _charges_posting(
        charges, _charge_entries, policy.SOURCE_CHARGES, "charges",
        business_date=business_date, company=company, mode=mode, with_contributions=with_contributions,
    )


def build_charge_journal(
    charges: Iterable[MappedCharge] | pd.DataFrame,
    *,
    business_date: dt.date,
    company: str,
    mode: Mode = "summary",
) -> JournalBatch | None:
    """The CHARGES batch for one company and business date, or None when nothing nets to a line."""
    return charge_posting(
        charges, business_date=business_date, company=company, mode=mode, with_contributions=False
    ).journal


# --------------------------------------------------------------------------- SUPPLY


def _supply_entries(frame: pd.DataFrame) -> pd.DataFrame:
    supply = frame[frame["erp_item"].notna() & (frame["erp_item"] != "")]
    missing_location = supply["location"].isna() | (supply["location"] == "")
    if missing_location.any():
        keys = supply.loc[missing_location, "line_key"].head(5).tolist()
        raise ValueError(f"supply line(s) without an inventory location: {keys}")
    n = len(supply)
    line_key = supply["line_key"].to_numpy(dtype=object)
    return _double_entry(
        {
            "amount_cents": supply["supply_cost_cents"].to_numpy(dtype="int64"),
            "facility": supply["facility"].to_numpy(dtype=object),
            "memo": line_key,
            "trace_number": "",
            "claim_id": "",
            "payer_id": "",
            "debit_account": policy.SUPPLY_EXPENSE,
            "debit_cost_center": supply["cost_center"].to_numpy(dtype=object),
            "debit_location": "",
            "debit_record_type": "charge",
            "debit_record_key": line_key,
            "debit_component": policy.COMPONENT_SUPPLY_EXPENSE,
            "credit_account": policy.INVENTORY,
            "credit_cost_center": "",
            "credit_location": supply["location"].to_numpy(dtype=object),
            "credit_record_type": "charge",
            "credit_record_key": line_key,
            "credit_component": policy.COMPONENT_INVENTORY,
        },
        n,
    )


def supply_posting(
    charges: Iterable[MappedCharge] | pd.DataFrame,
    *,
    business_date: dt.date,
    company: str,
    mode: Mode = "summary",
    with_contributions: bool = True,
) -> JournalPosting:
    """SUPPLY journal and contributions: Dr 6500 (department cost center) / Cr 1400 (location).

    Amount per line is quantity x item unit cost rounded half-up to cents (``supply_cost_cents``
    of ``charges_frame``), then summarized, exactly as the contract says; rounding after
    summing would drift from the ground truth by a cent here and there.
    """
    return _charges_posting(
        charges, _supply_entries, policy.SOURCE_SUPPLY, "supply charges",
        business_date=business_date, company=company, mode=mode, with_contributions=with_contributions,
    )


def build_supply_journal(
    charges: Iterable[MappedCharge] | pd.DataFrame,
    *,
    business_date: dt.date,
    company: str,
    mode: Mode = "summary",
) -> JournalBatch | None:
    """The SUPPLY batch for one company and business date, or None when there is no supply cost."""
    return supply_posting(
        charges, business_date=business_date, company=company, mode=mode, with_contributions=False
    ).journal


# --------------------------------------------------------------------------- REMIT


def _remit_entries(events: pd.DataFrame) -> pd.DataFrame:
    n = len(events)
    component = events["component"].to_numpy(dtype=object)
    is_plb = component == policy.COMPONENT_PLB
    is_payment = component == policy.COMPONENT_PAYMENT
    trace = events["trace_number"].fillna("").astype(str).to_numpy(dtype=object)
    claim = events["claim_id"].fillna("").astype(str).to_numpy(dtype=object)
    reason = events["reason"].fillna("").astype(str).to_numpy(dtype=object)
    reference = events["reference"].fillna("").astype(str).to_numpy(dtype=object)
    plb_key = trace + "|" + reason + "|" + reference
    memo = np.where(is_plb, "PLB " + reason + " " + trace, claim)
    # debit side: 1010 of a payment is cash of the trace; PLB debit is the plb record; CAS debits
    # (1210/4900/4910) belong to the claim. Credit side: 1010 of a PLB is cash of the trace,
    # everything else credits 1200 for the claim.
    debit_type = np.where(is_payment, "trace", np.where(is_plb, "plb", "claim"))
    debit_key = np.where(is_payment, trace, np.where(is_plb, plb_key, claim))
    credit_type = np.where(is_plb, "trace", "claim")
    credit_key = np.where(is_plb, trace, claim)
    return _double_entry(
        {
            "amount_cents": events["amount_cents"].to_numpy(dtype="int64"),
            "facility": events["facility"].to_numpy(dtype=object),
            "memo": memo,
            "trace_number": trace,
            "claim_id": claim,
            "payer_id": events["payer_id"].fillna("").astype(str).to_numpy(dtype=object),
            "debit_account": events["debit_account"].to_numpy(dtype=object),
            "debit_cost_center": "",
            "debit_location": "",
            "debit_record_type": debit_type,
            "debit_record_key": debit_key,
            "debit_component": component,
            "credit_account": events["credit_account"].to_numpy(dtype=object),
            "credit_cost_center": "",
            "credit_location": "",
            "credit_record_type": credit_type,
            "credit_record_key": credit_key,
            "credit_component": component,
        },
        n,
    )


def _as_remit_events(remits: Iterable[MappedRemittance] | pd.DataFrame) -> pd.DataFrame:
    return remits if isinstance(remits, pd.DataFrame) else remit_events_frame(remits)


def remit_posting(
    remits: Iterable[MappedRemittance] | pd.DataFrame,
    *,
    business_date: dt.date,
    company: str,
    mode: Mode = "summary",
    with_contributions: bool = True,
) -> JournalPosting:
    """REMIT journal and contributions for the balanced, mapped 835s of one company and date.

    facility = the payee's facility on every line, no cost center (contractual and denial lines
    carry none by contract). ``remits`` is mapped remittances or a ``remit_events_frame``.
    """
    events = _as_remit_events(remits)
    _check_company(events, company, "remittances")
    if len(events):
        dates = events["business_date"].unique()
        wrong = [d for d in dates if d != business_date]
        if wrong:
            raise ValueError(
                f"remittances of business date(s) {sorted(wrong)} passed to the {business_date} batch"
            )
    return _post(
        _remit_entries(events),
        source=policy.SOURCE_REMIT,
        company=company,
        business_date=business_date,
        mode=mode,
        with_contributions=with_contributions,
    )


def build_remit_journal(
    remits: Iterable[MappedRemittance] | pd.DataFrame,
    *,
    business_date: dt.date,
    company: str,
    mode: Mode = "summary",
) -> JournalBatch | None:
    """The REMIT batch for one company and business date, or None when nothing nets to a line."""
    return remit_posting(
        remits, business_date=business_date, company=company, mode=mode, with_contributions=False
    ).journal
