"""Data-parallel training on RecBole's distributed options (recbole_genrec/distributed.py):
two real CPU processes (Gloo) through the entry point."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recbole_genrec.trainer.sequential_trainer import _first_occurrences

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TINY_TIGER = PROJECT_ROOT / "tuning" / "examples" / "tiger_tiny.yaml"


def entry_point(args, cwd):
    proc = subprocess.run([sys.executable, str(PROJECT_ROOT / "run_recbole_genrec.py"), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def tiger_args(tiny_dataset, pruning_rate_users=16, **extra):
    args = ["--model=TIGER", "--dataset=Tiny", f"--data_path={tiny_dataset.data_path}",
            f"--config_files={TINY_TIGER}", f"--pruning_rate_users={pruning_rate_users}",
            "--show_progress=false",
            "--train_batch_size=64", "--micro_batch_size=16", "--seed=5"]
    return args + [f"--{k}={v}" for k, v in extra.items()]


def per_user(result) -> dict:
    test = result["per_user"]["test"]
    return dict(zip(test["user_id"], test["target_rank"]))


def test_first_occurrences_by_hand():
    ids = torch.tensor([7, 3, 7, 5, 3])  # a padded shard repeats users
    unique, first = _first_occurrences(ids)
    assert unique.tolist() == [3, 5, 7] and first.tolist() == [1, 3, 0]


def test_two_process_tiger_apao_matches_one_process_evaluation(tiny_dataset, tmp_path):
    """--nproc=2: the ranks end with identical replicas (APAO's weights included), the
    result JSON is written once, every user is evaluated exactly once, and the
    gathered metrics -- PR@K included -- equal a one-process evaluation of the same
    checkpoint."""
    out = entry_point(tiger_args(tiny_dataset, loss="apao", epochs=3, nproc=2,
                                 result_file="ddp.json"), tmp_path)
    result = json.loads((tmp_path / "ddp.json").read_text())
    assert result["status"] == "complete"
    assert result["distributed"] == {"world_size": 2, "backend": "gloo", "replicas_identical": True}
    users = result["per_user"]["test"]["user_id"]
    assert len(users) == len(set(users)) == tiny_dataset.n_users
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["ddp.json"]  # written once
    assert len(list((tmp_path / "saved").glob("*.pth"))) == 2  # one best + one state, rank 0's
    assert out.stdout.count("== TIGER on Tiny") == 1  # one summary

    entry_point(tiger_args(tiny_dataset, loss="apao", epochs=0, init_from=result["checkpoint"],
                           result_file="one.json"), tmp_path)
    single = json.loads((tmp_path / "one.json").read_text())
    assert single["test"] == result["test"]
    assert per_user(single) == per_user(result)
    assert single["diagnostics"]["prefix_recall"] == result["diagnostics"]["prefix_recall"]
    assert result["diagnostics"]["pruning_rate"]["users"] == 16
    assert single["diagnostics"]["pruning_rate"] == result["diagnostics"]["pruning_rate"]


def test_two_process_sasrec_trains_identical_replicas(tiny_dataset, tmp_path):
    """RecBole's own model on RecBole's own training loop, Gloo on CPU."""
    entry_point(["--model=SASRec", "--dataset=Tiny", f"--data_path={tiny_dataset.data_path}",
                 "--epochs=2", "--show_progress=false", "--n_layers=1", "--n_heads=1",
                 "--hidden_size=8", "--inner_size=16", "--nproc=2", "--result_file=sas.json"],
                tmp_path)
    result = json.loads((tmp_path / "sas.json").read_text())
    assert result["distributed"]["replicas_identical"] is True
    users = result["per_user"]["test"]["user_id"]
    assert len(users) == len(set(users)) == tiny_dataset.n_users


def test_resume_with_several_processes_is_refused(tiny_dataset, tmp_path):
    proc = subprocess.run([sys.executable, str(PROJECT_ROOT / "run_recbole_genrec.py"),
                           *tiger_args(tiny_dataset, nproc=2, resume_from="x-last.pth")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "error: --resume_from is for one-process runs (--nproc=2)" in proc.stderr


@pytest.fixture
def even_tiny(tmp_path, make_dataset):
    """The tiny dataset with one more interaction: 182 training samples, an even count,
    so that two ranks' shards hold the same samples as one process's batches (RecBole's
    DistributedSampler pads an odd count with a repeated sample)."""
    from conftest import tiny_sequences_and_codes

    sequences, codes = tiny_sequences_and_codes()
    sequences[0] = sequences[0] + [0]
    make_dataset(tmp_path / "even", "Tiny", sequences, codes)
    return tmp_path / "even"


def apao_args(data_path, rule, **extra):
    """TIGER + APAO with frozen weights (learning rate 1e-30: the prefix losses depend
    on the data alone), no dropout, micro-batches of one sample, a large eta."""
    options = {"loss": "apao", "apao_weight_rule": rule, "apao_eta": 0.05, "epochs": 2,
               "learning_rate": 1e-30, "dropout_prob": 0.0, "micro_batch_size": 1,
               "train_batch_size": 32, "pruning_rate_users": 0, "show_progress": "false",
               "seed": 5, **extra}
    return (["--model=TIGER", "--dataset=Tiny", f"--data_path={data_path}",
             f"--config_files={TINY_TIGER}"] + [f"--{k}={v}" for k, v in options.items()])


def weight_trajectory(path) -> list:
    return [epoch["prefix_weights"] for epoch in
            json.loads(path.read_text())["loss_state"]["per_epoch"]]


@pytest.mark.parametrize("rule", ["paper", "algorithm"])
def test_two_processes_make_the_apao_weight_updates_of_one_process(even_tiny, tmp_path, rule):
    """On the same data order (no shuffle: rank r of step s holds every other sample of
    the one-process batch s), --nproc=2 moves APAO's carried prefix weights exactly as one
    process does.  Once the ranks averaged their losses and made half the updates: the
    weights moved as with eta/2."""
    entry_point(apao_args(even_tiny, rule, shuffle=False, result_file="one.json"), tmp_path)
    entry_point(apao_args(even_tiny, rule, shuffle=False, nproc=2, result_file="two.json"),
                tmp_path)
    one, two = weight_trajectory(tmp_path / "one.json"), weight_trajectory(tmp_path / "two.json")
    assert len(one) == len(two) == 2
    assert max(abs(a - b) for a, b in zip(one[-1], one[0])) > 1e-3  # the weights did move
    for w_one, w_two in zip(one, two):
        assert w_two == pytest.approx(w_one, abs=2e-6)


def test_two_seeds_give_two_data_orders_under_nproc(tiny_dataset, tmp_path):
    """RecBole's DistributedSampler shuffled with seed 0 whatever --seed said.  Same
    weights (--init_from), frozen: each step's loss is a function of its batch, so two
    seeds' step losses differ only through the data order."""
    data_path = tiny_dataset.data_path
    entry_point(apao_args(data_path, "paper", epochs=0, result_file="init.json"), tmp_path)
    init = json.loads((tmp_path / "init.json").read_text())["checkpoint"]
    steps = {}
    for seed in (1, 2):
        entry_point(apao_args(data_path, "paper", epochs=1, nproc=2, seed=seed,
                              micro_batch_size=32, init_from=init,
                              result_file=f"s{seed}.json"), tmp_path)
        result = json.loads((tmp_path / f"s{seed}.json").read_text())
        steps[seed] = result["loss_state"]["per_epoch"][0]["step_loss"]
    assert sorted(steps[1]) != sorted(steps[2])


def _machine_rank(offset, port, queue):
    """Rank 0 (local) of a one-process 'machine' at ``offset``: its first random draws."""
    import torch.distributed as dist

    from recbole_genrec import distributed

    dist.init_process_group("gloo", rank=offset, world_size=2,
                            init_method=f"tcp://127.0.0.1:{port}")
    try:
        distributed.seed_rank(5, True)
        queue.put((offset, torch.rand(4).tolist()))
    finally:
        dist.destroy_process_group()


def test_ranks_on_two_machines_draw_different_random_streams():
    """Two machines with one process each (local rank 0 on both, offsets 0 and 1): the
    ranks were seeded with seed + local_rank, the same seed, and drew the same dropout
    masks and APAO-pairwise negatives."""
    import torch.multiprocessing as mp

    from recbole_genrec.distributed import free_port

    context, port = mp.get_context("spawn"), free_port()
    queue = context.SimpleQueue()
    procs = [context.Process(target=_machine_rank, args=(offset, port, queue))
             for offset in (0, 1)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    draws = dict(queue.get() for _ in procs)
    assert draws[0] != draws[1]
    torch.manual_seed(5 + 1)
    assert draws[1] == torch.rand(4).tolist()  # seed + global rank


RATIO_SPLIT = "{'split': {'RS': [0.6, 0.2, 0.2]}, 'order': 'TO', 'mode': 'full', 'group_by': 'user'}"


def test_a_split_with_several_rows_per_user_evaluates_every_row_under_nproc(tiny_dataset,
                                                                           tmp_path):
    """A ratio split gives a user several test rows; gathering the ranks' rows by user
    id kept one of them, with several processes only.  Rows are told apart by their
    index: the 2-process result equals a one-process evaluation of its checkpoint."""
    args = tiger_args(tiny_dataset, pruning_rate_users=0, eval_args=RATIO_SPLIT)
    entry_point(args + ["--epochs=1", "--nproc=2", "--result_file=two.json"], tmp_path)
    two = json.loads((tmp_path / "two.json").read_text())
    entry_point(args + ["--epochs=0", f"--init_from={two['checkpoint']}",
                        "--result_file=one.json"], tmp_path)
    one = json.loads((tmp_path / "one.json").read_text())
    users = one["per_user"]["test"]["user_id"]
    assert len(users) > len(set(users))  # several test rows for some users
    assert two["per_user"]["test"] == one["per_user"]["test"]
    assert two["test"] == one["test"]
