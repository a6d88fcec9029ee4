"""tuning.search on a real Ray cluster: a head node and a worker node started with
``ray start`` on this machine (1 CPU each), the search joining them with ``--address``.

Each trial needs 1 CPU and the next trial is created while the first one holds its
node's CPU, so the two trials run on different nodes; trials.csv records each trial's
Ray node id, which must be the cluster's two nodes (``ray status``).

The cluster is this test's own: its ``ray start --block`` processes (each in its own
process group) are stopped by SIGTERM and their groups checked to be empty.  ``ray
stop`` is never used: it stops every Ray process on the machine, other users' too.
"""

import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")  # the CLI of the Ray the tests import
NODE_START_TIMEOUT_S = 90
NODE_STOP_TIMEOUT_S = 30

pytestmark = [
    pytest.mark.ray_cluster,
    pytest.mark.skipif(not RAY.is_file(), reason=f"no Ray command line at {RAY}"),
]


@dataclass
class Cluster:
    address: str       # host:port of the head node's GCS, for --address
    env: dict          # environment for processes that join it (the auth token)
    temp_dir: Path


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (held open together, so they are distinct)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start_node(args: list, log: Path, env: dict) -> subprocess.Popen:
    """``ray start --block ARGS`` in its own process group; returns once the node is up."""
    with open(log, "w") as out:
        proc = subprocess.Popen([str(RAY), "start", "--block", *args], stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + NODE_START_TIMEOUT_S
    while "block forever" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_node(proc)
            raise RuntimeError(f"ray start {' '.join(args)} failed:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    return proc


def group_members(pgid: int) -> list[int]:
    """Live processes of the process group ``pgid`` (Linux /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def stop_node(proc: subprocess.Popen) -> list[int]:
    """SIGTERM to ``ray start --block`` (it stops its node's processes); returns the
    processes of its group still alive after that -- they are killed."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=NODE_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
    deadline = time.monotonic() + 5
    while group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = group_members(proc.pid)
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    return left


@pytest.fixture
def ray_cluster():
    """A head node and a worker node, 1 CPU each, in a temp folder and on ports of their
    own, with token authentication (the token file is in the temp folder)."""
    # short path: Ray's Unix sockets live below it and socket paths are limited to 107 bytes
    temp_dir = Path(tempfile.mkdtemp(prefix="rtc", dir="/tmp"))
    token = temp_dir / "auth_token"
    token.write_text(os.urandom(32).hex())
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token), OMP_NUM_THREADS="1",
               RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0", RAY_USAGE_STATS_ENABLED="0")
    gcs, client, dashboard, head_agent, worker_agent = free_ports(5)
    address = f"127.0.0.1:{gcs}"
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0",
              "--disable-usage-stats"]
    nodes = []
    try:
        nodes.append(start_node(
            ["--head", f"--port={gcs}", f"--ray-client-server-port={client}",
             "--include-dashboard=false", f"--dashboard-port={dashboard}",
             f"--dashboard-agent-listen-port={head_agent}", f"--temp-dir={temp_dir / 'head'}",
             *common], temp_dir / "head.log", env))
        nodes.append(start_node(
            [f"--address={address}", f"--dashboard-agent-listen-port={worker_agent}",
             f"--temp-dir={temp_dir / 'worker'}", *common], temp_dir / "worker.log", env))
        cluster = Cluster(address=address, env=env, temp_dir=temp_dir)
        wait_for_nodes(cluster, 2)
        yield cluster
    finally:
        left = {proc.pid: stop_node(proc) for proc in reversed(nodes)}
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert not any(left.values()), f"processes left after SIGTERM (killed): {left}"


def wait_for_nodes(cluster: Cluster, count: int) -> None:
    """Until ``ray status`` lists ``count`` active nodes (a node that just started is
    listed a few seconds later)."""
    deadline = time.monotonic() + NODE_START_TIMEOUT_S
    while len(nodes := cluster_node_ids(cluster)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(nodes)} of {count} Ray nodes joined")
        time.sleep(1)


def cluster_node_ids(cluster: Cluster) -> set[str]:
    """Ids of the cluster's active nodes, as ``ray status`` lists them."""
    status = subprocess.run([str(RAY), "status", f"--address={cluster.address}"],
                            env=cluster.env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr
    if "Active:" not in status.stdout:  # "No cluster status." until the head reports
        return set()
    active = status.stdout.split("Active:")[1].split("Pending:")[0]
    return set(re.findall(r"node_([0-9a-f]+)", active))


def test_search_trials_run_on_both_nodes_of_a_ray_cluster(ray_cluster, tiny_dataset, tmp_path):
    nodes = cluster_node_ids(ray_cluster)
    assert len(nodes) == 2, nodes
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {type: choice, values: [0.01, 0.003]}\n"
                     "points_to_evaluate: [{learning_rate: 0.01}, {learning_rate: 0.003}]\n")
    storage = tmp_path / "tune"
    args = ["--model=SASRec", f"--dataset={tiny_dataset.name}",
            f"--data_path={tiny_dataset.data_path}", f"--space={space}", "--num_samples=2",
            f"--storage_path={storage}", "--name=cluster", f"--address={ray_cluster.address}",
            "--cpus_per_trial=1", "--epochs=1", "--train_batch_size=64", "--hidden_size=8",
            "--inner_size=16", "--n_layers=1", "--n_heads=1"]
    search = subprocess.run([sys.executable, "-m", "tuning.search", *args], cwd=tmp_path,
                            env={**ray_cluster.env, "PYTHONPATH": str(PROJECT_ROOT)},
                            capture_output=True, text=True, timeout=300)
    output = search.stdout + search.stderr
    assert search.returncode == 0, output[-4000:]
    assert "Connected to Ray cluster" in output, output[-4000:]

    with open(storage / "cluster" / "trials.csv", newline="") as f:
        trials = list(csv.DictReader(f))
    assert [t["status"] for t in trials] == ["COMPLETED", "COMPLETED"], trials
    assert {t["node_id"] for t in trials} == nodes  # one trial on each node
    assert all(t["hostname"] == socket.gethostname() and t["node_ip"] for t in trials)
    assert (storage / "cluster" / "best.yaml").is_file()
