"""LLMRec: a (tiny, random) causal LM recommending item titles.

Checked against plain Hugging Face forward passes of ``prompt + title`` -- no
cache, no trie, one sequence at a time:

* the prompt is the template with the history's titles in order (BEAR Fig. 2);
* every item's score (summed token log-probs of its title and end-of-item,
  BEAR §2.2) from the cached, batched decoding, and a beam as wide as the
  catalogue returns the exact ranking;
* ``ce`` (Eq. 2.1 over the batch's target tokens), ``bear`` (Eq. 3.5; top-B over
  the vocabulary or over the trie's valid tokens), ``msl`` and ``sdpo`` equal
  the values computed by hand from those log-probs;
* LoRA trains the adapters only; identical titles are refused or suffixed;
  ``apao`` is refused.
"""

import json
import random

import pytest
import torch
import torch.nn.functional as F
from recbole.data import data_preparation
from recbole.utils import init_seed

import run_recbole_genrec
from conftest import make_dataset
from recbole_genrec.config import GenRecConfig
from recbole_genrec.data.dataset import GenRecDataset
from recbole_genrec.errors import ConfigError
from recbole_genrec.layers.beam_search import full_ranking
from recbole_genrec.losses import loss_class
from test_learning import N_ITEMS as N_RULE_ITEMS
from test_learning import assert_learned, rule_sequences

WORDS = ["desk", "lamp", "pen", "paper", "clip", "chair", "red", "blue", "big", "stapler"]
TINY_LLM = {"random_vocab_size": 300, "random_hidden_size": 16, "random_heads": 2,
            "random_intermediate_size": 32, "random_layers": 2}


def catalogue(n_items=24, seed=0):
    """Distinct titles of 1-4 words; item 1's title is a prefix of item 2's."""
    rng = random.Random(seed)
    titles = {0: "desk lamp", 1: "desk lamp pro"}
    while len(titles) < n_items:
        title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
        if title not in titles.values():
            titles[len(titles)] = title
    sequences = {u: [rng.randrange(n_items) for _ in range(rng.randint(4, 8))] for u in range(30)}
    for item in range(n_items):
        sequences[item % 30].append(item)
    return sequences, titles


def build(tmp_path, titles=None, loss="ce", **options):
    sequences, default_titles = catalogue()
    titles = default_titles if titles is None else titles
    make_dataset(tmp_path / "data", "Titles", sequences,
                 texts={i: {"title": t} for i, t in titles.items()})
    config = GenRecConfig("LLMRec", "Titles", config_dict={
        "data_path": str(tmp_path / "data"), "loss": loss, "beam_size": 5, "topk": [5],
        "train_batch_size": 16, "eval_batch_size": 8, **TINY_LLM, **options})
    init_seed(0, True)
    train, valid, _ = data_preparation(config, GenRecDataset(config))
    return config, config.model_class(config, train._dataset), train, valid


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(config, model, one training batch, one validation batch).  The weights are
    redrawn larger than a fresh model's, so that attention is peaked and an error in
    positions, masks or cached keys changes the scores well beyond float noise."""
    config, model, train, valid = build(tmp_path_factory.mktemp("llm_rec"))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    return config, model, next(iter(train)), next(iter(valid))[0]


def prompt_and_target(model, batch, row):
    """Row ``row`` of ``batch``: its prompt ids ``[P]`` (no padding) and target ids."""
    tokens, mask = model.prompt_tokens(batch)
    codes = model.codes[batch[model.POS_ITEM_ID][row]]
    return tokens[row][mask[row]], title_ids(model, codes)


def title_ids(model, codes):
    real = (codes != model.end).tolist()
    return codes[: real.index(False) + 1]


@torch.no_grad()
def full_forward_logp(model, prompt, target):
    """``[T, V]`` next-token log-probs at each target position, one plain forward."""
    logits = model.causal_lm()(input_ids=torch.cat([prompt, target])[None]).logits[0]
    return F.log_softmax(logits[len(prompt) - 1: len(prompt) - 1 + len(target)].float(), -1)


def test_the_prompt_lists_the_history_titles_in_the_template(tiny):
    config, model, batch, _ = tiny
    history = batch[model.ITEM_SEQ][0][: batch[model.ITEM_SEQ_LEN][0]].tolist()
    prompt, target = prompt_and_target(model, batch, 0)
    entries = ", ".join(f'"{model.titles[i]}"' for i in history)
    expected = config["prompt_template"].replace("{history}", entries)
    decode = model.tokenizer.tokenizer.decode
    assert decode([t for t in prompt.tolist() if t != model.tokenizer.bos_id]) == expected
    assert decode(target[:-1].tolist()) == " " + model.titles[batch[model.POS_ITEM_ID][0]]
    tokens, mask = model.prompt_tokens(batch)
    assert mask[:, -1].all() and not mask.all()  # left padding


def test_item_scores_equal_full_forward_passes_and_a_wide_beam_ranks_exactly(tiny):
    _, model, _, users = tiny
    model.eval()
    users = users[:3]
    with torch.no_grad():
        decoded = full_ranking(model.decoding(model.encode(users)), model.trie)  # [U, n_items]
        beam = model.beam_search(users, beam_size=model.n_items)
    tokens, mask = model.prompt_tokens(users)
    for u in range(len(users)):
        exact = torch.tensor([
            float(full_forward_logp(model, tokens[u][mask[u]], ids).gather(1, ids[:, None]).sum())
            for ids in (title_ids(model, model.codes[i]) for i in range(1, model.n_items))])
        assert torch.allclose(decoded[u, 1:], exact, atol=1e-4)
        assert beam.items[u, : model.n_items - 1].tolist() == (exact.argsort(descending=True) + 1).tolist()
        assert torch.allclose(beam.scores[u, : model.n_items - 1], exact.sort(descending=True).values,
                              atol=1e-4)


def hand_token_logp(model, batch):
    """Per row: ``[T, V]`` log-probs at the target's positions and the target ids."""
    return [(full_forward_logp(model, *prompt_and_target(model, batch, row)),
             prompt_and_target(model, batch, row)[1]) for row in range(len(batch))]


def valid_next(model, target):
    """``[T, V]`` bool: the tokens that continue ``target[:t]`` in some item's identifier."""
    out = torch.zeros(len(target), model.vocab_size, dtype=torch.bool)
    for item in range(1, model.n_items):
        ids = title_ids(model, model.codes[item])
        for t in range(min(len(ids), len(target))):
            if torch.equal(ids[:t], target[:t]):
                out[t, ids[t]] = True
    return out


@pytest.mark.parametrize("loss,options", [
    ("ce", {}),
    ("bear", {"bear_beam_size": 3, "bear_lambda": 0.5, "bear_xi": 2.0}),
    ("bear", {"bear_beam_size": 3, "bear_lambda": 0.5, "bear_xi": 2.0, "bear_constrained": True}),
    ("msl", {"msl_tau": 2.0}),
], ids=["ce", "bear", "bear-constrained", "msl"])
def test_token_losses_equal_hand_computed_values(tiny, tmp_path, loss, options):
    _, model, batch, _ = tiny
    model.eval()
    config = GenRecConfig("LLMRec", "Titles", config_dict={**model_config(tiny), "loss": loss,
                                                            **options})
    with torch.no_grad():
        value, parts = loss_class(loss)(config, model)(model, model.train_batch(batch))
    rows = hand_token_logp(model, batch)
    n_tokens = sum(len(target) for _, target in rows)
    ce = -sum(float(logp.gather(1, target[:, None]).sum()) for logp, target in rows) / n_tokens
    if loss == "ce":
        expected = ce
    elif loss == "bear":
        B, xi = options["bear_beam_size"], options["bear_xi"]
        reg = 0.0
        for logp, target in rows:
            ranked = logp
            if options.get("bear_constrained"):
                ranked = logp.masked_fill(~valid_next(model, target), float("-inf"))
            for t, y in enumerate(target.tolist()):
                threshold = ranked[t].sort(descending=True).values[B - 1]
                if torch.isfinite(threshold):  # fewer than B candidates: the step adds 0
                    reg += float(F.logsigmoid((threshold - logp[t, y]) / xi))
        expected = ce + options["bear_lambda"] * reg / n_tokens
        assert parts["ce"] == pytest.approx(ce, abs=1e-5)
    else:  # msl
        total = 0.0
        for logp, target in rows:
            logits = logp / options["msl_tau"]  # log-softmax differs from the logits by a constant per row
            masked = logits.masked_fill(~valid_next(model, target), float("-inf"))
            total -= float(F.log_softmax(masked, -1).gather(1, target[:, None]).sum())
        expected = total / n_tokens
    assert float(value) == pytest.approx(expected, abs=1e-5)


def model_config(tiny):
    config = tiny[0]
    return {"data_path": config["data_path"], "beam_size": 5, "topk": [5], **TINY_LLM}


def test_sdpo_equals_hand_computed_value(tiny, monkeypatch):
    _, model, batch, _ = tiny
    model.eval()
    negatives = torch.randint(1, model.n_items, (len(batch), 4), generator=torch.Generator().manual_seed(0))
    negatives[0, 0] = batch[model.POS_ITEM_ID][0]  # the target itself: masked
    monkeypatch.setattr(model, "sample_items", lambda n_rows, n: negatives)
    config = GenRecConfig("LLMRec", "Titles", config_dict={
        **model_config(tiny), "loss": "sdpo", "pref_reference": "none", "pref_n_neg": 4,
        "pref_beta": 0.5})
    with torch.no_grad():
        value, _ = loss_class("sdpo")(config, model)(model, model.train_batch(batch))
    tokens, mask = model.prompt_tokens(batch)
    expected = 0.0
    for row in range(len(batch)):
        prompt = tokens[row][mask[row]]

        def reward(item):
            ids = title_ids(model, model.codes[item])
            return 0.5 * float(full_forward_logp(model, prompt, ids).gather(1, ids[:, None]).sum())

        pos_item = int(batch[model.POS_ITEM_ID][row])
        margins = [reward(int(j)) - reward(pos_item) for j in negatives[row] if int(j) != pos_item]
        expected += float(F.softplus(torch.logsumexp(torch.tensor(margins), 0)))
    assert float(value) == pytest.approx(expected / len(batch), abs=1e-4)


def test_lora_trains_the_adapters_and_leaves_the_base_weights_frozen(tmp_path):
    _, model, train, _ = build(tmp_path, finetune="lora", lora_r=4, lora_target_modules=["q_proj", "v_proj"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert any("q_proj.lora_A" in n for n in trainable) and any("v_proj.lora_B" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.01)
    model.train()
    for batch in list(train)[:2]:
        optimizer.zero_grad()
        model.calculate_loss(batch).backward()
        optimizer.step()
    for name, param in model.named_parameters():
        changed = not torch.equal(before[name], param.detach())
        assert changed == ("lora_B" in name or "lora_A" in name), name


def test_identical_titles_are_refused_or_suffixed(tmp_path):
    _, titles = catalogue()
    titles[5] = titles[3]
    with pytest.raises(ConfigError, match=f"'{titles[3]}'.*title_collision=suffix"):
        build(tmp_path / "a", titles)
    _, model, _, _ = build(tmp_path / "b", titles, title_collision="suffix")
    assert len(set(model.titles[1:])) == model.n_items - 1
    assert f"{titles[3]} (2)" in model.titles


def test_apao_and_a_missing_model_folder_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="apao needs fixed-depth identifiers"):
        build(tmp_path / "a", loss="apao")
    with pytest.raises(ConfigError, match="config.json not found.*llm_path"):
        build(tmp_path / "b", llm_path=str(tmp_path / "nowhere"))


def rule_titles(n_items, seed=7):
    """Distinct titles of 1-3 words (variable token lengths) for the rule's items."""
    rng = random.Random(seed)
    words = "red blue green desk lamp pen paper clip chair big small tape".split()
    titles = {}
    while len(titles) < n_items:
        title = " ".join(rng.choice(words) for _ in range(rng.randint(1, 3)))
        if title not in titles.values():
            titles[len(titles)] = title
    return titles


def test_llm_rec_learns_the_rule_with_bear(tmp_path, monkeypatch):
    """The learning tests' rule (``next item = f(last item)``, tests/test_learning.py)
    with items named by titles, end to end through ``run_recbole_genrec.main
    --model=LLMRec --loss=bear``: a 2-layer random Llama (width 32) fine-tuned in
    full, evaluated by constrained beam search over the titles (beam 20).  The
    prompt is short and the history window 5 items (the rule needs the last
    one), so that the run takes about 20 s on one thread; chance is
    Recall@10 = 0.25."""
    sequences, _, _ = rule_sequences()
    make_dataset(tmp_path / "data", "RuleTitles", sequences,
                 texts={i: {"title": t} for i, t in rule_titles(N_RULE_ITEMS).items()})
    options = {"learning_rate": 0.01, "train_batch_size": 64, "micro_batch_size": 64,
               "eval_batch_size": 512, "epochs": 12, "eval_step": 12, "stopping_step": 10,
               # the learning tests' evaluation (LLMRec.yaml's defaults are BEAR's: B = 10, Hit/NDCG)
               "beam_size": 20, "metrics": "['Recall','NDCG','Hit']", "topk": "[5,10]",
               "seed": 2024, "warmup_ratio": 0.05, "pruning_rate_users": 8,
               "MAX_ITEM_LIST_LENGTH": 5, "prompt_template": "History: {history}. Next:",
               "random_hidden_size": 32, "random_layers": 2, "random_heads": 2,
               "random_intermediate_size": 64, "random_vocab_size": 300,
               "bear_beam_size": 2, "bear_lambda": 0.25, "bear_xi": 2.75}
    argv = ["--model=LLMRec", "--dataset=RuleTitles", f"--data_path={tmp_path / 'data'}",
            "--loss=bear", "--result_file=result.json"] + [f"--{k}={v}" for k, v in options.items()]
    run_recbole_genrec.main(argv)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["config"]["beam_size"] == 20 and result["timings"]["epochs_run"] == 12
    assert result["loss_state"]["per_epoch"][-1]["violation_rate"] < result["loss_state"][
        "per_epoch"][0]["violation_rate"]
    assert_learned(result)


def test_sdpo_second_stage_freezes_a_copy_as_the_reference(tmp_path):
    """``--init_from`` makes a frozen deep copy (tokenizer and LoRA wrapper included):
    at that point every reward is 0, so S-DPO is ``log(1 + #valid negatives)`` per row."""
    # the config refuses a frozen reference without --init_from; the copy is made here
    _, model, train, _ = build(tmp_path, loss="sdpo", pref_n_neg=3, finetune="lora",
                               init_from=str(tmp_path / "first-stage.pth"))
    model.loss.on_init_from(model)
    reference = model.loss.reference
    assert reference is not model and not any(p.requires_grad for p in reference.parameters())
    batch = next(iter(train))
    negatives = torch.randint(1, model.n_items, (len(batch), 3), generator=torch.Generator().manual_seed(0))
    negatives[0, :2] = batch[model.POS_ITEM_ID][0]
    model.sample_items = lambda n_rows, n: negatives
    model.eval()  # LoRA dropout off: the policy equals the reference
    value = model.calculate_loss(batch)
    n_valid = (negatives != batch[model.POS_ITEM_ID][:, None]).sum(1).float()
    assert float(value.detach()) == pytest.approx(float(torch.log1p(n_valid).mean()), abs=1e-5)
    value.backward()
    assert all(p.grad is None for p in reference.parameters())
