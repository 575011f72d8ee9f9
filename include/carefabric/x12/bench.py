"""TEMPORARY shim: the 835 reader measure moved to ``carefabric_bench.x12_reader``.

Kept only because ``tools/bench.py`` still imports ``_ours``/``_pyx12`` from here; delete this
file when it imports ``claims_carefabric``/``claims_pyx12`` from ``carefabric_bench.x12_reader``.
"""

from carefabric_bench.x12_reader import claims_carefabric as _ours
from carefabric_bench.x12_reader import claims_pyx12 as _pyx12

__all__ = ["_ours", "_pyx12"]
