"""Where a TIGER training epoch goes, at the paper's size (APAO Appendix C).

Trains ``--batches`` optimizer batches of Office (1024 samples, micro-batches of 128,
CE) and splits the time into: drawing the batches from RecBole's loader (collation),
the forward pass by module kind (embeddings, attention, feed-forward, norms, output
layer and loss), the backward pass, the optimizer step, and the rest (Python per step).
It also counts the floating-point operations of a step (``torch.utils.flop_counter``)
and sets the achieved rate beside a plain matrix product on the same thread (the
machine's practical peak), and reports the padding share of the encoder tokens.

    python benchmarks/tiger_profile.py --dataset=Office --batches=3

Times are process CPU seconds with one thread (``--threads``), robust to other load;
on a CUDA machine they are wall seconds after synchronising.  Writes
``benchmarks/results/tiger_profile-<device>.json`` and prints the breakdown.
"""

import argparse
import json
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recbole.data import data_preparation  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

from recbole_genrec.config import GenRecConfig  # noqa: E402
from recbole_genrec.data.dataset import GenRecDataset  # noqa: E402
from recbole_genrec.layers.transformer import MultiHeadAttention, ReluFFN, RMSNorm  # noqa: E402
from recbole_genrec.quick_start import ensure_dataset  # noqa: E402
from recbole_genrec.registry import get_trainer  # noqa: E402

CUDA = torch.cuda.is_available()


def clock() -> float:
    if CUDA:
        torch.cuda.synchronize()
        return time.perf_counter()
    return time.process_time()


class ForwardTimer:
    """Forward time per kind: module hooks (feed-forward, norms, embeddings, dropout, the
    attention projections) and a wrapper around ``scaled_dot_product_attention``."""

    KINDS = ((ReluFFN, "feed_forward"), (RMSNorm, "norm"), (nn.Embedding, "embedding"),
             (nn.Dropout, "dropout"))

    def __init__(self, model):
        self.seconds, self._start = defaultdict(float), {}
        hooked = {}
        for module in model.modules():
            kind = next((k for cls, k in self.KINDS if isinstance(module, cls)), None)
            if kind:
                hooked[module] = kind
            if isinstance(module, MultiHeadAttention):
                hooked.update(dict.fromkeys((module.q, module.k, module.v, module.o),
                                            "attention_projections"))
        for module, kind in hooked.items():
            module.register_forward_pre_hook(lambda m, _: self._enter(m))
            module.register_forward_hook(lambda m, _i, _o, k=kind: self._exit(m, k))
        sdpa = F.scaled_dot_product_attention

        def timed_sdpa(*args, **kwargs):
            self._enter(sdpa)
            out = sdpa(*args, **kwargs)
            self._exit(sdpa, "attention_sdpa")
            return out

        F.scaled_dot_product_attention = timed_sdpa

    def _enter(self, module):
        if torch.is_grad_enabled():
            self._start[id(module)] = clock()

    def _exit(self, module, kind):
        start = self._start.pop(id(module), None)
        if start is not None:
            self.seconds[kind] += clock() - start


def matmul_peak(n=1024, reps=20) -> float:
    """GFLOP/s of an ``n x n`` fp32 matrix product on this device and thread count."""
    device = "cuda" if CUDA else "cpu"
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    start = clock()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (clock() - start) / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="Office")
    parser.add_argument("--batches", type=int, default=3, help="optimizer batches of 1024 (after one warm-up)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = GenRecConfig("TIGER", args.dataset, config_dict={"loss": "ce", "show_progress": False})
    ensure_dataset(config)
    init_seed(config["seed"], True)
    train, _, _ = data_preparation(config, GenRecDataset(config))
    model = config.model_class(config, train._dataset).to(config["device"])
    trainer = get_trainer(config.model_class)(config, model)

    start = clock()
    loader = iter(train)
    batches = [next(loader).to(config["device"]) for _ in range(args.batches + 1)]
    data_s = (clock() - start) / len(batches) * args.batches
    trainer._run_train_epoch(batches[:1], 0)  # warm-up (allocator, scheduler)
    batches = batches[1:]

    micros = [m for b in batches for m in trainer._micro_batches(b)]
    lengths = [m["item_length"] for m in micros]
    real = sum(int(n.sum()) for n in lengths)
    padded = sum(int(n.max()) * len(n) for n in lengths)

    timer = ForwardTimer(model)
    parts = defaultdict(float)
    model.train()
    total_start = clock()
    for batch in batches:
        trainer.optimizer.zero_grad()
        for micro in trainer._micro_batches(batch):
            t0 = clock()
            loss = model.calculate_loss(micro) * len(micro) / len(batch)
            t1 = clock()
            loss.backward()
            t2 = clock()
            parts["forward"] += t1 - t0
            parts["backward"] += t2 - t1
        t3 = clock()
        trainer.optimizer.step()
        parts["optimizer"] += clock() - t3
    total = clock() - total_start
    forward = dict(timer.seconds)
    forward["output_layer_loss_masks_python"] = parts["forward"] - sum(forward.values())
    samples = sum(len(b) for b in batches)

    with FlopCounterMode(display=False) as counter:  # the same micro-batches, untimed
        for micro in micros:
            model.calculate_loss(micro).backward()
    flops = counter.get_total_flops()
    peak = matmul_peak()
    breakdown = {"data_and_collation": data_s, **{f"forward/{k}": v for k, v in forward.items()},
                 "backward": parts["backward"], "optimizer": parts["optimizer"],
                 "python_and_other": total - parts["forward"] - parts["backward"] - parts["optimizer"]}
    grand = total + data_s
    device = torch.cuda.get_device_name(0) if CUDA else platform.processor() or "cpu"
    report = {
        "command": "python benchmarks/tiger_profile.py " + " ".join(sys.argv[1:]),
        "device": device, "threads": args.threads, "samples": samples,
        "seconds": grand, "samples_per_s": samples / grand,
        "breakdown_s": breakdown, "breakdown_share": {k: v / grand for k, v in breakdown.items()},
        "encoder_padding_share": 1 - real / padded,
        "flops_estimate": flops, "achieved_gflops": flops / (parts["forward"] + parts["backward"]) / 1e9,
        "matmul_peak_gflops": peak,
        "epoch_estimate_s": grand / samples * len(train.dataset),
    }
    tag = "cuda" if CUDA else "cpu"
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"tiger_profile-{tag}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"TIGER (paper size) on {device}, {samples} samples, {grand:.1f} s "
          f"({report['samples_per_s']:.0f} samples/s; an Office epoch ~{report['epoch_estimate_s'] / 60:.1f} min)")
    for name, seconds in breakdown.items():
        print(f"  {name:40s} {seconds:8.2f} s  {100 * seconds / grand:5.1f}%")
    print(f"  encoder padding {100 * report['encoder_padding_share']:.1f}% of history tokens; "
          f"{report['achieved_gflops']:.1f} GFLOP/s in forward+backward vs "
          f"{peak:.1f} GFLOP/s for a 1024x1024 matmul")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
