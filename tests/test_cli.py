"""``carefabric`` command line: JSON on stdout, PHI masked, one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from decimal import Decimal
from pathlib import Path

import pytest

from carefabric import phi
from carefabric.cli import main

DFT = "\r".join(
    [
        "MSH|^~\\&|EPIC|F1|CF|CF|20240301083000||DFT^P03|DFT1|P|2.5",
        "PID|1||MRN77^^^F1^MR||DOE^JANE||19800101|F",
        "PV1|1|I|MEDSURG|||||||MED|||||||||V77",
        "FT1|1|T1||20240301||CG|CDM1001|||2|25.00^USD|12.50|LAB",
        "FT1|2|T2||20240301||CD|CDM1002|||1|80|80.00|LAB",
    ]
)
BAD = "\r".join(
    [
        "MSH|^~\\&|EPIC|F1|CF|CF|20240301083000||DFT^P03|DFT2|P|2.5",
        "PID|1||MRN78^^^F1^MR",
        "PV1|1|I|MEDSURG|||||||MED|||||||||V78",
        "FT1|1|T1||20240301||CG|CDM1001|||1|12,50",
    ]
)
ORU = "MSH|^~\\&|LAB|F1|CF|CF|20240301083000||ORU^R01|ORU1|P|2.5\rPID|1||MRN79^^^F1^MR"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, *messages: str, name: str = "f.hl7") -> Path:
    path = tmp_path / name
    path.write_bytes(("\r".join(messages) + "\r").encode())
    return path


def test_hl7_prints_canonical_json_with_phi_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "hl7", str(write(tmp_path, DFT, ORU)))
    assert code == 0 and err == ""
    doc = json.loads(out)
    dft, oru = doc["messages"]
    assert dft["status"] == "ok" and dft["message_type"] == "DFT^P03" and dft["control_id"] == "DFT1"
    enc = dft["encounter"]
    assert enc["encounter_id"] == "V77" and enc["message_time"] == "2024-03-01T08:30:00"
    assert enc["mrn_phi"] == enc["patient_name_phi"] == enc["birth_date_phi"] == "***"
    assert enc["patient_token"] == phi.token("MRN77", kind="mrn")
    assert [c["extended_amount"] for c in dft["charges"]] == ["25.00", "-80"]
    assert [c["quantity"] for c in dft["charges"]] == ["2", "-1"]
    assert (
        dft["charges"][0]["unit_amount"] == "12.50" and dft["charges"][0]["transaction_date"] == "2024-03-01"
    )
    assert "MRN77" not in out and "DOE" not in out and "19800101" not in out
    assert oru["status"] == "skipped" and "ORU^R01" in oru["skipped_reason"]
    assert doc["summary"] == {"messages": 2, "ok": 1, "skipped": 1, "error": 0, "batches": 0, "problems": []}


def test_hl7_show_phi(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "hl7", str(write(tmp_path, DFT)), "--show-phi")
    enc = json.loads(out)["messages"][0]["encounter"]
    assert code == 0
    assert (enc["mrn_phi"], enc["patient_name_phi"], enc["birth_date_phi"]) == (
        "MRN77",
        "DOE^JANE",
        "19800101",
    )


def test_hl7_bad_message_is_reported_and_the_file_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "hl7", str(write(tmp_path, BAD, DFT)))
    assert code == 1 and err == ""
    bad, good = json.loads(out)["messages"]
    assert bad["status"] == "error" and bad["control_id"] == "DFT2"
    assert "FT1 1: FT1-11 extended amount is not an HL7 number" in bad["error"] and "12,50" not in bad["error"]
    assert good["status"] == "ok"


def test_hl7_samples(samples_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "hl7", str(samples_dir / "hl7v2" / "vinah_batch_adt_a04.hl7"))
    (msg,) = json.loads(out)["messages"]
    assert code == 0 and msg["control_id"] == "12334456778890" and msg["encounter"]["encounter_id"] == ""
    assert msg["batch_control_id"] == "abchs20070101123401-1"
    code, out, _ = run(capsys, "hl7", str(samples_dir / "hl7v2" / "hl7_normative_oru_r01.hl7"))
    (msg,) = json.loads(out)["messages"]
    assert code == 0 and msg["status"] == "skipped" and msg["control_id"] == "CNTRL-3456"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "No such file or directory"),
        (b"", "empty file (0 bytes)"),
        (b"ISA*00*          *00~", "not an HL7 v2 file"),
        ("MSH|^~\\&|A".encode("utf-16"), "NUL bytes"),
    ],
)
def test_hl7_unusable_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, reason: str
) -> None:
    path = tmp_path / "in.hl7"
    if content is not None:
        path.write_bytes(content)
    code, out, err = run(capsys, "hl7", str(path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"carefabric: {path}: ") and reason in err


def test_hl7_directory_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "hl7", str(tmp_path))
    assert code == 2 and out == "" and err.startswith(f"carefabric: {tmp_path}: ") and err.count("\n") == 1


def test_no_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_console_process_never_prints_a_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "carefabric.cli", "hl7", str(tmp_path / "missing.hl7")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("carefabric: ") and proc.stderr.count("\n") == 1


# --------------------------------------------------------------------------- 835


def _fake_x12(monkeypatch: pytest.MonkeyPatch, fn) -> list[tuple[Path, bool]]:
    calls: list[tuple[Path, bool]] = []

    def file_summary(path: Path, *, show_phi: bool = False) -> dict:
        calls.append((Path(path), show_phi))
        return fn(path, show_phi)

    module = types.ModuleType("carefabric.x12.summary")
    module.file_summary = file_summary  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "carefabric.x12.summary", module)
    return calls


def test_835_prints_the_summary_dict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    path = tmp_path / "a.835"
    path.write_text("ISA*...")
    calls = _fake_x12(monkeypatch, lambda p, show: {"paid": Decimal("12.50"), "payer": "ACME", "phi": show})
    code, out, err = run(capsys, "835", str(path), "--show-phi")
    assert code == 0 and err == ""
    assert json.loads(out) == {"paid": "12.50", "payer": "ACME", "phi": True}
    assert calls == [(path, True)]
    run(capsys, "835", str(path))
    assert calls[-1] == (path, False)


def test_835_reader_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    path = tmp_path / "a.835"
    path.write_text("garbage")

    def boom(p, show):
        raise ValueError("ISA segment not found\nsecond line")

    _fake_x12(monkeypatch, boom)
    code, out, err = run(capsys, "835", str(path))
    assert code == 2 and out == "" and err == f"carefabric: {path}: ISA segment not found\n"


def test_835_missing_file(tmp_path: Path, capsys) -> None:
    code, out, err = run(capsys, "835", str(tmp_path / "none.835"))
    assert code == 2 and out == "" and err == f"carefabric: {tmp_path / 'none.835'}: no such file\n"


def test_835_real_sample(samples_dir: Path, capsys) -> None:
    pytest.importorskip("carefabric.x12.summary")
    code, out, err = run(capsys, "835", str(samples_dir / "x12_835" / "lfh_medicare_part_a.835"))
    assert code == 0, err
    assert isinstance(json.loads(out), dict)
