"""Where the nightly Great Expectations context and its Data Docs site live, and their URLs.

No GX here: the console serves the site and the finance email links it, and neither may pay
for importing GX (~2-12 s). ``carefabric.quality.checkpoint`` builds what this names.

Layout under the data folder (``CAREFABRIC_DATA_DIR``, a volume every worker and the API server
share in production, like the archive)::

    data/gx/                      the file-backed GX context (great_expectations.yml, suites,
                                  validation definitions, the nightly checkpoint)
    data/gx/uncommitted/validations/   stored validation results (counts only, no values)
    data/gx/batches/<dataset>/<YYYY-MM-DD>.csv   the day's staged batches (removed after the run)
    data/gx/data_docs/            the static Data Docs site (index.html, validations/, ...)
    data/gx/data_docs/days/<YYYY-MM-DD>.html     carefabric's page for one night: the link target

The link in the finance email is ``CAREFABRIC_DATA_DOCS_URL`` (the site's base URL) followed by
``days/<date>.html``; by default the console's read-only route behind Airflow's login under
``AIRFLOW__API__BASE_URL``, or ``http://localhost:8080/carefabric/data-docs/`` without it.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from carefabric.config import data_dir

#: The console route that serves the site (``carefabric.console.routers.data_docs``).
CONSOLE_ROUTE = "/data-docs"
DEFAULT_BASE_URL = f"http://localhost:8080/carefabric{CONSOLE_ROUTE}/"


def gx_root() -> Path:
    """The GX context's folder (``data/gx``); created by ``checkpoint.nightly_context``."""
    return data_dir() / "gx"


def site_dir() -> Path:
    """The static Data Docs site (``data/gx/data_docs``): what the console serves."""
    return gx_root() / "data_docs"


def day_page(day: dt.date) -> str:
    """The night's page, relative to the site root: ``days/2026-11-23.html``."""
    return f"days/{day.isoformat()}.html"


def base_url() -> str:
    """The site's base URL, ending in '/': ``CAREFABRIC_DATA_DOCS_URL``, else the console route
    under Airflow's own ``AIRFLOW__API__BASE_URL`` when that is a full URL, else localhost:8080."""
    explicit = os.environ.get("CAREFABRIC_DATA_DOCS_URL")
    airflow = os.environ.get("AIRFLOW__API__BASE_URL", "")
    if explicit:
        url = explicit
    elif airflow.startswith("http"):
        url = f"{airflow.rstrip('/')}/carefabric{CONSOLE_ROUTE}/"
    else:
        url = DEFAULT_BASE_URL
    return url.rstrip("/") + "/"


def data_docs_url(day: dt.date) -> str:
    """The link finance gets for the night's data quality: the day's page of the site."""
    return base_url() + day_page(day)


def resolve_in_site(relative: str, root: Path | None = None) -> Path | None:
    """The file ``relative`` names inside the site, or None when it is not a file there.

    Refuses anything that leaves the site once resolved (``..``, an absolute path, a symlink
    pointing out), so the console can hand any request path to it. A folder means its
    ``index.html``.
    """
    site = (root or site_dir()).resolve()
    if "\x00" in relative:
        return None
    candidate = (site / relative.lstrip("/")).resolve()
    if not candidate.is_relative_to(site):
        return None
    if candidate.is_dir():
        candidate = candidate / "index.html"
    return candidate if candidate.is_file() else None
