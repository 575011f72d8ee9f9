"""Local throughput measure of the reader against hl7apy (not a test: timings vary by machine).

``python -m carefabric_bench.hl7_reader [--messages 50000] [--hl7apy 300]`` writes a temporary file of
DFT^P03 messages (six segments, three FT1 lines, escapes in the name), then reports messages per
second for ``iter_messages`` alone, for ``iter_messages + parse + to_canonical``, and for hl7apy's
``parse_message(find_groups=False)`` on a few hundred of the same messages.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from carefabric.hl7.canonical import to_canonical
from carefabric.hl7.framing import iter_messages
from carefabric.hl7.message import parse


def _seg(name: str, values: dict[int, str]) -> str:
    """One segment with SEG-n = values[n] (HL7 numbering; MSH-1/MSH-2 written by the caller)."""
    fields = [""] * (max(values) + 1)
    for n, v in values.items():
        fields[n] = v
    return name + "|" + "|".join(fields[1:])


def _template() -> str:
    msh = "MSH|^~\\&|" + "|".join(
        [
            "EPIC",
            "F1",
            "CAREFABRIC",
            "CF",
            "20240301083000",
            "",
            "DFT^P03",
            "MSG{n:08d}",
            "P",
            "2.5",
            "",
            "",
            "AL",
            "NE",
            "",
            "UNICODE UTF-8",
        ]
    )
    segs = [
        msh,
        _seg("EVN", {1: "P03", 2: "20240301083000"}),
        _seg(
            "PID",
            {
                1: "1",
                3: "MRN{n:07d}^^^F1^MR~SSN{n:05d}^^^SSA^SS",
                5: "O\\S\\BRIEN^JOHN^Q",
                7: "19700101",
                8: "M",
            },
        ),
        _seg(
            "PV1",
            {
                1: "1",
                2: "I",
                3: "MEDSURG^101^A^F1",
                10: "MED",
                19: "V{n:08d}",
                20: "BLUE",
                39: "F1",
                44: "20240229100000",
            },
        ),
        _seg(
            "FT1",
            {
                1: "1",
                2: "T{n:08d}A",
                4: "20240301",
                6: "CG",
                7: "CDM1001^Room and board",
                10: "1",
                11: "1250.00^USD",
                12: "1250.00",
                13: "MEDSURG",
                25: "99213",
                26: "25~59",
            },
        ),
        _seg(
            "FT1",
            {
                1: "2",
                2: "T{n:08d}B",
                4: "20240301",
                6: "CG",
                7: "CDM2001^Gauze",
                10: "2",
                12: "4.25",
                13: "MEDSURG",
            },
        ),
        _seg(
            "FT1",
            {
                1: "3",
                2: "T{n:08d}C",
                4: "20240301",
                6: "CD",
                7: "CDM3001^Lab panel",
                10: "1",
                11: "80.00",
                12: "80.00",
                13: "LAB",
            },
        ),
    ]
    return "\r".join(segs) + "\r"


TEMPLATE = _template()


def write_file(path: Path, count: int) -> int:
    """Write ``count`` messages (``\\r`` segment ends); returns the size in bytes."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        for n in range(count):
            fh.write(TEMPLATE.format(n=n))
    return path.stat().st_size


def measure(path: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    framed = sum(1 for _ in iter_messages(path))
    t1 = time.perf_counter()
    charges = 0
    for raw in iter_messages(path):
        charges += len(to_canonical(parse(raw)).charges)
    t2 = time.perf_counter()
    return {"messages": framed, "charges": charges, "frame_s": t1 - t0, "full_s": t2 - t1}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--hl7apy", type=int, default=300, help="messages to time hl7apy on (0: skip)")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.hl7"
        size = write_file(path, args.messages)
        if args.profile:
            import cProfile
            import pstats

            cProfile.runctx("measure(path)", globals(), {"path": path}, str(Path(tmp) / "prof"))
            pstats.Stats(str(Path(tmp) / "prof")).sort_stats("tottime").print_stats(15)
            return 0
        r = measure(path)
    n = r["messages"]
    print(f"file: {n} DFT^P03 messages, {size / 1e6:.1f} MB, {r['charges']} charges")
    print(f"iter_messages:                       {n / r['frame_s']:>10,.0f} msg/s")
    print(f"iter_messages + parse + to_canonical: {n / r['full_s']:>10,.0f} msg/s")
    if args.hl7apy:
        from hl7apy.parser import parse_message

        texts = [TEMPLATE.format(n=i).rstrip("\r") for i in range(args.hl7apy)]
        t0 = time.perf_counter()
        for text in texts:
            parse_message(text, find_groups=False)
        dt_apy = time.perf_counter() - t0
        rate = len(texts) / dt_apy
        print(
            f"hl7apy parse_message:                {rate:>10,.0f} msg/s ({dt_apy / len(texts) * 1e3:.1f} ms/msg)"
        )
        print(f"speed-up (full pipeline vs hl7apy parse only): {n / r['full_s'] / rate:,.0f}x")
        import hl7 as python_hl7

        texts = [TEMPLATE.format(n=i).rstrip("\r") for i in range(5000)]
        t0 = time.perf_counter()
        for text in texts:
            python_hl7.parse(text)
        rate = len(texts) / (time.perf_counter() - t0)
        print(f"python-hl7 parse (no canonical):     {rate:>10,.0f} msg/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
