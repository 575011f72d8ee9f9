"""Fuzzing the 835 reader with mutants of real files (tests/samples_extra/x12_835 and the shared
samples): truncation, byte flips, delimiter swaps, BOM, UTF-16, NUL bytes, huge fields, missing
trailers, and a digit changed in an amount.

For every mutant: no exception but ``X12Error`` (no traceback, from the reader or from
``carefabric 835``), no hang (each read is timed), and no changed money figure accepted: when a
mutant reads without an error and balances, every posting figure (BPR02 signed by BPR03, CLP03,
CLP04, SVC02, SVC03, CAS amounts per group, PLB amounts) equals the original's, transaction by
transaction. CLP05, AMT and quantities are not compared: no balancing rule covers them and
nothing posts from them. The seed is fixed, so a failure names a reproducible mutant.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from carefabric.canonical import Adjustment, Remittance
from carefabric.cli import main
from carefabric.x12 import X12Error, read_file

EXTRA = Path(__file__).parent / "samples_extra" / "x12_835"
SEED = 835
PER_FILE = 22  # x 17 files = 374 mutants
MAX_SECONDS_PER_READ = 2.0
_MONEY = {b"BPR": (2,), b"CLP": (3, 4), b"SVC": (2, 3), b"CAS": (3, 6, 9, 12, 15, 18), b"PLB": (4, 6, 8, 10, 12, 14)}


def _sources(samples_dir: Path) -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in sorted(EXTRA.glob("*.835"))}
    for name in ("lfh_medicare_part_a.835", "pyx12_835_simple_4010.835"):
        files[name] = (samples_dir / "x12_835" / name).read_bytes()
    return files


# --------------------------------------------------------------------------- mutations


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))]


def _flip(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def _swap_delimiter(rng: random.Random, data: bytes) -> bytes:
    old, new = rng.choice([(b"*", b"|"), (b"~", b"\n"), (b"*", b"~"), (b"~", b"*"), (b":", b">"), (b">", b":")])
    start = 106 if rng.random() < 0.7 else 0  # usually the body only, sometimes the ISA too
    body = data[start:]
    if rng.random() < 0.5:  # every occurrence, or only one
        body = body.replace(old, new)
    elif old in body:
        i = rng.choice([i for i in range(len(body)) if body[i : i + 1] == old])
        body = body[:i] + new + body[i + 1 :]
    return data[:start] + body


def _encoding(rng: random.Random, data: bytes) -> bytes:
    kind = rng.choice(["bom", "utf16", "utf16-nobom", "nul-inside", "nul-tail"])
    if kind == "bom":
        return b"\xef\xbb\xbf" + data
    if kind == "utf16":
        return data.decode("latin-1").encode("utf-16")
    if kind == "utf16-nobom":
        return data.decode("latin-1").encode("utf-16-le")
    i = rng.randrange(len(data)) if kind == "nul-inside" else len(data)
    return data[:i] + b"\x00" * rng.randint(1, 64) + data[i:]


def _huge_field(rng: random.Random, data: bytes) -> bytes:
    size = rng.choice([20_000, 300_000, 2_000_000])
    stars = [i for i in range(106, len(data)) if data[i : i + 1] == b"*"]
    i = rng.choice(stars) + 1
    return data[:i] + rng.choice([b"9", b"A", b" "]) * size + data[i:]


def _drop_trailer(rng: random.Random, data: bytes) -> bytes:
    seg = rng.choice([b"SE*", b"GE*", b"IEA*"])
    starts = [i for i in range(len(data)) if data.startswith(seg, i) and (i == 0 or data[i - 1 : i] in b"~\n")]
    if not starts:
        return data[:-5]
    i = rng.choice(starts)
    end = data.find(b"~", i)
    return data[:i] + (data[end + 1 :] if end >= 0 else b"")


def _amount_digit(rng: random.Random, data: bytes) -> bytes:
    """One digit of one posting amount changed (the mutation balancing must always catch)."""
    term = data[105:106] if len(data) > 106 else b"~"
    segments = data.split(term)
    spots = [(s, e) for s, seg in enumerate(segments) for sid, idx in _MONEY.items()
             if seg.strip().startswith(sid + b"*") for e in idx
             if len(seg.strip().split(b"*")) > e and any(c in b"0123456789" for c in seg.strip().split(b"*")[e])]
    if not spots:
        return data
    s, e = rng.choice(spots)
    lead = segments[s][: len(segments[s]) - len(segments[s].lstrip())]
    elements = segments[s].strip().split(b"*")
    value = bytearray(elements[e])
    digits = [i for i, c in enumerate(value) if chr(c).isdigit()]
    i = rng.choice(digits)
    value[i] = ord(rng.choice([d for d in "0123456789" if d != chr(value[i])]))
    elements[e] = bytes(value)
    segments[s] = lead + b"*".join(elements)
    return term.join(segments)


MUTATIONS: list[Callable[[random.Random, bytes], bytes]] = [
    _truncate, _flip, _flip, _swap_delimiter, _encoding, _huge_field, _drop_trailer, _amount_digit, _amount_digit,
]


def _mutants(sources: dict[str, bytes]) -> Iterator[tuple[str, bytes, bytes]]:
    rng = random.Random(SEED)
    for name, data in sources.items():
        for n in range(PER_FILE):
            mutate = MUTATIONS[n % len(MUTATIONS)]
            yield f"{name}#{n}:{mutate.__name__}", data, mutate(rng, data)


# --------------------------------------------------------------------------- the money a file posts


def _cas(adjustments: list[Adjustment]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for a in adjustments:
        totals[a.group] = totals.get(a.group, Decimal(0)) + a.amount
    return {g: v for g, v in totals.items() if v}


def _money(r: Remittance) -> tuple[object, ...]:
    signed = -r.payment_amount if r.credit_debit == "D" else r.payment_amount
    claims = [
        (c.charge, c.paid, _cas(c.adjustments), [(ln.charge, ln.paid, _cas(ln.adjustments)) for ln in c.lines])
        for c in r.claims
    ]
    return signed, claims, [p.amount for p in r.provider_adjustments]


def _read(data: bytes) -> tuple[list[Remittance], bool]:
    """(remittances, accepted): accepted means readable, complete and balanced."""
    started = time.perf_counter()
    try:
        result = read_file(io.BytesIO(data))
    except X12Error as exc:
        assert "\n" not in exc.reason
        return [], False
    finally:
        assert time.perf_counter() - started < MAX_SECONDS_PER_READ
    for e in result.errors:
        assert "\n" not in e.reason
    return result.remittances, result.balanced and bool(result.remittances)


def test_mutants_never_crash_hang_or_pass_changed_money(samples_dir: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    sources = _sources(samples_dir)
    originals = {data: [_money(r) for r in _read(data)[0]] for data in sources.values()}
    counts = {"mutants": 0, "accepted": 0, "rejected": 0, "identical": 0}
    path = tmp_path / "mutant.835"
    for label, original, mutant in _mutants(sources):
        counts["mutants"] += 1
        if mutant == original:
            counts["identical"] += 1
            continue
        remittances, accepted = _read(mutant)
        if accepted:
            counts["accepted"] += 1
            assert [_money(r) for r in remittances] == originals[original], f"{label}: changed money accepted"
        else:
            counts["rejected"] += 1
        if counts["mutants"] % 4 == 0:  # the command line on a share of them: one line or JSON, never a traceback
            path.write_bytes(mutant)
            assert main(["835", str(path)]) in (0, 1, 2), label
            capsys.readouterr()
    assert counts["mutants"] == PER_FILE * len(sources) >= 350
    assert counts["rejected"] > counts["mutants"] // 2  # most mutants must be caught, not just survive


def test_every_amount_digit_change_is_caught(samples_dir: Path) -> None:
    """The strongest money property, exhaustively on two files: each single digit of each posting
    amount changed to each other digit never reads as balanced."""
    for name in ("lfh_medicare_part_a.835", "qrp_52563_LH99_PNUA010119.835"):
        data = _sources(samples_dir)[name]
        term = data[105:106]
        segments = data.split(term)
        tried = 0
        for s, seg in enumerate(segments):
            stripped = seg.strip()
            for sid, idx in _MONEY.items():
                if not stripped.startswith(sid + b"*"):
                    continue
                elements = stripped.split(b"*")
                for e in (i for i in idx if i < len(elements)):
                    for pos, char in enumerate(elements[e]):
                        if not chr(char).isdigit():
                            continue
                        for digit in b"0123456789":
                            if digit == char:
                                continue
                            changed = bytearray(elements[e])
                            changed[pos] = digit
                            mutated = [*elements[:e], bytes(changed), *elements[e + 1 :]]
                            body = term.join([*segments[:s], seg.replace(stripped, b"*".join(mutated)),
                                              *segments[s + 1 :]])
                            tried += 1
                            assert not _read(body)[1], f"{name} segment {s} element {e} digit {pos} -> {chr(digit)}"
        assert tried > 100
