"""Measure claims/s of carefabric's 835 reader against pyx12's ``X12ContextReader``.

``python -m carefabric_bench.x12_reader [--claims N]`` writes a synthetic balanced 835 of ``N`` claims
to a temporary file, reads it with both and prints the rates. A local measure, not a test:
numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from carefabric.x12.reader import iter_transactions
from sandbox.synth_835 import write_835


def claims_carefabric(path: Path) -> int:
    """Claims in ``path`` as carefabric's streaming reader counts them (balancing included)."""
    claims = 0
    for item in iter_transactions(path):
        assert not isinstance(item, Exception), item
        claims += len(item.claims)
    return claims


def claims_pyx12(path: Path) -> int:
    """Claims (loop 2100) in ``path`` as pyx12's ``X12ContextReader`` walks them."""
    import pyx12.error_handler
    import pyx12.params
    import pyx12.x12context

    claims = 0
    with open(path, encoding="utf-8") as fd:
        reader = pyx12.x12context.X12ContextReader(pyx12.params.params(), pyx12.error_handler.errh_null(), fd)
        for node in reader.iter_segments("2100"):
            if node.id == "2100":
                claims += 1
    return claims


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--claims", type=int, default=2000)
    parser.add_argument("--per-transaction", type=int, default=100)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.835"
        with open(path, "wb") as out:
            shape = write_835(
                out,
                transactions=max(1, args.claims // args.per_transaction),
                claims_per_transaction=args.per_transaction,
            )
        size = path.stat().st_size
        print(f"file: {shape['claims']} claims, {shape['transactions']} transactions, {size / 1e6:.2f} MB")
        rates = {}
        for name, fn in (("carefabric", claims_carefabric), ("pyx12", claims_pyx12)):
            start = time.perf_counter()
            claims = fn(path)
            elapsed = time.perf_counter() - start
            rates[name] = claims / elapsed
            print(f"{name:>10}: {claims} claims in {elapsed:.3f} s = {rates[name]:,.0f} claims/s")
        print(f"speed-up: {rates['carefabric'] / rates['pyx12']:.0f}x")


if __name__ == "__main__":
    main()
