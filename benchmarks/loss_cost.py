"""Training cost of each loss relative to CE: TIGER (default size) on Office (issue 4).

Throughput -- one process, the same micro-batches for every loss:

* one optimizer batch of ``train_batch_size`` (1024) from Office's training data is
  split like ``GenerativeTrainer`` does (sorted by history length, micro-batches
  of ``micro_batch_size`` = 128); all of them are timed (``--steps k``: k of them,
  spread over the length range), after a warm-up step on a micro-batch of the
  next batch;
* every loss gets its own TIGER, built from the same seed (identical weights),
  and its own AdamW; a *micro-step* is forward + loss + backward + optimizer step;
* the losses take turns step by step (round robin), so that changing load on the
  machine hits all of them alike, for ``--rounds`` (2) passes over the timed
  micro-batches; a micro-batch's time is its fastest pass (other work on the
  machine only adds time; medians are reported too), and samples/s = timed
  samples / summed times.  CPU time (``process_time``) is recorded as well.

``sdpo``'s frozen reference is a copy of the starting weights (what
``--init_from=<checkpoint>`` does), so its cost includes the reference's passes.

``apao_pairwise`` uses the default prefixes (the 4 semantic levels);
``apao_pairwise_all_levels`` adds Office's appended disambiguation level (one
more decoder position per negative), ``apao_pairwise_chunk25`` decodes the
negatives in checkpointed groups of 25 (``apao_neg_chunk=25``).

Peak memory -- one subprocess per measured loss (``--memory``, default ``ce``,
the three pairwise variants and ``sdpo``): after data and model are built the
kernel's peak-RSS counter is reset (``/proc/self/clear_refs``), then two steps run on the longest-history
micro-batch; the peak is VmHWM minus the RSS before the steps
(process RSS: torch's CPU allocations, which tracemalloc does not see).

Where the time goes -- ``torch.profiler`` over one micro-step (the middle
micro-batch, after the warm-up; the fastest of ``--profile-repeats`` = 3) of ``ce``,
``apao_pairwise`` and ``sdpo``: the top operators by self CPU time, and the
phases (training pass, candidates' decoder, backward, optimizer) labelled with
``record_function``.

    .venv/bin/python benchmarks/loss_cost.py --threads 1

(one torch thread: on a shared 2-core machine two threads per process stall on
each other whenever another job takes a core.)

writes ``benchmarks/results/loss_cost.json`` and prints a table.
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median
from time import perf_counter, process_time

from peak_rss import PeakRSS

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))
RESULT_FILE = PROJECT_ROOT / "benchmarks" / "results" / "loss_cost.json"
MARKER = "LOSS_COST_RESULT "

# name -> config overrides (every other option: properties/loss/<loss>.yaml defaults)
VARIANTS = {
    "ce": {"loss": "ce"},
    "apao_pointwise": {"loss": "apao", "apao_variant": "pointwise"},
    "bear": {"loss": "bear"},
    "msl": {"loss": "msl"},
    "apao_pairwise": {"loss": "apao", "apao_variant": "pairwise", "apao_n_neg": 100},
    "apao_pairwise_chunk25": {"loss": "apao", "apao_variant": "pairwise", "apao_n_neg": 100,
                              "apao_neg_chunk": 25},
    # prefixes over all 5 Office levels, incl. the appended disambiguation level
    "apao_pairwise_all_levels": {"loss": "apao", "apao_variant": "pairwise", "apao_n_neg": 100,
                                 "apao_prefix_levels": "all"},
    # the config asks a frozen reference for --init_from; this script makes the copy itself
    # (on_init_from), so the value is only a label (no file is read)
    "sdpo": {"loss": "sdpo", "pref_n_neg": 100, "init_from": "starting-weights-copy"},
}


def prepare(dataset: str, micro_batch_size: int, seed_config: dict):
    """Office's data and one optimizer batch split into sorted micro-batches."""
    from recbole.data import data_preparation
    from recbole.utils import init_seed

    from recbole_genrec.config import GenRecConfig
    from recbole_genrec.data.dataset import GenRecDataset

    config = GenRecConfig("TIGER", dataset, config_dict={**seed_config, "loss": "ce"})
    init_seed(config["seed"], True)
    data = GenRecDataset(config)
    train, _, _ = data_preparation(config, data)
    batches = iter(train)
    micro = []
    for batch in (next(batches), next(batches)):  # timed batch, warm-up batch
        order = batch[batch_key(config)].argsort()
        micro.append([batch[idx] for idx in order.split(micro_batch_size)])
    return train._dataset, micro[0], micro[1][len(micro[1]) // 2]


def batch_key(config):
    return config["ITEM_LIST_LENGTH_FIELD"]


def build_model(variant: str, dataset, dataset_name: str, extra: dict):
    import torch
    from recbole.utils import init_seed

    from recbole_genrec.config import GenRecConfig

    config = GenRecConfig("TIGER", dataset_name, config_dict={**extra, **VARIANTS[variant]})
    init_seed(config["seed"], True)  # identical initial weights for every loss
    model = config.model_class(config, dataset)
    model.loss.on_init_from(model)  # second-stage losses: reference = starting weights
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["learning_rate"])
    return model, optimizer


def micro_step(model, optimizer, micro) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss = model.calculate_loss(micro)
    loss.backward()
    optimizer.step()
    return loss.item()


# -- throughput (one process) ----------------------------------------------------------

def throughput(args, dataset, micro, warmup) -> dict:
    n = len(micro)
    steps = args.steps or n
    timed = [round(k * (n - 1) / max(1, steps - 1)) for k in range(steps)]
    models = {v: build_model(v, dataset, args.dataset, args.extra) for v in args.losses}
    for v, (model, opt) in models.items():
        micro_step(model, opt, warmup)
    # wall[v][k][r], cpu[v][k][r]: loss v, timed micro-batch k, round r
    wall = {v: [[] for _ in timed] for v in args.losses}
    cpu = {v: [[] for _ in timed] for v in args.losses}
    losses = {v: [] for v in args.losses}
    for _ in range(args.rounds):
        for k, i in enumerate(timed):
            for v, (model, opt) in models.items():
                start, cpu_start = perf_counter(), process_time()
                losses[v].append(micro_step(model, opt, micro[i]))
                wall[v][k].append(perf_counter() - start)
                cpu[v][k].append(process_time() - cpu_start)
    samples = sum(len(micro[i]) for i in timed)
    out = {}
    for v in args.losses:
        best = sum(min(t) for t in wall[v])  # noise only adds time: min over rounds
        typical = sum(median(t) for t in wall[v])
        best_cpu = sum(min(t) for t in cpu[v])
        out[v] = {"samples": samples, "seconds_best": round(best, 3),
                  "seconds_median": round(typical, 3), "cpu_seconds_best": round(best_cpu, 3),
                  "samples_per_s": round(samples / best, 2),
                  "samples_per_s_median": round(samples / typical, 2),
                  "wall_s": [[round(x, 3) for x in t] for t in wall[v]],
                  "loss": [round(x, 4) for x in losses[v]]}
    if "ce" in out:
        ce = out["ce"]
        for v in out:
            out[v]["time_vs_ce"] = round(out[v]["seconds_best"] / ce["seconds_best"], 2)
            out[v]["time_vs_ce_median"] = round(out[v]["seconds_median"] / ce["seconds_median"], 2)
            out[v]["cpu_time_vs_ce"] = round(out[v]["cpu_seconds_best"] / ce["cpu_seconds_best"], 2)
    return {"timed_micro_batches": timed, "rounds": args.rounds,
            "mean_history_length_all": round(float(sum(m[args.len_field].float().sum() for m in micro))
                                             / sum(len(m) for m in micro), 2),
            "mean_history_lengths": [round(float(micro[i][args.len_field].float().mean()), 1)
                                     for i in timed],
            "per_loss": out}


# -- profile ---------------------------------------------------------------------------

def profile(args, dataset, micro, warmup) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, record_function

    out = {}
    for v in args.profile:
        model, opt = build_model(v, dataset, args.dataset, args.extra)
        original_train_batch, original_code_logp = model.train_batch, model.code_logp

        def train_batch(interaction, _f=original_train_batch):
            with record_function("phase: training pass (encoder + target decoder)"):
                return _f(interaction)

        def code_logp(ctx, codes, _f=original_code_logp):
            with record_function("phase: candidates' decoder (code_logp)"):
                return _f(ctx, codes)

        model.train_batch, model.code_logp = train_batch, code_logp
        mb = micro[len(micro) // 2]
        micro_step(model, opt, warmup)
        best = None
        for _ in range(args.profile_repeats):  # keep the fastest (least disturbed) step
            with torch.profiler.profile(activities=[ProfilerActivity.CPU]) as prof:
                with record_function("phase: forward + loss"):
                    loss = model.calculate_loss(mb)
                opt.zero_grad(set_to_none=True)
                with record_function("phase: backward"):
                    loss.backward()
                with record_function("phase: optimizer step"):
                    opt.step()
            events = prof.key_averages()
            total = sum(e.self_cpu_time_total for e in events)
            if best is None or total < best[0]:
                best = (total, events)
        total, events = best
        phases = {e.key[len("phase: "):]: round(e.cpu_time_total / 1e6, 3)
                  for e in events if e.key.startswith("phase: ")}
        top = sorted((e for e in events if not e.key.startswith("phase: ")),
                     key=lambda e: e.self_cpu_time_total, reverse=True)[:args.top_ops]
        out[v] = {"step_s": round(total / 1e6, 3), "phases_s": phases,
                  "top_ops_self_cpu": [{"op": e.key, "self_s": round(e.self_cpu_time_total / 1e6, 3),
                                        "share": round(e.self_cpu_time_total / total, 3),
                                        "calls": e.count} for e in top]}
        del model, opt
        gc.collect()
    return out


# -- memory (one subprocess per loss) --------------------------------------------------

def memory_worker(args) -> dict:
    import torch

    dataset, micro, _ = prepare(args.dataset, args.micro_batch_size, args.extra)
    model, opt = build_model(args.memory_worker, dataset, args.dataset, args.extra)
    longest = micro[-1]
    gc.collect()
    with PeakRSS() as peak:
        micro_step(model, opt, longest)
        micro_step(model, opt, longest)
    return {"loss": args.memory_worker, "micro_batch": len(longest),
            "history_len": int(longest[args.len_field].max()),
            "rss_before_mb": round(peak.before_mb, 1), "peak_rss_mb": round(peak.peak_mb, 1),
            "peak_delta_mb": round(peak.growth_mb, 1),
            "torch_threads": torch.get_num_threads()}


def run_memory(args, variant) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-worker", variant,
           "--dataset", args.dataset, "--micro-batch-size", str(args.micro_batch_size)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    with tempfile.TemporaryDirectory(prefix="loss_cost_") as cwd:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
        raise SystemExit(f"memory worker {variant} failed (exit {proc.returncode})")
    return json.loads(lines[-1][len(MARKER):])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="Office")
    parser.add_argument("--losses", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=0,
                        help="timed micro-batches per loss, spread over the history lengths "
                             "(default 0: all micro-batches of the optimizer batch)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="passes over the timed micro-batches; a micro-batch's time is its "
                             "fastest pass (other work on the machine only adds time)")
    parser.add_argument("--micro-batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--memory", nargs="*", default=["ce", "apao_pairwise", "apao_pairwise_chunk25",
                                                      "apao_pairwise_all_levels", "sdpo"],
                        choices=list(VARIANTS))
    parser.add_argument("--profile", nargs="*", default=["ce", "apao_pairwise", "sdpo"],
                        choices=list(VARIANTS))
    parser.add_argument("--profile-repeats", type=int, default=3)
    parser.add_argument("--top-ops", type=int, default=8)
    parser.add_argument("--output", type=Path, default=RESULT_FILE)
    parser.add_argument("--memory-worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    cli = list(argv if argv is not None else sys.argv[1:])
    args = parser.parse_args(cli)
    args.output = args.output.resolve()  # the run changes into a scratch directory

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    sys.argv = sys.argv[:1]  # RecBole's Config parses sys.argv
    args.extra = {"micro_batch_size": args.micro_batch_size, "show_progress": False}
    args.len_field = "item_length"
    if args.memory_worker:
        print(MARKER + json.dumps(memory_worker(args)))
        return

    os.chdir(tempfile.mkdtemp(prefix="loss_cost_"))  # RecBole writes log/ into the cwd
    start = perf_counter()
    load = [os.getloadavg()[0]]
    dataset, micro, warmup = prepare(args.dataset, args.micro_batch_size, args.extra)
    print(f"{len(micro)} micro-batches of {args.micro_batch_size}; timing {args.losses} ...", flush=True)
    speed = throughput(args, dataset, micro, warmup)
    load.append(os.getloadavg()[0])
    prof = profile(args, dataset, micro, warmup) if args.profile else {}
    memory = {v: run_memory(args, v) for v in args.memory}
    load.append(os.getloadavg()[0])

    command = " ".join([".venv/bin/python benchmarks/loss_cost.py", *cli])
    output = {
        "benchmark": "training cost per loss vs CE, TIGER on Office (issue 4)",
        "command": command,
        "dataset": args.dataset, "model": "TIGER (properties/model/TIGER.yaml)",
        "micro_batch_size": args.micro_batch_size,
        "timed_micro_batches": len(speed["timed_micro_batches"]),
        "rounds": args.rounds,
        "variants": VARIANTS,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "loadavg_1min": load,
        "total_s": round(perf_counter() - start, 1),
        "throughput": speed, "memory": memory, "profile": prof,
        "memory_method": "per-loss subprocess; VmHWM after resetting it via /proc/self/clear_refs, "
                         "minus VmRSS before the steps (2 steps on the longest-history micro-batch)",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, indent=1) + "\n")
    print_table(output)


def print_table(output):
    per = output["throughput"]["per_loss"]
    print(f"\nTIGER on {output['dataset']}, micro-batch {output['micro_batch_size']}, "
          f"{output['timed_micro_batches']} timed micro-batches x {output['rounds']} rounds, torch "
          f"threads {output['torch_threads']} ({output['cpu_count']} CPUs), load {output['loadavg_1min']}")
    print(f"{'loss':22} {'samples/s':>10} {'time vs CE':>11} {'(median)':>9} {'CPU vs CE':>10} {'peak MB':>8}")
    for v, r in per.items():
        mem = output["memory"].get(v, {}).get("peak_delta_mb", "")
        print(f"{v:22} {r['samples_per_s']:>10} {r['time_vs_ce']:>10}x {r['time_vs_ce_median']:>8}x "
              f"{r['cpu_time_vs_ce']:>9}x {mem:>8}")
    for v, p in output["profile"].items():
        phases = ", ".join(f"{k} {s}s" for k, s in p["phases_s"].items())
        ops = ", ".join(f"{o['op']} {o['share']:.0%}" for o in p["top_ops_self_cpu"][:5])
        print(f"  {v}: {phases}\n    top ops: {ops}")


if __name__ == "__main__":
    main()
