"""Synthetic, balanced 835 files for load tests and the reader benchmark.

Test data, so it lives in the sandbox, not in the product package. Not the scenario generator
(``sandbox.generator``, which computes its own ground truth): this only
makes big, valid-looking 005010X221A1 files with a known shape (claims, lines, totals) so tests
can check streaming memory and speed. Names and member ids are obviously fake.
"""

from __future__ import annotations

from decimal import Decimal
from typing import BinaryIO

_ISA = (
    "ISA*00*          *00*          *ZZ*PAYERSYNTH     *ZZ*CAREFABRIC     *240102*1200*^*00501*"
    "000000042*0*T*:~\n"
)


def write_835(
    out: BinaryIO,
    *,
    transactions: int = 1,
    claims_per_transaction: int = 100,
    lines_per_claim: int = 2,
) -> dict[str, int]:
    """Write a balanced 835 interchange to ``out``; return counts (transactions, claims, segments)."""
    out.write(_ISA.encode())
    out.write(b"GS*HP*PAYERSYNTH*CAREFABRIC*20240102*1200*42*X*005010X221A1~\n")
    claims_total = 0
    segments_total = 2
    line_charge = Decimal("125.00")
    line_paid = Decimal("80.00")
    line_co = Decimal("30.00")
    line_pr = Decimal("15.00")
    for t in range(1, transactions + 1):
        claim_charge = line_charge * lines_per_claim
        claim_paid = line_paid * lines_per_claim
        bpr = claim_paid * claims_per_transaction - Decimal("-2.50")  # PLB L6 interest -2.50
        body: list[str] = [
            f"ST*835*{t:09d}",
            f"BPR*I*{bpr}*C*ACH*CCP*01*999999999*DA*123456*1512345678**01*999988880*DA*98765*20240102",
            f"TRN*1*SYN{t:010d}*1512345678",
            "DTM*405*20240101",
            "N1*PR*SYNTHETIC PAYER*XV*PAYERSYNTH",
            "N3*1 MAIN STREET",
            "N4*ANYTOWN*AK*99501",
            "PER*BL*CLAIMS*TE*5555551234",
            "N1*PE*SYNTHETIC HOSPITAL*XX*1234567893",
            "LX*1",
        ]
        for c in range(1, claims_per_transaction + 1):
            claims_total += 1
            body.append(
                f"CLP*SYN{t:05d}C{c:06d}*1*{claim_charge}*{claim_paid}*{line_pr * lines_per_claim}*12*PCN{c:08d}"
            )
            body.append(f"NM1*QC*1*DOE*JANE****MI*M{c:09d}")
            body.append("DTM*232*20231215")
            for n in range(1, lines_per_claim + 1):
                body.append(f"SVC*HC:99213:25*{line_charge}*{line_paid}**1")
                body.append("DTM*472*20231215")
                body.append(f"CAS*CO*45*{line_co}")
                body.append(f"CAS*PR*2*{line_pr}")
                body.append(f"REF*6R*L{c:06d}{n:02d}")
                body.append(f"AMT*B6*{line_charge - line_co}")
        body.append("PLB*1234567893*20241231*L6:INT*-2.50")
        body.append(f"SE*{len(body) + 1}*{t:09d}")
        segments_total += len(body)
        out.write(("~\n".join(body) + "~\n").encode())
    out.write(f"GE*{transactions}*42~\nIEA*1*000000042~\n".encode())
    return {"transactions": transactions, "claims": claims_total, "segments": segments_total + 2}
