"""Tiny hand-written DAG used to check tests/env/airflow_probe.py.

It exercises the KubernetesPodOperator arguments nb2pipe emits: resources,
Secrets (env + volume), env_vars, a PVC volume + mount, node_selector,
tolerations, labels, annotations, pool, retries, execution_timeout, params,
and templated fields. It must import on Airflow 3.x and 2.10.
"""

from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from kubernetes.client import models as k8s

with DAG(
    dag_id="probe_example",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    params={"alpha": 0.5, "dataset": "s3://bucket/train.csv"},
    tags=["nb2pipe", "probe"],
) as dag:
    prepare = KubernetesPodOperator(
        task_id="prepare",
        name="prepare",
        namespace="ml",
        image="python:3.11-slim",
        cmds=["python", "-c"],
        arguments=["print('prepare {{ params.dataset }}')"],
        container_resources=k8s.V1ResourceRequirements(
            requests={"cpu": "500m", "memory": "1Gi"},
            limits={"cpu": "1", "memory": "2Gi"},
        ),
        pool="default_pool",
        retries=1,
    )

    train = KubernetesPodOperator(
        task_id="train",
        name="train",
        namespace="ml",
        image="registry.example.com/nb2pipe/train:{{ params.alpha }}",
        cmds=["python", "-m", "nb2pipe_runtime"],
        arguments=["--alpha", "{{ params.alpha }}", "--run-id", "{{ run_id }}", "--ds", "{{ ds }}"],
        env_vars={"ALPHA": "{{ params.alpha }}", "STAGE": "train", "RUN_ID": "{{ run_id }}"},
        secrets=[
            Secret("env", "AWS_ACCESS_KEY_ID", "aws-creds", "access_key_id"),
            Secret("volume", "/etc/creds", "gcp-creds"),
        ],
        volumes=[
            k8s.V1Volume(
                name="data",
                persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name="ml-data"),
            )
        ],
        volume_mounts=[k8s.V1VolumeMount(name="data", mount_path="/data", read_only=False)],
        container_resources=k8s.V1ResourceRequirements(
            requests={"cpu": "2", "memory": "4Gi"},
            limits={"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "1"},
        ),
        node_selector={"kubernetes.io/arch": "amd64", "pool": "gpu"},
        tolerations=[
            k8s.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule"),
        ],
        labels={"app": "nb2pipe", "step": "train"},
        annotations={"nb2pipe.io/notebook": "train.ipynb"},
        pool="gpu_pool",
        retries=3,
        retry_delay=timedelta(minutes=2),
        execution_timeout=timedelta(hours=2),
        params={"epochs": 10},
        on_finish_action="delete_pod",
        get_logs=True,
    )

    prepare >> train
