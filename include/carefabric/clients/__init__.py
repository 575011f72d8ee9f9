"""Clients for the peers carefabric writes to or reads from (billing and ERP REST APIs).

They take plain URLs and tokens, so the domain package stays free of Airflow: a DAG resolves
its Airflow connection and hands the values in (see ``dags/``).
"""
