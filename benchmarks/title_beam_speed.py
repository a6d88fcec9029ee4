"""Constrained beam search over variable-length titles (LLMRec): batched vs per beam.

A tiny random LLMRec (the CPU default of ``properties/model/LLMRec.yaml``) on
Office's 2,420 titles, tokenized by a BPE trained on them.  Two searches over
the same title trie, with BEAR's ``B = 10``:

* ``batched`` -- ``model.beam_search``: users in chunks, every live beam of every
  user of a chunk in one forward per step, KV cache reordered by index, ended
  titles dropped from the batch (:mod:`recbole_genrec.layers.title_trie`);
* ``per_beam`` -- the plain loop: one user at a time, one forward per live
  beam per step with that beam's own KV cache, the allowed next tokens from a
  Python dict of title prefixes, then the top ``B`` kept (BEAR §2.2).

Both start from the same encoded prompts, so the rate compares the searches.
The loop's results are compared with the batched ones (items, and scores to
1e-4).  Users per wall second and per process CPU second (one torch thread:
robust to other load on the machine).

    python benchmarks/title_beam_speed.py [--users 256 --reference_users 16]

Writes ``benchmarks/results/title_beam_speed.json``.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recbole.data import data_preparation  # noqa: E402
from recbole.data.interaction import cat_interactions  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

from recbole_genrec.config import GenRecConfig  # noqa: E402
from recbole_genrec.data.dataset import GenRecDataset  # noqa: E402
from recbole_genrec.layers.causal_lm import continue_prompts  # noqa: E402
from recbole_genrec.layers.title_trie import identifier_lengths  # noqa: E402


def allowed_next(model) -> dict:
    """Title prefix (tuple of tokens) -> the tokens that may follow it."""
    table = {}
    for item in range(1, model.n_items):
        ids = model.codes[item].tolist()
        ids = ids[: ids.index(model.end) + 1]
        for t in range(len(ids)):
            table.setdefault(tuple(ids[:t]), set()).add(ids[t])
    return {prefix: sorted(tokens) for prefix, tokens in table.items()}


@torch.no_grad()
def per_beam_search(model, user, beam_size, allowed, item_of):
    """One user (an interaction of one row), one forward per live beam per step."""
    ctx = model.encode(user)
    decoder, zero = model.decoder(), torch.zeros(1, dtype=torch.long)
    # a beam: (tokens, score, kv after its tokens, next-token log-probs); ended: logp None
    beams = [((), 0.0, None, model.first_logp(ctx)[0])]
    while any(logp is not None for *_, logp in beams):
        candidates = []
        for tokens, score, kv, logp in beams:
            if logp is None:
                candidates.append((score, tokens, None, None))
                continue
            for token in allowed[tokens]:
                candidates.append((score + float(logp[token]), tokens + (token,), kv, token))
        candidates.sort(key=lambda c: -c[0])
        beams = []
        for score, tokens, kv, token in candidates[:beam_size]:
            if token is None or token == model.end:
                beams.append((tokens, score, None, None))
                continue
            hidden, kv = continue_prompts(decoder, ctx, zero, torch.tensor([[token]]), kv,
                                          len(tokens) - 1)
            beams.append((tokens, score, kv, model.token_logp(hidden[0, -1])))
    return [item_of[tokens] for tokens, *_ in beams], [score for _, score, *_ in beams]


def timed(fn):
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - start, time.process_time() - cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="Office")
    parser.add_argument("--users", type=int, default=256)
    parser.add_argument("--reference_users", type=int, default=16)
    parser.add_argument("--beam_size", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/title_beam_speed.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = GenRecConfig("LLMRec", args.dataset, config_dict={
        "loss": "ce", "title_collision": "suffix", "title_missing": "item_id",
        "beam_size": args.beam_size, "use_gpu": False})
    init_seed(config["seed"], True)
    train, _, test = data_preparation(config, GenRecDataset(config))
    model = config.model_class(config, train._dataset).eval()
    users = cat_interactions([batch[0] for batch in test])
    users = users[torch.arange(min(args.users, len(users)))]
    lengths = identifier_lengths(model.codes[1:], model.end).float()

    model.beam_search(users[torch.arange(8)])  # warm-up
    batched, seconds, cpu = timed(lambda: model.beam_search(users))
    out = {
        "dataset": args.dataset, "items": model.n_items - 1, "beam_size": args.beam_size,
        "identifier_tokens": {"mean": round(float(lengths.mean()), 2), "max": int(lengths.max()),
                              "min": int(lengths.min())},
        "trie_levels": model.n_levels, "trie_nodes": sum(model.trie.level_size),
        "model": {"parameters": sum(p.numel() for p in model.parameters()),
                  "hidden": config["random_hidden_size"], "layers": config["random_layers"],
                  "vocab": model.vocab_size},
        "command": "python benchmarks/title_beam_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "threads": args.threads, "machine": platform.processor() or platform.machine(),
        "load_average_at_start": [round(x, 1) for x in os.getloadavg()],
        "batched": {"users": len(users), "chunk_users": config["eval_chunk_users"],
                    "users_per_s": len(users) / seconds, "users_per_cpu_s": len(users) / cpu},
    }
    allowed = allowed_next(model)
    item_of = {}
    for item in range(1, model.n_items):
        ids = model.codes[item].tolist()
        item_of[tuple(ids[: ids.index(model.end) + 1])] = item
    n_ref = min(args.reference_users, len(users))
    same_items, same_scores = 0, 0

    def reference():
        return [per_beam_search(model, users[torch.tensor([u])], args.beam_size, allowed, item_of)
                for u in range(n_ref)]

    results, seconds, cpu = timed(reference)
    for u, (items, scores) in enumerate(results):
        same_items += items == batched.items[u, : len(items)].tolist()
        same_scores += torch.allclose(torch.tensor(scores), batched.scores[u, : len(scores)],
                                      atol=1e-4)
    out["per_beam"] = {"users": n_ref, "users_per_s": n_ref / seconds,
                       "users_per_cpu_s": n_ref / cpu,
                       "same_items_as_batched": f"{same_items}/{n_ref}",
                       "same_scores_as_batched": f"{same_scores}/{n_ref}"}
    out["speedup_wall"] = out["batched"]["users_per_s"] / out["per_beam"]["users_per_s"]
    out["speedup_cpu"] = out["batched"]["users_per_cpu_s"] / out["per_beam"]["users_per_cpu_s"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
