"""FHIR Bulk Data ``$export`` with SMART Backend Services: how the nightly EHR extract is pulled.

``auth`` signs the JWT client assertion and fetches tokens, ``status`` says what a status
answer means, ``export`` kicks off, polls once, downloads and cancels, ``pull`` downloads a
finished export into the landing area and hands the files to the EHR ingest. The waiting
between polls is the caller's (an Airflow trigger): nothing here sleeps.
"""

from carefabric.fhir_bulk.auth import BulkAuthError
from carefabric.fhir_bulk.export import TYPES, BulkClient
from carefabric.fhir_bulk.status import BulkExportError, Manifest, Pending, TokenExpired, interpret_status

__all__ = ["TYPES", "BulkAuthError", "BulkClient", "BulkExportError", "Manifest", "Pending", "TokenExpired",
           "interpret_status"]
