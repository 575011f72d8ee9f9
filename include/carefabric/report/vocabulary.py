"""What the finance email calls things: check labels and rules, side labels, and what each
exception reason means for finance. One home, so the email, its CSV and the console say the same."""

from __future__ import annotations

CHECK_ORDER: tuple[str, ...] = ("charges", "revenue", "claims", "remittance", "cash", "bank", "ledger", "integrity",
                                 "rollforward")
CHECK_LABELS: dict[str, str] = {
    "charges": "Charges",
    "revenue": "Revenue posted",
    "remittance": "Remittance in the GL",
    "claims": "Claims",
    "cash": "Cash",
    "ledger": "Ledger",
    "integrity": "ERP documents",
    "bank": "Bank",
    "rollforward": "AR roll-forward",
}
CHECK_RULES: dict[str, str] = {
    "charges": "EHR charges captured = billing accepted charges, per charge line over a window of days "
               "(a late charge billed under an earlier service date is timing)",
    "revenue": "EHR charges captured = GL gross revenue, per revenue account, cost center, facility and day",
    "remittance": "835 paid, adjustments by group code (CO/OA/PI/PR) and PLB by reason = the ERP's REMIT lines, "
                  "per facility and account (debits shown)",
    "claims": "Billing claim payments = 835 CLP04 paid, per claim (CLP01) and payer (AR relief is checked in the ledger)",
    "cash": "835 BPR02 per EFT trace of the posted remittances = the ERP's cash receipt",
    "ledger": "carefabric's postings = the ERP ledger read back, per account, cost center, facility and day (debits shown)",
    "bank": "every 835 payment received = the bank statement's deposit, per EFT trace",
    "rollforward": "opening AR (ERP) + what carefabric posted = closing AR (ERP), per facility",
    "integrity": "each document carefabric posted is in the ERP unchanged and once; nothing else posted for the day",
}
# reconciliation_items columns (carefabric.store.models.recon) -> the names used here.
STORE_COLUMN_ALIASES: dict[str, str] = {"check_name": "check", "item_key": "key"}
SIDE_ORDER: tuple[str, ...] = ("ehr", "billing", "remit", "bank", "carefabric", "gl", "receipt")
SIDE_LABELS: dict[str, str] = {"ehr": "EHR", "billing": "Billing", "remit": "835 remit", "bank": "Bank",
                               "carefabric": "carefabric posted", "gl": "GL (ERP)", "receipt": "ERP receipt"}

# What each exception reason means for finance and what fixes it (CONTRACTS.md reason codes).
REASON_HELP: dict[str, str] = {
    "HL7_PARSE_ERROR": "EHR message could not be parsed; the rest of its file was processed",
    "UNKNOWN_CDM": "charge code not in the CDM crosswalk; add it (crosswalk set cdm) and replay",
    "UNKNOWN_DEPARTMENT": "department not in the department crosswalk; map it and replay",
    "INACTIVE_COST_CENTER": "department maps to an inactive ERP cost center; remap or reactivate, replay",
    "UNKNOWN_PAYER": "835 from a payer not in the payer crosswalk; nothing from the file posted",
    "UNKNOWN_FACILITY": "facility or payee NPI not in the facility crosswalk",
    "DUPLICATE_INTERCHANGE": "835 already received under another name; not posted twice",
    "DUPLICATE_PAYMENT": "payment (payer, trace, amount) already received under other envelope numbers; not posted twice",
    "TRACE_REUSED": "a known payer trace number carries another amount or date; held until someone decides",
    "REMIT_UNBALANCED": "835 totals do not balance; nothing from it posted",
    "X12_UNREADABLE": "835 envelope unreadable",
    "FHIR_PARSE_ERROR": "FHIR resource could not be parsed",
    "FHIR_CHARGE_STATUS": "ChargeItem with a status that is not a charge decision (unknown); ask the EHR team",
    "FHIR_INVALID_PRICE": "ChargeItem price in another currency or beyond belief; nothing from it posts",
    "FHIR_UNPRICED_CHARGE": "ChargeItem without a price and no chargemaster price; set the CDM price and replay",
    "FHIR_REVERSAL_UNMATCHED": "ChargeItem entered-in-error with no posted charge to reverse; review and discard",
    "FHIR_MISSING_PAYOR": "Coverage without a payor; the encounter's payer is unknown",
    "ERP_REJECTED": "ERP rejected a posting (see the exception for the ERP error code)",
    "ERP_UNCONFIRMED": "the ERP was unavailable; the document is looked up and sent by the next run",
    "GX_VALIDATION_FAILED": "a data set failed its quality checks (see Data quality)",
    "ERP_UNAVAILABLE": "ERP did not answer after retries; will post on replay",
    "BILLING_UNAVAILABLE": "billing platform did not answer after retries",
    "SFTP_UNAVAILABLE": "payer SFTP did not answer after retries",
}
