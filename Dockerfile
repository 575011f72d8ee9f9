# The production image for docker-compose.yaml: Airflow 3.3.2 with carefabric's pinned
# dependencies and its packages on the path of every component (scheduler, workers, ...).
FROM apache/airflow:3.3.2-python3.11

COPY requirements.txt constraints.txt /opt/carefabric/
RUN pip install --no-cache-dir -r /opt/carefabric/requirements.txt -c /opt/carefabric/constraints.txt

COPY include/ /opt/airflow/include/
COPY dags/ /opt/airflow/dags/
COPY plugins/ /opt/airflow/plugins/
ENV PYTHONPATH=/opt/airflow/include
