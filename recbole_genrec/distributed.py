"""Data-parallel runs on RecBole's distributed options (``nproc``, ``world_size``,
``ip``, ``port``, ``offset``).

``run_recbole_genrec.py ... --nproc=2`` starts one process per rank
(``torch.multiprocessing.spawn``, as ``recbole.quick_start.run_recboles``); each
joins the process group in :meth:`GenRecConfig._init_device` with the backend
the device calls for -- NCCL on CUDA, Gloo on CPU (RecBole always asked for
NCCL) -- and trains on its shard of every batch (RecBole's ``DistributedSampler``).
Gradients are averaged by ``DistributedDataParallel``; evaluation gathers every
rank's ranked lists, drops the sampler's padding duplicates (by row index: a split
that gives a user several rows keeps them all) and computes the metrics once over
all rows, so they equal a one-process evaluation; rank 0
alone writes checkpoints, TensorBoard and the result JSON.

Random streams: rank ``r`` (global: ``local_rank + offset``) is seeded with
``seed + r`` -- ranks on different machines must not share dropout masks or
sampled negatives -- and the training shuffle with ``seed`` (``seed_data_order``).

Helpers for the collectives the trainers need (no-ops in a one-process run).
"""

import socket

import torch
import torch.distributed as dist
from torch.utils.data.distributed import DistributedSampler


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    return rank() == 0


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broadcast(obj):
    """Rank 0's ``obj`` on every rank (any picklable object)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
    if not active():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def _backend_device() -> torch.device:
    """Where collectives take their tensors: the GPU for NCCL, the CPU for Gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over the ranks (a copy, on ``tensor``'s device)."""
    if not active():
        return tensor
    reduced = tensor.detach().to(_backend_device(), copy=True)
    dist.all_reduce(reduced)
    return (reduced / dist.get_world_size()).to(tensor.device)


def rows(tensor: torch.Tensor) -> torch.Tensor:
    """``[world_size, *tensor.shape]``: every rank's ``tensor``, in rank order (on
    ``tensor``'s device); ``tensor[None]`` in a one-process run."""
    if not active():
        return tensor.unsqueeze(0)
    local = tensor.detach().to(_backend_device(), copy=True)
    out = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(out, local)
    return torch.stack(out).to(tensor.device)


def seed_rank(seed: int, reproducibility: bool) -> None:
    """Seed this process's random streams (Python, NumPy, torch) with ``seed`` plus its
    global rank: ranks on two machines share local ranks, and then drew the same
    dropout masks and sampled negatives."""
    from recbole.utils import init_seed

    init_seed(seed + rank(), reproducibility)


def seed_data_order(loader, seed: int) -> None:
    """Shuffle a data-parallel training loader with the run's ``seed``: RecBole builds
    its ``DistributedSampler`` with the default ``seed=0``, so every seed of a
    multi-process repeat saw the same batch order (a one-process loader is seeded
    with ``seed`` by RecBole already)."""
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, DistributedSampler):
        sampler.seed = int(seed)


def barrier() -> None:
    if active():
        dist.barrier()


def weights_fingerprint(model) -> list[float]:
    """One float64 sum per floating tensor of the state (parameters and buffers such
    as APAO's prefix weights): equal on every rank when the replicas agree."""
    return [float(t.detach().double().sum()) for t in model.state_dict().values()
            if t.is_floating_point()]


def broadcast_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """Rank 0's values of a small CPU tensor, on every rank."""
    if not active():
        return tensor
    shared = tensor.to(_backend_device(), copy=True)
    dist.broadcast(shared, src=0)
    return shared.to(tensor.device)
