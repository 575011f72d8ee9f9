"""The BAI2 reader on real public files, against the ``bai2`` package, and on files made bad.

Real files (``tests/samples_extra/bai2``, sources in SOURCES.md) are read and pinned, and every
transaction and summary is compared with the ``bai2`` package's reading of the same bytes. The
one file that package misreads (the specification's own 03 record continued after a type code)
is pinned by hand from the specification's figures.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

import pytest
from bai2 import bai2 as bai2_package

from carefabric.bank import BankFileError, read_statement
from carefabric.bank.reader import find_trace

SAMPLES = Path(__file__).parent / "samples_extra" / "bai2"
#: file -> (groups, accounts, transactions, credits, sum of transaction cents)
PINNED = {
    "moj_svb_us_example.bai2": (2, 2, 2, 2, 1_395_996),
    "moj_nwb_example.bai2": (1, 1, 5, 1, 2_854),
    "moj_example.bai2": (1, 1, 1, 1, 1),
    "moj_account_trailer_amount_blank.bai2": (1, 2, 0, 0, 0),
    "moov_sample1.txt": (1, 2, 17, 5, 640_000),
    "moov_sample2.txt": (4, 5, 4, 4, 30_950_000),
    "moov_spec_section3.txt": (1, 1, 1, 1, 1_500_000),
}


def _sources() -> dict[str, str]:
    rows = (SAMPLES / "SOURCES.md").read_text().splitlines()
    return {cells[1]: cells[4] for row in rows if (cells := [c.strip() for c in row.split("|")])[1:2] and cells[1] in PINNED}


def test_every_sample_is_listed_with_its_digest() -> None:
    listed = _sources()
    assert set(listed) == set(PINNED) == {p.name for p in SAMPLES.iterdir() if p.name != "SOURCES.md"}
    for name, digest in listed.items():
        assert hashlib.sha256((SAMPLES / name).read_bytes()).hexdigest()[:16] == digest, name


@pytest.mark.parametrize("name", sorted(PINNED))
def test_real_samples_read_and_add_up(name: str) -> None:
    statement = read_statement(SAMPLES / name)
    groups, accounts, transactions, credits, cents = PINNED[name]
    assert statement.findings == []
    assert (statement.groups, len(statement.accounts), len(statement.transactions)) == (groups, accounts, transactions)
    assert len(statement.deposits) == credits
    assert sum(t.amount_cents for t in statement.transactions) == cents


def _words(text: str | None) -> str:
    return " ".join((text or "").split())


@pytest.mark.parametrize("name", sorted(set(PINNED) - {"moov_sample2.txt"}))
def test_same_reading_as_the_bai2_package(name: str) -> None:
    ours = read_statement(SAMPLES / name)
    theirs = bai2_package.parse_from_string((SAMPLES / name).read_text(), check_integrity=True)
    details = [t for g in theirs.children for a in g.children for t in a.children]
    assert [(t.type_code, t.amount_cents, t.bank_reference, t.customer_reference, _words(t.text)) for t in ours.transactions] == [
        (d.type_code.code, d.amount, d.bank_reference or "", d.customer_reference or "", _words(d.text)) for d in details
    ]
    accounts = [a for g in theirs.children for a in g.children]
    assert [(a.bank_account, a.summaries) for a in ours.accounts] == [
        (a.header.customer_account_number, {s.type_code.code: s.amount for s in a.header.summary_items}) for a in accounts
    ]
    assert [a.statement_date for a in ours.accounts] == [g.header.as_of_date for g in theirs.children for _ in g.children]


def test_the_specification_example_that_the_package_misreads() -> None:
    """03 continued right after a type code: ``...,190/`` then ``88,500000,...`` is 190 = 500000."""
    with pytest.raises(Exception, match="190500000"):
        bai2_package.parse_from_string((SAMPLES / "moov_sample2.txt").read_text())
    statement = read_statement(SAMPLES / "moov_sample2.txt")
    second = statement.accounts[1]
    assert second.bank_account == "9876543210"
    assert second.summaries == {"010": -500000, "100": 1000000, "400": 2000000, "190": 500000, "110": 1000000,
                                "072": 500000, "074": 500000, "040": -1500000}
    assert statement.accounts[3].summaries["110"] == 70000000  # distributed availability (D, 3 pairs) skipped
    lockbox = statement.transactions[1]
    assert (lockbox.type_code, lockbox.amount_cents, lockbox.text) == ("115", 500000, "LOCK BOX NO.68751")
    assert statement.accounts[0].statement_date == dt.date(2004, 6, 20)


def _tamper(name: str, pattern: str, replacement: str) -> str:
    text = (SAMPLES / name).read_text()
    changed = re.sub(pattern, replacement, text, count=1, flags=re.M)
    assert changed != text
    return changed


def test_control_totals_that_do_not_add_up_are_findings() -> None:
    statement = read_statement(_tamper("moj_svb_us_example.bai2", r"^16,142,490196,", "16,142,490197,"))
    assert statement.findings == [
        "account 1234567890 on 2022-02-01 (49, line 9): control total 138884258 but the amounts add to 138884259"
    ]
    statement = read_statement(_tamper("moj_svb_us_example.bai2", r"^98,143145938,1,9/", "98,143145938,2,9/"))
    assert statement.findings == ["group 2022-02-02 (98, line 19): says 2 accounts but holds 1"]
    statement = read_statement(_tamper("moov_sample1.txt", r"^99,\+00000000001280000,1,27/", "99,+00000000001280001,1,28/"))
    assert statement.findings == [
        "file (99, line 27): control total 1280001 but the amounts add to 1280000",
        "file (99, line 27): says 28 records but holds 27",
    ]
    statement = read_statement(_tamper("moov_sample1.txt", r"^49,\+00000000000446000,9/", "49,+00000000000446000,8/"))
    assert statement.findings[0] == "account 10200123456 on 2006-03-17 (49, line 25): says 8 records but holds 9"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty file"),
        ("ISA*00*          *00*\n", "line 1: not a BAI2 record"),
        ("01,A,B,250314,0700,1,,,3/\n", "BAI version 3; only version 2"),
        ("01,A,B,250314,0700,1,,,2/\n02,B,A,1,250314,,USD,2/\n03,123,USD/\n16,165,100,0,R,C,TEXT\n",
         "cut short"),
        ("01,A,B,250314,0700,1,,,2/\n02,B,A,1,250314,,USD,2/\n03,123,USD/\n16,165,1O0,0,R,C/\n49,100,3/\n",
         "line 4: transaction amount is not an amount in cents"),
        ("01,A,B,250314,0700,1,,,2/\n16,165,100,0,R,C/\n99,0,0,2/\n", "line 2: a 16 record where a 99 record"),
        ("88,TEXT\n", "continuation (88) before any record"),
        ("01,A,B,251399,0700,1,,,2/\n", "file creation date is not a date"),
    ],
)
def test_unreadable_files_say_why(text: str, reason: str) -> None:
    with pytest.raises(BankFileError, match=re.escape(reason)):
        read_statement(text)


def test_ccd_plus_trace_found_across_continuations() -> None:
    text = (
        "01,BANK,CF01,250314,0700,1,80,,2/\n02,CF01,BANK,1,250314,2400,USD,2/\n03,7001234567,USD,010,0,,/\n"
        "16,165,1234567,0,B0001,,ACH CREDIT CCD+ ACME HEALTH TRN*1*EFT1001202503\n"
        "88,14000001*1512345678\\\n16,115,5000,0,B0002,CHK000123,LOCKBOX DEPOSIT/\n49,1239567,5/\n98,1239567,1,7/\n99,1239567,1,9/\n"
    )
    statement = read_statement(text.encode())
    assert statement.findings == []
    ach, check = statement.deposits
    assert (ach.trace_number, ach.trace_originator, ach.trace_source) == ("EFT100120250314000001", "1512345678", "addenda")
    assert (check.trace_number, check.trace_source) == ("CHK000123", "customer_reference")
    assert find_trace(["no trace here"]) == (None, None)
