"""The fast readers agree with the reference libraries on every file the generator writes.

The parser tests pin the public samples and hand-built messages; this module runs the same
cross-checks over a whole generated day: every HL7 message (every field the canonical mapping
reads, against hl7apy and python-hl7) and every 835 file (claim ids, CLP04 and CAS totals per
claim, PLB amounts, against pyx12's X12ContextReader).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_hl7_reader import crosscheck
from test_x12_reader import _pyx12_view

from carefabric.hl7 import HL7ParseError, iter_messages, parse, to_canonical
from carefabric.x12 import read_file


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sandbox.generator import main as generate

    out = tmp_path_factory.mktemp("generated")
    assert generate(["--seed", "11", "--encounters", "30", "--facilities", "3", "--date", "2026-11-20", "--out", str(out)]) == 0
    return out


def test_every_generated_hl7_message_matches_hl7apy_and_python_hl7(day: Path) -> None:
    checked = refused = 0
    for path in sorted((day / "ehr").glob("*.hl7")):
        for raw in iter_messages(path):
            try:
                parsed = parse(raw)
                result = to_canonical(parsed)
            except HL7ParseError:
                refused += 1  # the generator's one malformed message
                continue
            if result.encounter is None:
                continue
            crosscheck(raw.text, parsed.delims, result, parsed)
            checked += 1
    assert refused == 1
    assert checked > 60


def test_every_generated_835_matches_pyx12(day: Path) -> None:
    files = sorted((day / "sftp").glob("*/*.835"))
    assert len(files) >= 10
    for path in files:
        result = read_file(path)
        assert result.ok, path.name
        ours = [
            (
                c.patient_control_number,
                c.paid,
                sum((a.amount for a in c.adjustments), 0) + sum((a.amount for line in c.lines for a in line.adjustments), 0),
            )
            for r in result.remittances
            for c in r.claims
        ]
        theirs, plb = _pyx12_view(path)
        assert ours == theirs, path.name
        assert [p.amount for r in result.remittances for p in r.provider_adjustments] == plb, path.name
