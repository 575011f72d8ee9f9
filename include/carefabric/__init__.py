"""carefabric: the domain package. Parsers, canonical records, mapping, posting and
reconciliation for EHR, billing and ERP integration.

This package imports no Airflow: DAGs in ``dags/`` are thin wrappers around it, so every rule
here is testable without a scheduler and reusable from the operator CLI.
"""

__version__ = "0.1.0"
