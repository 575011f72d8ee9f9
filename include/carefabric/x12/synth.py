"""TEMPORARY shim: synthetic 835 files moved to ``sandbox.synth_835`` (test data, not product).

Kept only because ``tools/bench.py`` still imports ``write_835`` from here; delete this file when
it imports ``from sandbox.synth_835 import write_835``.
"""

from sandbox.synth_835 import write_835

__all__ = ["write_835"]
