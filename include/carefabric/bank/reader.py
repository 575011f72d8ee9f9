"""BAI2 bank statement reader: records 01/02/03/16/88/49/98/99 to canonical bank transactions.

Why our own reader rather than the ``bai2`` package (pinned; the sandbox bank writes with it and
the tests read every sample with it as the reference): on real files it joins a 03 record
continued after a type code into one number (the BAI2 specification's own example, ``...,190/``
then ``88,500000,...``), refuses any type code outside its table (banks use their own 9xx codes),
and stops at the first control total that does not add up. A reconciliation needs every field
where the specification puts it and every failed check named, so this reader:

* follows the continuation rule: an ``88`` record carries on the fields of the record before it
  (a stray empty field before the ``/``, which some banks write in 03 records, is skipped);
* keeps the 16 record's text whole (commas included, continuation lines joined with a space) and
  finds the 835 trace in it (``TRN*1*<trace>*<originator>``, the CCD+ addenda) with the line
  breaks removed, so a trace split across two records still reads as one number;
* checks every 49, 98 and 99 trailer (control totals, record counts, account and group counts)
  and lists each failure in ``BankStatement.findings`` instead of stopping.

A file that cannot be read at all (no 01 header, a record out of place, a number that is not a
number, no 99 trailer) raises ``BankFileError`` with the line and the reason.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from carefabric.bank.model import AccountSummary, BankFileError, BankStatement, BankTransaction, direction_of

#: The CCD+ addenda's reassociation segment: TRN01 = 1 (current transaction trace numbers).
TRN_PATTERN = re.compile(r"TRN\*1\*([^*\\~]{1,50})(?:\*([^*\\~]{0,50}))?")
#: Deposits of paper checks: the customer reference is the check number (the 835's TRN02).
CHECK_DEPOSIT_CODES = frozenset({"115", "175", "301"})
_CODES = {"01", "02", "03", "16", "49", "88", "98", "99"}


@dataclass
class _Record:
    """One logical record: its code, first line number and physical rows (88s folded in)."""

    code: str
    line: int
    rows: list[str]


class _Fields:
    """Comma-separated fields across a record's physical rows (continuation carries on the fields)."""

    def __init__(self, record: _Record) -> None:
        self.record = record
        self.row = 0
        self.parts = record.rows[0].split(",")
        self.index = 0

    def next(self) -> str:
        """The next field, stripped; ``""`` once the record is used up (defaulted fields)."""
        while self.index >= len(self.parts):
            if self.row + 1 >= len(self.record.rows):
                return ""
            self.row += 1
            self.parts = self.record.rows[self.row].split(",")
            self.index = 0
        value = self.parts[self.index]
        self.index += 1
        return value.strip()

    def done(self) -> bool:
        return self.index >= len(self.parts) and self.row + 1 >= len(self.record.rows)

    def rest(self) -> list[str]:
        """What is left of the record as text pieces, one per physical row (a 16 record's text)."""
        pieces = [",".join(self.parts[self.index :])] if self.index < len(self.parts) else []
        pieces += self.record.rows[self.row + 1 :]
        self.index, self.row = len(self.parts), len(self.record.rows)
        return [p for p in pieces if p.strip()]


def read_statement(source: Path | bytes | str) -> BankStatement:
    """Read a whole BAI2 file (files are small: read at once). ``BankFileError`` if unreadable."""
    if isinstance(source, Path):
        try:
            source = source.read_bytes()
        except OSError as exc:
            raise BankFileError(f"cannot read the file: {exc.strerror or exc}") from exc
    text = source.decode("latin-1") if isinstance(source, bytes) else source
    records = _logical_records(text.lstrip("\ufeff").lstrip("ï»¿"))
    return _Parser(records).parse()


def _logical_records(text: str) -> list[_Record]:
    records: list[_Record] = []
    for number, raw in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        line = raw.strip()
        if not line:
            continue
        code = line[:2]
        if code not in _CODES or (len(line) > 2 and line[2] != ","):
            raise BankFileError(f"line {number}: not a BAI2 record (starts {line[:8]!r})")
        content = line[3:].rstrip()
        if content.endswith("/"):
            content = content[:-1].rstrip()
        if code == "88":
            if not records:
                raise BankFileError(f"line {number}: continuation (88) before any record")
            records[-1].rows.append(content)
        else:
            records.append(_Record(code, number, [content]))
    if not records:
        raise BankFileError("empty file: no BAI2 records")
    return records


def _amount(value: str, what: str, line: int, *, blank_is_zero: bool = True) -> int:
    """Integer cents as BAI2 writes them (no decimal point, optional sign, leading zeros)."""
    if value == "" and blank_is_zero:
        return 0
    if not re.fullmatch(r"[+-]?\d{1,18}", value):
        raise BankFileError(f"line {line}: {what} is not an amount in cents ({value!r})")
    return int(value)


def _date(value: str, what: str, line: int) -> dt.date:
    if not re.fullmatch(r"\d{6}", value):
        raise BankFileError(f"line {line}: {what} is not a YYMMDD date ({value!r})")
    yy, mm, dd = int(value[:2]), int(value[2:4]), int(value[4:])
    try:
        return dt.date(2000 + yy if yy < 70 else 1900 + yy, mm, dd)
    except ValueError as exc:
        raise BankFileError(f"line {line}: {what} is not a date ({value!r})") from exc


def _time(value: str) -> dt.time:
    """HHMM, HH:MM:SS, or 2400/9999 for the end of the day; anything else reads as midnight."""
    if value in ("2400", "9999"):
        return dt.time(23, 59, 59)
    match = re.fullmatch(r"(\d\d):?(\d\d)(?::(\d\d))?", value)
    if match and int(match[1]) < 24 and int(match[2]) < 60:
        return dt.time(int(match[1]), int(match[2]), int(match[3] or 0))
    return dt.time(0, 0)


def _skip_availability(fields: _Fields, funds_type: str, line: int) -> None:
    """Step over the availability fields the funds type announces (S: 3, V: 2, D: 1 + 2n)."""
    if funds_type in ("", "Z", "0", "1", "2"):
        return
    if funds_type == "S":
        for _ in range(3):
            fields.next()
    elif funds_type == "V":
        fields.next(), fields.next()
    elif funds_type == "D":
        count = _amount(fields.next(), "distribution count", line)
        for _ in range(2 * count):
            fields.next()
    else:
        raise BankFileError(f"line {line}: unknown funds type {funds_type!r}")


def find_trace(text_pieces: list[str]) -> tuple[str | None, str | None]:
    """(TRN02, TRN03) of the CCD+ addenda in a transaction's text, line breaks removed."""
    match = TRN_PATTERN.search("".join(piece.strip() for piece in text_pieces))
    if not match:
        return None, None
    return match[1].strip(), (match[2] or "").strip() or None


class _Parser:
    """Walks the logical records in order: 01 (02 (03 16* 49)* 98)* 99."""

    def __init__(self, records: list[_Record]) -> None:
        self.records = records
        self.pos = 0

    def _peek(self) -> _Record | None:
        return self.records[self.pos] if self.pos < len(self.records) else None

    def _take(self, code: str, context: str) -> _Record:
        record = self._peek()
        if record is None:
            last = self.records[-1].line
            raise BankFileError(f"file ends after line {last} where a {code} record ({context}) should follow: cut short?")
        if record.code != code:
            raise BankFileError(f"line {record.line}: a {record.code} record where a {code} record ({context}) belongs")
        self.pos += 1
        return record

    def parse(self) -> BankStatement:
        header = self._take("01", "file header")
        fields = _Fields(header)
        sender, receiver, created_date, created_time, file_id = (fields.next() for _ in range(5))
        fields.next(), fields.next()  # physical record length, block size
        version = fields.next()
        if version != "2":
            raise BankFileError(f"line {header.line}: BAI version {version or '(none)'}; only version 2 is read")
        created = dt.datetime.combine(_date(created_date, "file creation date", header.line), _time(created_time))
        statement = BankStatement(sender_id=sender, receiver_id=receiver, file_id=file_id, created=created)
        totals, records = 0, len(header.rows)
        while (record := self._peek()) is not None and record.code == "02":
            group_total, group_records = self._group(statement)
            totals += group_total
            records += group_records
            statement.groups += 1
        trailer = self._take("99", "file trailer")
        if self._peek() is not None:
            raise BankFileError(f"line {self.records[self.pos].line}: records after the 99 file trailer")
        records += len(trailer.rows)
        fields = _Fields(trailer)
        control = _amount(fields.next(), "file control total", trailer.line)
        groups = _amount(fields.next(), "number of groups", trailer.line)
        count = _amount(fields.next(), "number of records", trailer.line)
        _check(statement, f"file (99, line {trailer.line})", control, totals, groups, statement.groups, count, records, "groups")
        if statement.groups == 0:
            raise BankFileError("the file has no group (02) at all")
        return statement

    def _group(self, statement: BankStatement) -> tuple[int, int]:
        header = self._take("02", "group header")
        fields = _Fields(header)
        fields.next(), fields.next(), fields.next()  # ultimate receiver, originator, group status
        as_of = _date(fields.next(), "group as-of date", header.line)
        fields.next()  # as-of time
        currency = fields.next() or "USD"
        totals, records, accounts = 0, len(header.rows), 0
        while (record := self._peek()) is not None and record.code == "03":
            control, account_records = self._account(statement, as_of, currency)
            totals += control
            records += account_records
            accounts += 1
        trailer = self._take("98", "group trailer")
        records += len(trailer.rows)
        fields = _Fields(trailer)
        control = _amount(fields.next(), "group control total", trailer.line)
        declared_accounts = _amount(fields.next(), "number of accounts", trailer.line)
        count = _amount(fields.next(), "number of records", trailer.line)
        where = f"group {as_of.isoformat()} (98, line {trailer.line})"
        _check(statement, where, control, totals, declared_accounts, accounts, count, records, "accounts")
        return control, records

    def _account(self, statement: BankStatement, as_of: dt.date, currency: str) -> tuple[int, int]:
        header = self._take("03", "account identifier")
        fields = _Fields(header)
        account = fields.next()
        if not account:
            raise BankFileError(f"line {header.line}: account identifier (03) without an account number")
        currency = fields.next() or currency
        summaries: dict[str, int] = {}
        total = 0
        while not fields.done():
            type_code = fields.next()
            if not type_code:
                continue  # a stray empty field (",/" before a continuation): some banks write one
            amount = _amount(fields.next(), f"summary {type_code} amount", header.line)
            fields.next()  # item count
            _skip_availability(fields, fields.next(), header.line)
            summaries[type_code] = summaries.get(type_code, 0) + amount
            total += amount
        records = len(header.rows)
        while (record := self._peek()) is not None and record.code == "16":
            self.pos += 1
            transaction = _transaction(record, as_of, account, currency)
            statement.transactions.append(transaction)
            total += transaction.amount_cents
            records += len(record.rows)
        trailer = self._take("49", f"account trailer of {account}")
        records += len(trailer.rows)
        fields = _Fields(trailer)
        control = _amount(fields.next(), "account control total", trailer.line)
        count = _amount(fields.next(), "number of records", trailer.line)
        where = f"account {account} on {as_of.isoformat()} (49, line {trailer.line})"
        _check(statement, where, control, total, None, None, count, records, "")
        statement.accounts.append(AccountSummary(as_of, account, currency, summaries, control, records))
        return control, records


def _transaction(record: _Record, as_of: dt.date, account: str, currency: str) -> BankTransaction:
    fields = _Fields(record)
    type_code = fields.next()
    if not re.fullmatch(r"\d{3}", type_code):
        raise BankFileError(f"line {record.line}: transaction type code {type_code!r} is not three digits")
    amount = _amount(fields.next(), "transaction amount", record.line, blank_is_zero=False)
    funds_type = fields.next()
    _skip_availability(fields, funds_type, record.line)
    bank_reference, customer_reference = fields.next(), fields.next()
    pieces = fields.rest()
    trace, originator = find_trace([bank_reference, customer_reference, *pieces])
    source = "addenda" if trace else None
    direction = direction_of(type_code)
    if trace is None and direction == "credit" and type_code in CHECK_DEPOSIT_CODES and customer_reference:
        trace, source = customer_reference, "customer_reference"
    return BankTransaction(
        statement_date=as_of, bank_account=account, currency=currency, type_code=type_code,
        direction=direction, amount_cents=amount, funds_type=funds_type, bank_reference=bank_reference,
        customer_reference=customer_reference, text=" ".join(p.strip() for p in pieces),
        trace_number=trace, trace_originator=originator, trace_source=source, line=record.line,
    )


def _check(
    statement: BankStatement, where: str, control: int, computed: int,
    declared_children: int | None, children: int | None, count: int, records: int, child_name: str,
) -> None:
    """One finding per trailer figure that does not match what the records add up to."""
    if control != computed:
        statement.findings.append(f"{where}: control total {control} but the amounts add to {computed}")
    if declared_children is not None and declared_children != children:
        statement.findings.append(f"{where}: says {declared_children} {child_name} but holds {children}")
    if count != records:
        statement.findings.append(f"{where}: says {count} records but holds {records}")
