"""Speed measures of carefabric's readers against the reference libraries (hl7apy, python-hl7, pyx12).

Why a package of its own: these are measuring tools, not product code; carefabric imports nothing
from here, and their third-party references install with the ``bench`` extra. ``make bench``
(``tools/bench.py``) is the full measure; each module here is a quick local one:

* ``python -m carefabric_bench.hl7_reader``: HL7 v2 framing + parse + canonical, messages/s.
* ``python -m carefabric_bench.x12_reader``: the 835 reader against pyx12, claims/s.
"""
