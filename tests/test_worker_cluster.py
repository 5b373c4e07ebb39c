"""`watch --cluster`: record tasks on a local Dask cluster of two workers, on a local root and on an S3 root
(moto on 127.0.0.1); an unreachable cluster is an error naming the address while local workers go on."""

import os
import socket

import numpy as np
import pytest

from diagnostics.store import record
from diagnostics.work import worker
from runformat.reader import list_runs, open_run
from runformat.writer import RunWriter

distributed = pytest.importorskip("distributed")


def write_runs(root, count=2, steps=(0, 10)):
    for i in range(count):
        with RunWriter(root, f"c{i}", {"description": "cluster", "contrastive": {"temperature": 0.2}}) as w:
            for step in steps:
                z = np.random.default_rng(step + i).standard_normal((80, 8)).astype(np.float32)
                w.log_snapshot(step, embeddings=z, positives=z + 0.1, labels=np.arange(80) % 4)


@pytest.fixture(scope="module")
def local_cluster():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
    )
    yield cluster
    cluster.close()


def test_records_are_computed_on_a_local_cluster_of_two_workers(tmp_path, local_cluster):
    write_runs(str(tmp_path))
    client = distributed.Client(local_cluster.scheduler_address)
    before = sum(client.run(lambda dask_worker: len(dask_worker.data) + dask_worker.state.executed_count).values())
    worker.watch(str(tmp_path), once=True, workers=1, cluster=local_cluster.scheduler_address)
    for run in list_runs(str(tmp_path)):
        assert all(record.load(run, s) is not None for s in run.snapshot_steps())
    ran = sum(client.run(lambda dask_worker: dask_worker.state.executed_count).values())
    assert ran - before > 0  # some of the tasks ran on the cluster's workers
    client.close()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_cluster_names_its_address_and_local_workers_go_on(tmp_path, capfd):
    write_runs(str(tmp_path), count=1)
    address = f"tcp://127.0.0.1:{_free_port()}"
    worker.watch(str(tmp_path), once=True, cluster=address)
    run = open_run("c0", root=str(tmp_path))
    assert all(record.load(run, s) is not None for s in run.snapshot_steps())
    assert address in worker.status(str(tmp_path))["last_error"] and "unreachable" in capfd.readouterr().err


def _use_s3_endpoint(port, on: bool = True) -> None:
    import fsspec

    if on:
        fsspec.config.conf["s3"] = {"endpoint_url": f"http://127.0.0.1:{port}", "key": "test", "secret": "test"}
    else:
        fsspec.config.conf.pop("s3", None)


def test_an_s3_root_on_the_cluster(local_cluster):
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "FSSPEC_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    os.environ.update(env)
    client = distributed.Client(local_cluster.scheduler_address)
    try:
        import boto3

        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}").create_bucket(Bucket="runs")
        _use_s3_endpoint(port)
        client.run(os.environ.update, env)  # the cluster's workers reach the same S3 endpoint
        client.run(_use_s3_endpoint, port)
        write_runs("s3://runs/team", count=1, steps=(0,))
        worker.watch("s3://runs/team", once=True, workers=1, cluster=local_cluster.scheduler_address)
        run = open_run("c0", root="s3://runs/team")
        assert record.load(run, 0) is not None and record.load(run, 0).error is None
    finally:
        _use_s3_endpoint(port, on=False)
        client.run(_use_s3_endpoint, port, False)
        client.close()
        server.stop()
        for k in env:
            os.environ.pop(k, None)
