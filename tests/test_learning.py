"""Learning tests: every model under every loss must *learn* a simple rule, end to end.

The rule (:func:`rule_sequences`, seeded): 40 items with random unique 3-level
semantic IDs (40 of the 4**3 = 64 codes) and a fixed random permutation ``f`` of
the items.  Each user's sequence starts at some item and follows
``next item = f(last item)``: 300 users, 80% with 4-12 items and 20% with 13-24,
so that training positions cover every history length up to the 20-item window
that validation and test use.  Under the project's protocol (leave-one-out in
time order, history = the last 20 items) the validation and test targets are
``f`` of the last history item, which the model always sees: a model that
learned the rule ranks the target first.

Every run goes through the real entry point, ``run_recbole_genrec.main`` with
``--key=value`` arguments (config layer, dataset loading and split, trainer
with its warm-up + cosine schedule, best-checkpoint reload, result JSON), with a
tiny model and the default evaluation: trie-constrained beam search (beam 20,
KV cache).  TIGER and LlamaGR under ``ce``, pointwise and pairwise ``apao``,
``bear`` and ``msl`` (trained from scratch), ``dpo``/``dmpo``/``sdpo`` (the
second stage they are: one epoch from the ``ce`` run's checkpoint via
``--init_from``; they must keep the rule and end with a positive reward margin
over the frozen reference), and RecBole's SASRec must reach test
Recall@10 >= 0.95 and NDCG@10 >= 0.8.

Why NDCG@10 as well: with 40 items a model that only learned the first code
already has the target in its top 10 most of the time (about 10 items share a
first code), so Recall@10 alone passes half-learned models; NDCG@10 >= 0.8
needs the target at rank 1 for most users (chance: Recall@10 = 0.25).

It fails -- each checked once with a monkeypatch (not part of CI) -- when
* the decoder's causal mask is dropped (``causal_bias`` all zeros): teacher
  forcing leaks the next code, the model learns to copy it, and beam search,
  which cannot see the future, ranks the target low (TIGER and LlamaGR);
* beam search feeds a generated code as a token of the wrong level, or decodes
  with another user's cached history keys/values (both backbones);
* the KV cache of the generated tokens is zeroed, or not reordered to follow the
  surviving hypotheses (TIGER), or padding keys are not masked (TIGER);
* the learning rate is scheduled to 0, or the warm-up never ends (both);
* the loss loses its gradient (cross-entropy detached; both);
* a preference loss prefers the negatives (rewards negated): all three losses on
  both backbones, through the metrics or (LlamaGR dpo, sdpo) the reward margin.

It does not detect a wrong cache of LlamaGR's own generated tokens (the last
history item alone determines every code of the target, so at most lower-ranked
beams change) nor unmasked padding in LlamaGR's prefix (NDCG@10 drops to about
0.84 only); ``tests/test_beam_search.py`` checks cached decoding against a full
recompute and the beam against the exact ranking.
"""

import json
import random
import sys
from pathlib import Path

import pytest
import torch

import run_recbole_genrec
from conftest import make_dataset

N_ITEMS, N_USERS, SEED = 40, 300, 2024
LENGTHS, LONG_LENGTHS, LONG_SHARE = (4, 12), (13, 24), 0.2
DATASET = "Rule"
RECALL_MIN, NDCG_MIN = 0.95, 0.8

# shared by every run: a high learning rate; epochs per model below (the run length
# is fixed: stopping_step exceeds it).  The file takes about 90 s on one thread of a
# busy 2-core machine, three quarters of it in the five TIGER runs from scratch
FAST = {"learning_rate": 0.01, "train_batch_size": 64, "eval_batch_size": 512,
        "stopping_step": 10, "seed": SEED}
GENERATIVE = {"micro_batch_size": 64, "warmup_ratio": 0.05, "pruning_rate_users": 8}
ARCH = {
    "TIGER": {"d_model": 32, "n_heads": 4, "head_dim": 16, "d_ff": 64, "n_encoder_layers": 1,
              "n_decoder_layers": 1, "dropout_prob": 0.0, "epochs": 7},
    "LlamaGR": {"hidden_size": 32, "n_heads": 2, "intermediate_size": 64, "n_layers": 1,
                "epochs": 6},
    "SASRec": {"hidden_size": 32, "inner_size": 64, "n_layers": 1, "n_heads": 2,
               "hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0, "epochs": 4},
}
BACKBONES = ["TIGER", "LlamaGR"]

# one-stage losses, trained from scratch: (test id, loss, extra options)
ONE_STAGE = [
    ("ce", "ce", {}),
    ("apao", "apao", {}),
    ("apao-pairwise", "apao", {"apao_variant": "pairwise", "apao_n_neg": 4}),
    # 4 codes per level: BEAR's top-B threshold needs B < 4 to be active.  lambda and xi
    # as in the BEAR authors' example command (topk_weight 0.25, topk_tau 2.75): with
    # the defaults (1, 1) the regulariser, unbounded below, outweighs CE on this data
    ("bear", "bear", {"bear_beam_size": 2, "bear_lambda": 0.25, "bear_xi": 2.75}),
    ("msl", "msl", {}),
]
# second stage, started from the ce run's checkpoint: a short run that must keep
# the rule and move the policy towards the targets (positive reward margin)
SECOND_STAGE = ["dpo", "dmpo", "sdpo"]
PREFERENCE = {"epochs": 1, "learning_rate": 0.001, "pref_n_neg": 8}


def rule_sequences(seed: int = SEED):
    """-> (sequences, codes, f): user -> items following ``next = f(last)``."""
    rng = random.Random(seed)
    all_codes = [[a, b, c] for a in range(4) for b in range(4) for c in range(4)]
    codes = dict(enumerate(rng.sample(all_codes, N_ITEMS)))  # unique, random
    image = list(range(N_ITEMS))
    rng.shuffle(image)
    f = dict(enumerate(image))
    sequences = {}
    for user in range(N_USERS):
        # the first N_ITEMS users start at every item once: every item occurs
        seq = [user if user < N_ITEMS else rng.randrange(N_ITEMS)]
        length = rng.randint(*(LONG_LENGTHS if rng.random() < LONG_SHARE else LENGTHS))
        while len(seq) < length:
            seq.append(f[seq[-1]])
        sequences[user] = seq
    return sequences, codes, f


@pytest.fixture(scope="module")
def rule_data(tmp_path_factory) -> Path:
    """``data_path`` holding the ``Rule`` dataset (atomic files)."""
    sequences, codes, f = rule_sequences()
    assert all(seq[i + 1] == f[seq[i]] for seq in sequences.values() for i in range(len(seq) - 1))
    data_path = tmp_path_factory.mktemp("rule_data")
    make_dataset(data_path, DATASET, sequences, codes)
    return data_path


def train(model: str, data_path: Path, workdir: Path, loss: str | None = None,
          **options) -> dict:
    """One run through ``run_recbole_genrec.main`` in ``workdir``; -> the result JSON,
    with ``checkpoint`` made absolute."""
    config = {**FAST, **ARCH[model], **({} if loss is None else {**GENERATIVE, "loss": loss}),
              **options}
    argv = [f"--model={model}", f"--dataset={DATASET}", f"--data_path={data_path}",
            "--result_file=result.json"] + [f"--{k}={v}" for k, v in config.items()]
    workdir.mkdir(parents=True, exist_ok=True)
    # module-scoped callers run outside the autouse ``isolated`` fixture: isolate here too
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)
        mp.setattr(sys, "argv", ["pytest"])
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            run_recbole_genrec.main(argv)
        finally:
            torch.set_num_threads(threads)
    result = json.loads((workdir / "result.json").read_text())
    result["checkpoint"] = str(workdir / result["checkpoint"])
    return result


@pytest.fixture(scope="module")
def ce_run(rule_data, tmp_path_factory):
    """``ce_run(backbone)`` -> the result of that backbone's ce run (run once per module;
    the ce test checks it, the second-stage tests start from its checkpoint)."""
    results = {}

    def get(backbone):
        if backbone not in results:
            workdir = tmp_path_factory.mktemp(f"ce-{backbone}")
            results[backbone] = train(backbone, rule_data, workdir, loss="ce")
        return results[backbone]

    return get


def assert_learned(result):
    test = result["test"]
    summary = (f"{result['model']} loss={result['loss']}: test recall@10={test['recall@10']:.4f} "
               f"ndcg@10={test['ndcg@10']:.4f}, valid {result['valid']}")
    assert test["recall@10"] >= RECALL_MIN, summary
    assert test["ndcg@10"] >= NDCG_MIN, summary
    assert len(result["per_user"]["test"]["target_rank"]) == N_USERS


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("name,loss,options", ONE_STAGE, ids=[case[0] for case in ONE_STAGE])
def test_one_stage_loss_learns_the_rule(backbone, name, loss, options, rule_data, ce_run,
                                        tmp_path):
    if name == "ce":
        result = ce_run(backbone)
    else:
        result = train(backbone, rule_data, tmp_path / "run", loss=loss, **options)
    assert result["config"]["ranking_mode"] == "beam" and result["config"]["beam_size"] == 20
    assert result["timings"]["epochs_run"] == result["config"]["epochs"]
    assert_learned(result)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("loss", SECOND_STAGE)
def test_second_stage_loss_keeps_the_rule_from_a_ce_checkpoint(backbone, loss, rule_data,
                                                               ce_run, tmp_path):
    checkpoint = ce_run(backbone)["checkpoint"]
    result = train(backbone, rule_data, tmp_path / "run", loss=loss, init_from=checkpoint,
                   **PREFERENCE)
    assert result["config"]["init_from"] == checkpoint
    assert_learned(result)
    # the preference objective moved the policy towards the targets, away from the
    # frozen reference (at the first step every reward is 0)
    margins = [epoch["reward_margin"] for epoch in result["loss_state"]["per_epoch"]]
    assert margins and margins[-1] > 0, margins


def test_sasrec_learns_the_rule(rule_data, tmp_path):
    result = train("SASRec", rule_data, tmp_path / "run")
    assert result["loss"] is None
    assert_learned(result)
