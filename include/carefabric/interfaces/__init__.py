"""One module per interface: the whole story of each DAG, minus Airflow.

Each DAG in ``dags/`` is a thin TaskFlow wrapper whose tasks call one function here. That keeps
every rule testable without a scheduler and lets the operator CLI reuse the same code.
"""
