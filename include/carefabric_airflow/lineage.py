"""What each interface reads and writes, declared on its tasks for OpenLineage.

The OpenLineage provider (``apache-airflow-providers-openlineage``) sends a START and a COMPLETE
or FAIL event for every task and DAG run. carefabric's tasks are ``@task`` functions, for which
the provider has no extractor that knows their data, so each task names its datasets as
``inlets`` and ``outlets`` (the provider's manually annotated lineage) with Airflow's lineage
entities: ``Table`` for the integration store, ``File`` for a folder, an API path or the finance
mailbox. Assets stay beside them as outlets for data-aware scheduling (``data_assets``); the
provider leaves out the ``carefabric://`` ones, which no converter knows.

Why these names (docs/OPERATIONS.md, "Lineage"):

* the store: OpenLineage's naming for databases, from ``CAREFABRIC_DB_URL`` without credentials:
  ``postgres://host:5432`` + ``<database>.public.<table>``; SQLite ``sqlite://<file>`` + ``main.<table>``;
* peers: ``<protocol>`` + ``<peer role>/<folder or API path>`` (``sftp`` + ``payer/inbound``,
  ``https`` + ``erp/api/v1/journal-batches``): the role, not the host, so one graph spans the
  sandbox and production; the Airflow connection of each role is in the operations guide;
* local folders and the handoff store: their URL (``file://`` + path, ``s3://bucket`` + prefix).

No PHI: a dataset is a folder, a table or an endpoint, never a file name, a query string or a
record; the PHI guards of the provider's own facets (source code, full task info, hook lineage)
are settings (``tools/openlineage_sandbox.py``, the compose file), checked by tests/test_lineage.py.

Evaluated when a DAG file is parsed: environment and paths only, no network, no heavy import.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from airflow.providers.common.compat.lineage.entities import File, Table

# The peers by role: the protocol they speak in production and the folder or API root.
API_ROOT = "/api/v1"
PAYER_SFTP = "sftp://payer"
BANK_SFTP = "sftp://bank"
BILLING_API = f"https://billing{API_ROOT}"
ERP_API = f"https://erp{API_ROOT}"
EHR_FHIR = "https://ehr/fhir"
FINANCE_MAIL = "smtp://finance"

# The ERP's master-data lists and document endpoints (carefabric.clients.erp and
# carefabric.posting.payloads hold the same paths; not imported: their imports are heavy for parsing).
ERP_MASTER_LISTS = ("companies", "cost-centers", "gl-accounts", "items", "locations", "payers", "periods")
ERP_DOCUMENTS = ("journal-batches", "inventory-movements", "cash-receipts")


def store_namespace(url: str) -> tuple[str, str]:
    """(namespace, table-name prefix) of the integration store at ``url``, credentials dropped."""
    parts = urlsplit(url)
    dialect = parts.scheme.split("+", 1)[0]
    if dialect == "sqlite":
        return f"sqlite://{parts.path[1:]}", "main"  # sqlite:///<file>: the file follows the third slash
    if dialect in ("postgresql", "postgres"):
        return f"postgres://{parts.hostname}:{parts.port or 5432}", f"{parts.path.strip('/')}.public"
    port = f":{parts.port}" if parts.port else ""
    return f"{dialect}://{parts.hostname}{port}", parts.path.strip("/")


def store(*tables: str) -> list[Table]:
    """Tables of the integration store (``CAREFABRIC_DB_URL``)."""
    from carefabric.config import db_url

    namespace, prefix = store_namespace(db_url())
    database, _, schema = prefix.partition(".")
    return [Table(cluster=namespace, database=database, name=f"{schema}.{t}" if schema else t) for t in tables]


def peer(base: str, *paths: str) -> list[File]:
    """Folders or endpoints of a peer (``base`` is one of the role constants above)."""
    return [File(url=f"{base}/{path.strip('/')}") for path in paths]


def landing(folder: str = "") -> File:
    """The EHR's landing folder (``CAREFABRIC_LANDING_DIR``), or a folder under it."""
    from carefabric.config import landing_dir

    path = landing_dir().resolve() / folder if folder else landing_dir().resolve()
    return File(url=path.as_uri())


def handoff(interface: str) -> File:
    """The interface's folder of the handoff store, its URL without the connection id."""
    from carefabric_airflow.handoff import handoff_url

    parts = urlsplit(handoff_url())
    return File(url=f"{parts.scheme}://{parts.hostname or ''}{parts.path.rstrip('/')}/{interface}")


# The store's tables by what they hold, for the declarations in dags/ (one list per kind).
RAW = ("inbound_files", "raw_messages")
CLINICAL = ("encounters", "charges", "supply_usage")
REMITTANCE = ("remittances", "remit_claims", "remit_lines", "remit_adjustments", "provider_adjustments", "ack_999")
BILLING = ("billing_claims", "billing_payments", "patient_balances")
MASTER = ("erp_companies", "erp_cost_centers", "erp_gl_accounts", "erp_items", "erp_locations", "erp_payers",
          "erp_periods")
POSTINGS = ("erp_postings", "erp_posting_lines", "posting_contributions", "posting_records")
RECONCILIATION = ("reconciliation_runs", "reconciliation_items")
