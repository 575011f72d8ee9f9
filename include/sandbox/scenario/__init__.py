"""The generator's parts (``sandbox.generator`` assembles them into one scenario).

- ``common``: reproducible random streams, ids, patients, the billing seed, file writers;
- ``remit``: the payers' 835 transactions of a day, adjudicated so they balance by construction;
- ``ehr``: the EHR's encounters, their HL7/FHIR messages and the posting policy applied to them;
- ``master``: ERP master data and the governed crosswalks;
- ``expected``: what the nightly close must find (suspense, AR roll-forward, reconciliation items).
"""
