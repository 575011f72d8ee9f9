# The production image for docker-compose.yaml: Airflow 3.3.2 with carefabric's pinned
# dependencies and its packages on the path of every component (scheduler, workers, ...).
FROM apache/airflow:3.3.2-python3.11

# The product's dependencies only: pyproject.toml's [project].dependencies, read from the one file
# that names them, at the versions of constraints.txt. requirements.txt is the developer's and CI's
# list (the test, bench, lint and sandbox extras too): none of those belongs in a production image.
COPY pyproject.toml constraints.txt /opt/carefabric/
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/opt/carefabric/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /opt/carefabric/product-requirements.txt \
    && pip install --no-cache-dir -r /opt/carefabric/product-requirements.txt -c /opt/carefabric/constraints.txt

COPY include/ /opt/airflow/include/
COPY dags/ /opt/airflow/dags/
COPY plugins/ /opt/airflow/plugins/
ENV PYTHONPATH=/opt/airflow/include
