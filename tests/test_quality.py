"""Great Expectations suites on the canonical frames: good data passes, each defect fails by name."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pandas as pd
import pytest

from carefabric.quality import (
    SUITES,
    ExpectationSpec,
    QualityResult,
    is_phi_column,
    suite_for,
    validate_frame,
)


def charges_frame(n: int = 20) -> pd.DataFrame:
    """Charges as the mapper flattens them: one row per FT1 line, amounts in integer cents."""
    return pd.DataFrame(
        {
            "line_key": [f"EPIC|F1|MSG{i:06d}|1" for i in range(n)],
            "facility": ["F1"] * n,
            "encounter_id": [f"ENC{i % 7:05d}" for i in range(n)],
            "transaction_date": [dt.date(2026, 11, 23)] * n,
            "transaction_type": ["CG" if i % 5 else "CD" for i in range(n)],
            "cdm_code": [f"CDM{1000 + i % 9}" for i in range(n)],
            "quantity": [1] * n,
            "amount_cents": [(-1 if i % 5 == 0 else 1) * (1250 + i) for i in range(n)],
            "department": [("ED", "LAB", "RAD", "PHARM")[i % 4] for i in range(n)],
        }
    )


def failed_labels(result: QualityResult) -> set[tuple[str, str | None]]:
    return {(f.expectation_type, f.column) for f in result.failures}


def test_good_charges_pass() -> None:
    result = validate_frame("charges", charges_frame())
    assert result.success, result.summary()
    assert result.failed == 0
    assert result.evaluated == len(SUITES["charges"])
    assert result.rows == 20
    # Results come back in suite order, whatever order GX ran them in.
    assert [(o.expectation_type, o.column) for o in result.results] == [
        (s.type, s.column) for s in SUITES["charges"]
    ]


def _null_encounter(df: pd.DataFrame) -> None:
    df.loc[3, "encounter_id"] = None


def _duplicate_line_key(df: pd.DataFrame) -> None:
    df.loc[4, "line_key"] = df.loc[2, "line_key"]


def _bad_transaction_type(df: pd.DataFrame) -> None:
    df.loc[1, "transaction_type"] = "XX"


def _amount_out_of_range(df: pd.DataFrame) -> None:
    df.loc[6, "amount_cents"] = 10_000_001


def _cdm_with_symbol(df: pd.DataFrame) -> None:
    # code-shaped, so it is shown as a sample; "CDM 1001" (a space, like a name) is only counted
    df.loc[0, "cdm_code"] = "CDM#1001"


def _null_department(df: pd.DataFrame) -> None:
    df.loc[2, "department"] = None


@pytest.mark.parametrize(
    ("defect", "expectation", "column", "unexpected_count", "sample"),
    [
        (_null_encounter, "expect_column_values_to_not_be_null", "encounter_id", 1, None),
        (_duplicate_line_key, "expect_column_values_to_be_unique", "line_key", 2, "EPIC|F1|MSG000002|1"),
        (_bad_transaction_type, "expect_column_values_to_be_in_set", "transaction_type", 1, "XX"),
        (_amount_out_of_range, "expect_column_values_to_be_between", "amount_cents", 1, 10_000_001),
        (_cdm_with_symbol, "expect_column_values_to_match_regex", "cdm_code", 1, "CDM#1001"),
        (_null_department, "expect_column_values_to_not_be_null", "department", 1, None),
    ],
    ids=[
        "null",
        "duplicate_line_key",
        "bad_transaction_type",
        "amount_out_of_range",
        "cdm_regex",
        "null_dept",
    ],
)
def test_each_defect_fails_naming_expectation_and_column(
    defect, expectation: str, column: str, unexpected_count: int, sample
) -> None:
    df = charges_frame()
    defect(df)
    result = validate_frame("charges", df)
    assert not result.success
    assert failed_labels(result) == {(expectation, column)}, result.summary()
    (failure,) = result.failures
    assert failure.unexpected_count == unexpected_count
    assert f"{expectation}({column})" in result.summary()
    if sample is not None:
        assert sample in failure.unexpected_values


def test_amounts_as_floats_fail_the_integer_cents_rule() -> None:
    df = charges_frame()
    df["amount_cents"] = df["amount_cents"].astype(float)  # someone skipped money.to_cents
    result = validate_frame("charges", df)
    assert ("expect_column_values_to_be_in_type_list", "amount_cents") in failed_labels(result)


def test_missing_column_is_a_named_failure_not_a_crash() -> None:
    df = charges_frame().drop(columns=["department"])
    result = validate_frame("charges", df)
    assert not result.success
    assert ("expect_column_to_exist", "department") in failed_labels(result)
    not_null = next(o for o in result.results if o.label == "expect_column_values_to_not_be_null(department)")
    assert not not_null.success and "department" in (not_null.error or "")


def test_result_is_json_serializable_and_round_trips() -> None:
    df = charges_frame()
    _null_encounter(df)
    _duplicate_line_key(df)
    df["transaction_date"] = pd.to_datetime(df["transaction_date"])
    result = validate_frame("charges", df)
    text = json.dumps(result.to_dict(), allow_nan=False)  # no NaN, numpy scalars or dates left
    back = QualityResult.from_dict(json.loads(text))
    assert back == result
    assert QualityResult.coerce(json.loads(text)) == result


def test_phi_column_values_never_kept() -> None:
    df = pd.DataFrame({"patient_name_phi": ["DOE^JANE", "ROE^RICHARD"], "status": ["1", "99"]})
    specs = [
        ExpectationSpec("expect_column_values_to_be_in_set", "patient_name_phi", {"value_set": ["X"]}),
        ExpectationSpec("expect_column_values_to_be_in_set", "status", {"value_set": ["1"]}),
    ]
    result = validate_frame("adhoc", df, specs=specs)
    phi, status = result.results
    assert phi.unexpected_count == 2 and phi.unexpected_values == []
    assert status.unexpected_values == ["99"]
    assert "DOE" not in json.dumps(result.to_dict())


@pytest.mark.parametrize(
    "column", ["patient_name", "member_id_phi", "mrn", "birth_date_phi", "DOB", "patient_token"]
)
def test_is_phi_column(column: str) -> None:
    assert is_phi_column(column)


@pytest.mark.parametrize("column", ["line_key", "amount_cents", "cdm_code", "trace_number", None])
def test_is_not_phi_column(column: str | None) -> None:
    assert not is_phi_column(column)


def test_encounters_suite() -> None:
    good = pd.DataFrame(
        {"encounter_id": ["E1", "E2", "E3"], "event_type": ["A01", "P03", "finished"], "facility": ["F1"] * 3}
    )
    assert validate_frame("encounters", good).success
    bad = good.assign(event_type=["A01", "ORU", "finished"])
    assert failed_labels(validate_frame("encounters", bad)) == {
        ("expect_column_values_to_be_in_set", "event_type")
    }


def test_remit_claims_suite() -> None:
    good = pd.DataFrame(
        {
            "patient_control_number": ["CLM1", "CLM2", "CLM3"],
            "status": ["1", "4", "22"],
            "charge_cents": [10000, 5000, -10000],
            "paid_cents": [8000, 0, -8000],
        }
    )
    assert validate_frame("remit_claims", good).success
    bad = good.assign(status=["1", "5", "22"], paid_cents=[8000, None, -8000])
    assert failed_labels(validate_frame("remit_claims", bad)) == {
        ("expect_column_values_to_be_in_set", "status"),
        ("expect_column_values_to_not_be_null", "paid_cents"),
    }


def test_remittances_suite() -> None:
    good = pd.DataFrame(
        {"trace_number": ["EFT1", "EFT2"], "payment_cents": [8000, 120], "balanced": [True, True]}
    )
    assert validate_frame("remittances", good).success
    bad = good.assign(balanced=[True, False])
    result = validate_frame("remittances", bad)
    assert failed_labels(result) == {("expect_column_values_to_be_in_set", "balanced")}
    assert result.failures[0].unexpected_values == [False]


def test_unknown_dataset() -> None:
    with pytest.raises(KeyError, match="known"):
        suite_for("nope")


def test_ten_thousand_rows_validate_as_one_frame() -> None:
    """GX is called once per frame, never per record: a 10k-row frame is one validation run.

    How long it takes is measured by ``make bench``, not asserted here.
    """
    result = validate_frame("charges", charges_frame(10_000))
    assert result.success, result.summary()
    assert result.rows == 10_000


def test_package_import_stays_light() -> None:
    """DAGs import carefabric.quality and carefabric.report at parse time: no GX, pandas, mpl."""
    code = (
        "import sys, carefabric.quality, carefabric.report;"
        "heavy = [m for m in ('great_expectations', 'pandas', 'matplotlib', 'jinja2') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
