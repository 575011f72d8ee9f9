"""``carefabric 835``: one exit-code convention with the other readers (0 read, 1 read with
problems, 2 unreadable), reasons that name the cause, and ``--help`` that says so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from carefabric.cli import EXIT_CODES, main

EXTRA = Path(__file__).parent / "samples_extra" / "x12_835"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_read_balanced_file_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "835", str(EXTRA / "qrp_52192_LQ29_PBVA010119.835"))
    summary = json.loads(out)
    assert (code, err, summary["transaction_count"], summary["balanced"]) == (0, "", 4, True)


def test_unbalanced_file_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "835", str(EXTRA / "lfh_tertiary_payment.835"))
    summary = json.loads(out)
    assert (code, err, summary["readable"], summary["balanced"]) == (1, "", True, False)


def test_truncated_file_exits_1_with_the_cause(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = (EXTRA / "qrp_52192_LQ29_PBVA010119.835").read_bytes()
    path = tmp_path / "cut.835"
    path.write_bytes(data[: data.index(b"ST*835*0019")])
    code, out, err = run(capsys, "835", str(path))
    summary = json.loads(out)
    assert (code, err, summary["transaction_count"], summary["readable"]) == (1, "", 2, False)
    assert [e["reason"] for e in summary["errors"]] == [
        "file ends after segment 70 with no GE for group 1 (truncated)",
        "file ends after segment 70 with no IEA for interchange 100332268 (truncated)",
    ]


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty file: no ISA segment"),
    (b"\xff\xfeI\x00S\x00A\x00", "file is UTF-16 encoded: X12 is 8-bit text (re-save it as ASCII or UTF-8)"),
    (b"MSH|^~\\&|EPIC|F1\r", "not an X12 interchange: file does not start with ISA (looks like HL7 v2)"),
])
def test_unreadable_file_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               data: bytes, reason: str) -> None:
    path = tmp_path / "bad.835"
    path.write_bytes(data)
    assert run(capsys, "835", str(path)) == (2, "", f"carefabric: {path}: {reason}\n")


def test_other_delimiters_than_declared_is_named_not_truncated(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    data = (EXTRA / "lfh_secondary_payment.835").read_bytes()
    path = tmp_path / "pipes.835"
    path.write_bytes(data[:106] + data[106:].replace(b"*", b"|"))
    code, out, err = run(capsys, "835", str(path))
    assert (code, out) == (2, "")
    assert err == (f"carefabric: {path}: segment 2: segment id GS is followed by '|' instead of the element "
                   "separator '*' the ISA declares, outside any transaction set\n")


def test_no_transaction_set_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = (EXTRA / "qrp_52106_LQ43_P1VA010118.835").read_bytes()
    path = tmp_path / "empty_group.835"
    path.write_bytes(data[: data.index(b"ST*")] + b"GE*0*1~IEA*1*100317820~")
    assert run(capsys, "835", str(path)) == (
        2, "", f"carefabric: {path}: no 835 transaction set (ST..SE) in the interchange\n")


def test_help_documents_the_exit_codes() -> None:
    done = subprocess.run([sys.executable, "-m", "carefabric.cli", "--help"], capture_output=True, text=True,
                          check=True)
    assert EXIT_CODES in done.stdout
    assert "0  read" in EXIT_CODES and "1  read with problems" in EXIT_CODES and "2  unreadable" in EXIT_CODES
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    operating = readme.split("## Operating it", 1)[1].split("\n## ", 1)[0]
    assert "exit 0" in operating and "exit 1" in operating and "exit 2" in operating
