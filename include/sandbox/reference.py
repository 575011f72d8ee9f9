"""The reference hospital: the fixed world every generated scenario happens in.

A network of facilities ``F1..Fn`` of one company ``CF01`` with the same six departments, one
chart of accounts, one chargemaster (CDM) and three payers. The generator draws encounters,
charges and remittances from this module; the ERP master data, the crosswalk CSVs and the
ground truth are all derived from it, so one definition keeps them consistent with each other.

The module also holds the small scenario records (patients, encounters, charge lines) that the
generator, the file writers and the ground truth share. They live here rather than in
``generator.py`` so the writers can import them without an import cycle.

The deliberate faults of the scenario are named here too (``UNKNOWN_CDM``, ``UNKNOWN_PAYER``,
``inactive_cost_center``), so the writers, the crosswalks and the ground truth agree on them.

Money is integer cents throughout (``*_cents``); ``carefabric.money.format_cents`` renders it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

COMPANY = "CF01"
COMPANY_NAME = "CareFabric Health Network"
CURRENCY = "USD"

DEPARTMENTS: tuple[str, ...] = ("ED", "LAB", "RAD", "PHARM", "SURG", "MEDSURG")
DEPARTMENT_NAMES: dict[str, str] = {
    "ED": "Emergency Department",
    "LAB": "Laboratory",
    "RAD": "Radiology",
    "PHARM": "Pharmacy",
    "SURG": "Surgery",
    "MEDSURG": "Medical/Surgical Unit",
}

# Chart of accounts: (account, name, type). All active.
GL_ACCOUNTS: tuple[tuple[str, str, str], ...] = (
    ("1010", "Cash clearing", "asset"),
    ("1200", "Patient AR - insurance", "asset"),
    ("1210", "Self-pay AR", "asset"),
    ("1400", "Inventory", "asset"),
    ("4000", "Gross revenue - ED", "revenue"),
    ("4010", "Gross revenue - Lab", "revenue"),
    ("4020", "Gross revenue - Radiology", "revenue"),
    ("4030", "Gross revenue - Pharmacy", "revenue"),
    ("4040", "Gross revenue - Surgery", "revenue"),
    ("4050", "Gross revenue - Room and board", "revenue"),
    ("4060", "Gross revenue - Supplies", "revenue"),
    ("4900", "Contractual allowance", "contra_revenue"),
    ("4910", "Denial write-off", "contra_revenue"),
    ("6500", "Supply expense", "expense"),
    ("7100", "Interest income", "revenue"),
)

ACCOUNT_CASH = "1010"
ACCOUNT_AR_INSURANCE = "1200"
ACCOUNT_AR_SELF_PAY = "1210"
ACCOUNT_INVENTORY = "1400"
ACCOUNT_CONTRACTUAL = "4900"
ACCOUNT_DENIAL = "4910"
ACCOUNT_SUPPLY_EXPENSE = "6500"
ACCOUNT_INTEREST = "7100"


@dataclass(frozen=True, slots=True)
class Facility:
    """One hospital of the network: its code (MSH-4, PV1-39), NPI (835 payee) and stock room."""

    code: str
    name: str
    npi: str
    location: str
    city: str


@dataclass(frozen=True, slots=True)
class CdmEntry:
    """One chargemaster line. ``erp_item`` is set for supplies (the line also consumes stock)."""

    code: str
    description: str
    department: str  # the department that usually charges it (FT1-13)
    revenue_account: str
    procedure_code: str  # CPT/HCPCS (FT1-25, SVC01 HC:); "" for room and board (SVC01 NU:rev code)
    revenue_code: str  # UB-04 revenue code (SVC04)
    price_cents: int
    erp_item: str | None = None
    unit_cost_cents: int | None = None


@dataclass(frozen=True, slots=True)
class Payer:
    """A payer as the ERP knows it (``payer_id``) and as its 835s name it (``x12_id``)."""

    payer_id: str
    name: str
    x12_id: str  # 10 characters: N1*PR XV, REF*2U and TRN03
    allowed_bp: int  # allowed amount as basis points of the charge
    filing_indicator: str  # CLP06 (835 code list: 12 PPO, HM HMO, MB Medicare B ...); also PV1-20
    plan_code: str  # IN1-2


CHARGEMASTER: tuple[CdmEntry, ...] = (
    CdmEntry("CDM1001", "ED VISIT LEVEL 3", "ED", "4000", "99283", "0450", 35000),
    CdmEntry("CDM1002", "ED VISIT LEVEL 4", "ED", "4000", "99284", "0450", 62500),
    CdmEntry("CDM1003", "ED VISIT LEVEL 5", "ED", "4000", "99285", "0450", 98000),
    CdmEntry("CDM2001", "CBC W/AUTO DIFF", "LAB", "4010", "85025", "0300", 4800),
    CdmEntry("CDM2002", "COMPREHENSIVE METABOLIC PANEL", "LAB", "4010", "80053", "0301", 7250),
    CdmEntry("CDM2003", "LIPID PANEL", "LAB", "4010", "80061", "0301", 6400),
    CdmEntry("CDM2004", "PT & INR", "LAB", "4010", "85610", "0305", 3125),
    CdmEntry("CDM2005", "TROPONIN I", "LAB", "4010", "84484", "0301", 8800),
    CdmEntry("CDM3001", "XR CHEST 2 VIEWS PA & LAT", "RAD", "4020", "71046", "0324", 21000),
    CdmEntry("CDM3002", "CT HEAD W/O CONTRAST", "RAD", "4020", "70450", "0350", 115000),
    CdmEntry("CDM3003", "US ABDOMEN COMPLETE", "RAD", "4020", "76700", "0402", 54000),
    CdmEntry("CDM4001", "ONDANSETRON 4MG INJ", "PHARM", "4030", "J2405", "0636", 1875),
    CdmEntry("CDM4002", "CEFTRIAXONE 1G INJ", "PHARM", "4030", "J0696", "0636", 4210),
    CdmEntry("CDM4003", "IV INFUSION FIRST HOUR", "PHARM", "4030", "96365", "0260", 18500),
    CdmEntry("CDM5001", "REPAIR INGUINAL HERNIA", "SURG", "4040", "49505", "0360", 420000),
    CdmEntry("CDM5002", "LAP CHOLECYSTECTOMY", "SURG", "4040", "47562", "0360", 785000),
    CdmEntry("CDM6001", "ROOM & BOARD MED/SURG SEMI-PVT", "MEDSURG", "4050", "", "0120", 165000),
    CdmEntry("CDM6002", "OBSERVATION PER HOUR", "MEDSURG", "4050", "G0378", "0762", 9500),
    CdmEntry("CDM7001", "SUTURE KIT", "ED", "4060", "A4550", "0270", 3800, "ITM-1001", 640),
    CdmEntry("CDM7002", "IV START KIT", "ED", "4060", "A4221", "0270", 2400, "ITM-1002", 315),
    CdmEntry("CDM7003", "FOLEY CATHETER TRAY", "MEDSURG", "4060", "A4354", "0272", 8500, "ITM-1003", 1180),
    CdmEntry("CDM7004", "SURGICAL GLOVES STERILE PR", "SURG", "4060", "A4930", "0272", 950, "ITM-1004", 95),
    CdmEntry("CDM7005", "WOUND DRESSING 4X4", "SURG", "4060", "A6402", "0272", 1275, "ITM-1005", 125),
)
CDM_BY_CODE: dict[str, CdmEntry] = {entry.code: entry for entry in CHARGEMASTER}

#: Fault: a new lab test the EHR started charging before anyone added it to the CDM crosswalk.
#: It is not in ``crosswalks/cdm.csv``; ``after_fix`` in the ground truth adds it with 4010.
UNKNOWN_CDM = CdmEntry("CDM2099", "HEMOGLOBIN A1C", "LAB", "4010", "83036", "0301", 4500)

PAYERS: tuple[Payer, ...] = (
    Payer("PAYER-ACME", "ACME HEALTH PLAN", "1363421001", 6200, "12", "ACMEPPO"),
    Payer("PAYER-MEDICARE", "MEDICARE PART A AND B", "1004412001", 4500, "MB", "MCRAB"),
    Payer("PAYER-BLUE", "BLUE SHIELD OF THE VALLEY", "1006009001", 5500, "HM", "BSVHMO"),
)
PAYER_BY_ID: dict[str, Payer] = {payer.payer_id: payer for payer in PAYERS}

#: Fault: a payer that sends an 835 but is in neither ``payers.csv`` nor the ERP master.
UNKNOWN_PAYER = Payer("PAYER-ZENITH", "ZENITH MUTUAL HEALTH", "1999451001", 5000, "12", "ZENPPO")

# Names of the sample population (fictional; upper case as EHR feeds send them).
FAMILY_NAMES: tuple[str, ...] = (
    "SMITH",
    "JOHNSON",
    "WILLIAMS",
    "BROWN",
    "JONES",
    "GARCIA",
    "MILLER",
    "DAVIS",
    "RODRIGUEZ",
    "MARTINEZ",
    "HERNANDEZ",
    "LOPEZ",
    "GONZALEZ",
    "WILSON",
    "ANDERSON",
    "THOMAS",
    "TAYLOR",
    "MOORE",
    "JACKSON",
    "MARTIN",
    "LEE",
    "PEREZ",
    "THOMPSON",
    "WHITE",
    "HARRIS",
    "SANCHEZ",
    "CLARK",
    "RAMIREZ",
    "LEWIS",
    "ROBINSON",
    "WALKER",
    "YOUNG",
    "ALLEN",
    "KING",
    "WRIGHT",
    "SCOTT",
    "TORRES",
    "NGUYEN",
    "HILL",
    "FLORES",
    "OBRIEN",
    "VAN DER BERG",
    "MCALLISTER",
)
GIVEN_NAMES: tuple[str, ...] = (
    "JAMES",
    "MARY",
    "ROBERT",
    "PATRICIA",
    "JOHN",
    "JENNIFER",
    "MICHAEL",
    "LINDA",
    "DAVID",
    "ELIZABETH",
    "WILLIAM",
    "BARBARA",
    "RICHARD",
    "SUSAN",
    "JOSEPH",
    "JESSICA",
    "THOMAS",
    "SARAH",
    "CHARLES",
    "KAREN",
    "MARIA",
    "LUIS",
    "ANA",
    "WEI",
    "PRIYA",
    "OMAR",
    "FATIMA",
)
STREETS: tuple[str, ...] = ("MAIN ST", "OAK AVE", "PINE RD", "MAPLE DR", "CEDAR LN", "ELM ST", "LAKE BLVD")
CITIES: tuple[str, ...] = ("SPRINGFIELD", "RIVERTON", "FAIRVIEW", "GREENVILLE", "MADISON", "CLINTON")
ATTENDINGS: tuple[tuple[str, str, str], ...] = (
    ("1427001", "CHEN", "LISA"),
    ("1427002", "OKAFOR", "DANIEL"),
    ("1427003", "RUIZ", "ELENA"),
    ("1427004", "SCHMIDT", "PAUL"),
    ("1427005", "PATEL", "ANIL"),
)


def _npi_check_digit(base9: str) -> str:
    """Luhn check digit of an NPI (computed over the prefix 80840 + the first nine digits)."""
    digits = [int(ch) for ch in "80840" + base9]
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def facility(number: int) -> Facility:
    """Facility ``F<number>`` with a valid-looking NPI, so payee lookups see a real NPI shape."""
    base9 = f"1{number:03d}{number * 7919 % 100000:05d}"
    return Facility(
        code=f"F{number}",
        name=f"CAREFABRIC HOSPITAL {number}",
        npi=base9 + _npi_check_digit(base9),
        location=f"INV-F{number}",
        city=CITIES[(number - 1) % len(CITIES)],
    )


def facilities(count: int) -> list[Facility]:
    """Facilities ``F1..F<count>``."""
    return [facility(number) for number in range(1, count + 1)]


def cost_center(facility_code: str, department: str) -> str:
    """The ERP cost center of a facility's department (``CC-F1-LAB``)."""
    return f"CC-{facility_code}-{department}"


def fault_facility(facility_codes: list[str], preferred: int) -> str:
    """The facility a fault is placed at: ``F<preferred>``, or the last one if there are fewer."""
    return facility_codes[min(preferred, len(facility_codes)) - 1]


def inactive_cost_center_fault(facility_codes: list[str]) -> tuple[str, str, str]:
    """Fault: ``(facility, department, cost_center)`` whose crosswalk points at a retired cost center.

    The ERP reorganized pharmacy at this facility into a new cost center and marked the old one
    inactive; ``departments.csv`` was not updated, so every PHARM line there must raise
    ``INACTIVE_COST_CENTER``.
    """
    fac = fault_facility(facility_codes, 2)
    return fac, "PHARM", f"{cost_center(fac, 'PHARM')}-OLD"


# --------------------------------------------------------------------------- scenario records


@dataclass(slots=True)
class Patient:
    """A patient of the scenario. Everything but ``token`` is PHI and stays in the EHR files."""

    mrn: str
    enterprise_id: str
    family: str
    given: str
    middle: str
    birth_date: dt.date
    sex: str
    street: str
    city: str
    zip_code: str
    member_id: str
    token: str


@dataclass(slots=True)
class ChargeLine:
    """One FT1 line or FHIR ChargeItem as the EHR sends it.

    ``extended_cents`` and ``quantity`` are signed: a ``CD`` credit carries both negative
    (``unsigned``: the HL7 writer sends them positive under ``CD``). ``quantity`` may be a
    ``Decimal`` fraction (``extended_cents`` is then rounded half up).
    """

    transaction_id: str
    service_date: dt.date
    transaction_type: str  # CG or CD
    cdm: CdmEntry
    quantity: int | Decimal
    unit_cents: int
    extended_cents: int
    department: str
    unsigned: bool = False
    set_id: int = 0  # FT1-1 within its message
    message_control_id: str | None = None  # MSH-10 of the DFT^P03 that carried it (None: FHIR/malformed)

    @property
    def is_supply(self) -> bool:
        return self.cdm.erp_item is not None


@dataclass(slots=True)
class Encounter:
    """One visit of the business day, with the charge messages it produced."""

    encounter_id: str
    facility: Facility
    patient: Patient
    patient_class: str  # E, O or I
    hospital_service: str
    point_of_care: str
    attending: tuple[str, str, str]
    payer: Payer
    admit_time: dt.datetime
    discharge_time: dt.datetime | None
    service_date: dt.date
    channel: str = "hl7"  # "hl7" or "fhir"
    charges: list[ChargeLine] = field(default_factory=list)  # first DFT^P03
    credits: list[ChargeLine] = field(default_factory=list)  # a later DFT^P03 with CD lines
    updated: bool = False  # an ADT^A08 follows the registration
    malformed_dft: bool = False  # fault: the first DFT^P03's MSH is truncated
