"""carefabric's sandbox: the EHR, billing, ERP, payer and mail peers on one machine.

The peers speak the real protocols (SFTP, HTTP/JSON, SMTP) on 127.0.0.1 so the Airflow DAGs
run unmodified against them; only the ports and credentials differ from production. This
module holds the constants both sides agree on (docs/CONTRACTS.md) and must stay light: the
generator and the DAG helpers import it, so nothing here pulls in FastAPI, paramiko or aiosmtpd.
"""

from __future__ import annotations

import os
from pathlib import Path

HOST = "127.0.0.1"

SFTP_USER = "payer-drop"
SFTP_PASSWORD = "sandbox-sftp"
BILLING_TOKEN = "billing-sandbox-token"
ERP_TOKEN = "erp-sandbox-token"
#: the integration's client id at the EHR (SMART Backend Services); its key pair is generated
#: by the sandbox EHR FHIR server on first start (``<sandbox dir>/ehr_fhir/client_key.pem``)
EHR_CLIENT_ID = "carefabric-bulk"
#: the Group the EHR defines for the patients billing exports (Group-level ``$export``)
EHR_GROUP_ID = "billing-cohort"

#: peer name -> (default port, environment variable that overrides it)
DEFAULT_PORTS: dict[str, tuple[int, str]] = {
    "sftp": (12022, "SANDBOX_SFTP_PORT"),
    "billing": (18081, "SANDBOX_BILLING_PORT"),
    "erp": (18082, "SANDBOX_ERP_PORT"),
    "smtp": (12025, "SANDBOX_SMTP_PORT"),
    "ehr_fhir": (18083, "SANDBOX_EHR_FHIR_PORT"),
}


def port_for(peer: str) -> int:
    """The port a peer listens on: its ``SANDBOX_<PEER>_PORT`` variable, else the contract default."""
    default, env = DEFAULT_PORTS[peer]
    value = os.environ.get(env, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ValueError(f"{env}={value!r} is not a port number") from exc


def sandbox_dir() -> Path:
    """Where the sandbox keeps its state: ``SANDBOX_DIR``, else ``<data dir>/sandbox``."""
    env = os.environ.get("SANDBOX_DIR", "").strip()
    if env:
        return Path(env)
    from carefabric.config import data_dir

    return data_dir() / "sandbox"


__all__ = [
    "BILLING_TOKEN",
    "DEFAULT_PORTS",
    "EHR_CLIENT_ID",
    "EHR_GROUP_ID",
    "ERP_TOKEN",
    "HOST",
    "SFTP_PASSWORD",
    "SFTP_USER",
    "port_for",
    "sandbox_dir",
]
