"""Trainer for generative recommenders: beam-search evaluation and the paper's schedule.

Training (APAO §5.1.3): AdamW, linear warm-up over ``warmup_ratio`` of all
steps then cosine decay, an optimizer batch of ``train_batch_size`` split into
micro-batches of ``micro_batch_size`` (gradient accumulation).  Micro-batches
are formed after sorting the batch by history length, so each one is trimmed
to its own longest history and little compute goes to padding.  With
``train_time_budget`` the schedule has the same shape over the fraction of the
budget spent instead of the fraction of ``epochs * steps`` done (warm-up over the
first ``warmup_ratio`` of the time, then cosine decay to the end of the budget),
so a budget-limited run warms up briefly and anneals whatever the machine's
speed.  ``precision: bf16`` runs the training forward and backward under bf16
autocast (weights, optimizer state and evaluation stay fp32).

Evaluation replaces RecBole's full sort: the model's trie-constrained beam
search (``ranking_mode: beam``) or the exact top K of the ranking of every item by its
summed token log-probs (``ranking_mode: exact``).  Beam results go straight
into RecBole's collector as the ranked hit matrix (``rec.topk``), so RecBole's
metrics are computed unchanged without a dense ``[users, n_items]`` score
tensor.  History items are not masked, as in RecBole's sequential path.

Diagnostics, written to ``last_diagnostics``: prefix-level Recall@K for prefix
lengths 1..L (APAO §5.4) from every beam evaluation, and, when ``evaluate`` is
called with ``diagnostics=True`` (the test pass), the pruning rate PR@K (BEAR
Fig. 6): among targets that the exact ranking puts in the top K, the fraction
beam search loses, measured on ``pruning_rate_users`` sampled users (0 = not measured).

Progress and TensorBoard (on top of :class:`SequentialTrainer`'s): the training
bar advances per micro-batch and shows the running loss; the PR@K pass has a
bar over its users.  Per epoch TensorBoard gets every loss part as
``Loss/<part>`` (``ce``, APAO's ``prefix`` and ``prefix_m``, BEAR's ``bear_reg``
and ``violation_rate``, ``msl``, ...; parts of ``a+b`` losses as ``a/<part>``),
APAO's prefix weights as ``PrefixWeight/w_m`` (epoch means), the learning rate,
and prefix-level recall of the validation as ``PrefixRecall@K/level_m``.
"""

import contextlib
import math
import re
from collections import defaultdict

import torch
from recbole.data.interaction import cat_interactions
from torch.nn.utils import clip_grad_norm_, get_total_norm

from recbole_genrec import distributed
from recbole_genrec.errors import ConfigError
from recbole_genrec.layers.exact_topk import top_k_of_table
from recbole_genrec.progress import progress_bar
from recbole_genrec.trainer.checkpoint_io import load_checkpoint
from recbole_genrec.trainer.sequential_trainer import SequentialTrainer



def _cosine(progress: float) -> float:
    """Cosine decay factor from 1 (progress 0) to 0 (progress >= 1)."""
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
_PREFIX_WEIGHT = re.compile(r"(^|/)w_\d+$")  # APAO's loss parts w_1, w_2, ... (apao/w_1 in a+b)


class GenerativeTrainer(SequentialTrainer):
    def __init__(self, config, model):
        super().__init__(config, model)
        self.topk = list(config["topk"])
        self.ranking_mode = config["ranking_mode"]  # beam | exact (checked by the config)
        if self.ranking_mode == "beam" and max(self.topk) > model.beam_size:
            self.logger.warning(
                f"beam_size={model.beam_size} < max(topk)={max(self.topk)}: beam search returns "
                f"only {model.beam_size} items, so @K metrics for K > {model.beam_size} count "
                "those alone (a beam-size sweep's setting; use beam_size >= max(topk) otherwise)")
        unsupported = [k for k in ("rec.score", "rec.meanrank", "data.label")
                       if self.eval_collector.register.need(k)]
        if unsupported:
            raise ConfigError(f"metrics {config['metrics']} need {unsupported}; generative "
                             "evaluation provides ranked lists (rec.topk, rec.items) only")
        self.micro_batch_size = config["micro_batch_size"] or config["train_batch_size"]
        self.autocast_dtype = PRECISIONS[config["precision"]]
        self.scheduler = None
        self._resumed_scheduler_state = None
        self.loss_history = []
        self.last_diagnostics = {}

    # optimisation ------------------------------------------------------------------
    def _build_optimizer(self, **kwargs):
        params = kwargs.pop("params", self.model.parameters())
        return torch.optim.AdamW(params, lr=self.config["learning_rate"],
                                 weight_decay=self.config["weight_decay"] or 0.0)

    def _build_scheduler(self, steps_per_epoch: int):
        total = max(1, self.epochs * steps_per_epoch)
        warmup = math.ceil(self.config["warmup_ratio"] * total)

        def by_steps(step):
            return (step + 1) / warmup if step < warmup else _cosine((step - warmup) / max(1, total - warmup))

        def by_time(step):  # the same shape over the fraction of train_time_budget spent
            spent = self.shared_budget_spent() / self.time_budget
            ratio = self.config["warmup_ratio"]
            return spent / ratio if spent < ratio else _cosine((spent - ratio) / (1 - ratio))

        timed = self.time_budget and self._budget_start is not None
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, by_time if timed else by_steps)

    def _training_forward(self, micro):
        """The loss of one micro-batch; through ``DistributedDataParallel`` (which
        averages the gradients over the ranks) in a data-parallel run."""
        if distributed.active():
            return self.distributed_model(micro)  # the model's forward is its loss
        return self.model.calculate_loss(micro)

    def _grad_sync(self, last: bool):
        """Gradients are averaged over the ranks once per optimizer step: after the last
        micro-batch, not after each (DDP's ``no_sync`` for the others)."""
        if distributed.active() and not last:
            return self.distributed_model.no_sync()
        return contextlib.nullcontext()

    def _micro_batches(self, interaction):
        order = torch.argsort(self.model.micro_batch_key(interaction))
        return [interaction[idx] for idx in order.split(self.micro_batch_size)]

    def _run_train_epoch(self, train_data, epoch_idx, show_progress=False):
        if self.scheduler is None:
            self.scheduler = self._build_scheduler(len(train_data))
            if self._resumed_scheduler_state:
                self.scheduler.load_state_dict(self._resumed_scheduler_state)
                # building the scheduler set the step-0 rate; the next step uses the stored one
                for group, lr in zip(self.optimizer.param_groups, self.scheduler.get_last_lr()):
                    group["lr"] = lr
        self.model.train()
        if distributed.active() and train_data.shuffle:
            train_data.sampler.set_epoch(epoch_idx)  # each epoch its own shard order
        sums, n_seen, step_losses = defaultdict(float), 0, []
        autocast = torch.autocast(self.device.type, dtype=self.autocast_dtype,
                                  enabled=self.autocast_dtype is not None)
        with self._train_bar(train_data, epoch_idx, show_progress) as bar:
            for interaction in train_data:
                interaction = interaction.to(self.device)
                self.optimizer.zero_grad()
                batch_loss = 0.0
                micros = self._micro_batches(interaction)
                # each target weighs the same (sequence mode: a row holds several)
                sizes = [self.model.n_targets(micro) for micro in micros]
                for i, (micro, size) in enumerate(zip(micros, sizes)):
                    with autocast, self._grad_sync(last=i == len(micros) - 1):
                        loss = self._training_forward(micro)
                        (loss * (size / sum(sizes))).backward()
                    value = loss.item()
                    batch_loss += value * size / sum(sizes)
                    sums["loss"] += value * size
                    for name, value in self.model.last_loss_parts.items():
                        sums[name] += float(value) * size
                    n_seen += size
                    bar.update(len(micro))
                    bar.set_postfix_str(f"loss {sums['loss'] / n_seen:.4f}", refresh=False)
                if self.clip_grad_norm:
                    grad_norm = clip_grad_norm_(self.model.parameters(), **self.clip_grad_norm)
                else:
                    grad_norm = get_total_norm([p.grad for p in self.model.parameters()
                                                if p.grad is not None])
                batch_loss = float(distributed.mean(torch.tensor(batch_loss)))
                self.divergence.check(epoch_idx, batch_loss, float(grad_norm))
                step_losses.append(round(batch_loss, 6))
                self.optimizer.step()
                self.scheduler.step()
        names = list(sums)  # the same on every rank
        totals = distributed.mean(torch.tensor([sums[n] for n in names] + [n_seen], dtype=torch.float64))
        means = {name: float(total) / max(1.0, float(totals[-1])) for name, total in zip(names, totals)}
        record = {"epoch": epoch_idx, **means, "lr": self.scheduler.get_last_lr()[0],
                  **self.model.loss.state_summary(), "step_loss": step_losses}
        self.loss_history.append(record)
        if self.config["verbose"]:
            self.logger.info(f"epoch {epoch_idx} loss parts: " + ", ".join(
                f"{k} {v:.4g}" for k, v in means.items() if k != "loss"))
        return means["loss"]

    def epoch_scalars(self, epoch, validated) -> dict:
        scalars = super().epoch_scalars(epoch, validated)
        for name, value in self.loss_history[-1].items():
            if isinstance(value, float) and name not in ("loss", "lr"):
                group = "PrefixWeight" if _PREFIX_WEIGHT.search(name) else "Loss"
                scalars[f"{group}/{name}"] = value
        if validated:
            for k, levels in self.last_diagnostics.get("prefix_recall", {}).items():
                scalars.update({f"PrefixRecall{k}/level_{m}": v
                                for m, v in enumerate(levels, start=1)})
        return scalars

    def loss_state_summary(self) -> dict:
        return {"final": self.model.loss.state_summary(), "per_epoch": self.loss_history}

    # checkpoints -------------------------------------------------------------------
    def _checkpoint_state(self, epoch):
        state = super()._checkpoint_state(epoch)
        state["scheduler"] = self.scheduler.state_dict() if self.scheduler else None
        return state

    def extra_training_state(self) -> dict:
        return {"loss_history": self.loss_history}

    def restore_extra_training_state(self, state):
        self.loss_history = list(state["loss_history"])
        self._resumed_scheduler_state = state.get("scheduler")

    def resume_checkpoint(self, resume_file):
        super().resume_checkpoint(resume_file)
        checkpoint = load_checkpoint(resume_file, "resume_file", self.device)
        self._resumed_scheduler_state = checkpoint.get("scheduler")

    def init_from_checkpoint(self, path):
        """Start from another run's weights (second-stage losses: dpo, dmpo, sdpo)."""
        checkpoint = load_checkpoint(path, "--init_from", self.device)
        stored = checkpoint.get("config") or {}
        trained = (f"trained as {stored.get('model')} on {stored.get('dataset')}; this run is "
                   f"{self.config['model']} on {self.config['dataset']}")
        todo = "give a checkpoint of the same model, dataset and architecture options"
        try:
            missing, unexpected = self.model.load_state_dict(checkpoint["state_dict"], strict=False)
        except RuntimeError as e:  # tensor shapes differ
            detail = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
            raise ConfigError(f"--init_from={path} does not fit this model ({trained}): {detail}",
                              None, todo) from None
        bad = [k for k in missing + unexpected if not k.startswith("loss.")]
        if bad:
            raise ConfigError(f"--init_from={path} does not match the model ({trained}): "
                              f"parameters {bad[:3]} differ", None, todo)
        self.logger.info(f"Initialised model weights from {path}")
        self.divergence.reset_reference()  # growth is measured from these weights
        if hasattr(self.model.loss, "on_init_from"):
            self.model.loss.on_init_from(self.model)

    # evaluation --------------------------------------------------------------------
    def _collect_batch(self, batched_data):
        interaction, _, positive_u, positive_i = batched_data
        interaction = interaction.to(self.device)
        target = torch.zeros(len(interaction), dtype=torch.long, device=self.device)
        target[positive_u] = positive_i.to(self.device)
        k = max(self.topk)
        if self.ranking_mode == "exact":
            items = top_k_of_table(self.model.full_sort_predict(interaction), k)
        else:
            result = self.model.beam_search(interaction)
            items = result.items[:, :k]
            if items.shape[1] < k:  # beam narrower than K: the list ends early (item 0 = none)
                items = torch.nn.functional.pad(items, (0, k - items.shape[1]))
            self._count_prefix_hits(result, target)
        hits = (items == target[:, None]).int()
        struct = self.eval_collector.data_struct
        struct.update_tensor("rec.topk", torch.cat([hits, torch.ones_like(hits[:, :1])], 1))
        if self.eval_collector.register.need("rec.items"):
            struct.update_tensor("rec.items", items)
        self._eval_targets.append(target.cpu())
        return interaction

    def _count_prefix_hits(self, result, target):
        """Per user, level and K: is the target's prefix of that level in the top K?"""
        trie = self.model.trie
        hits = torch.stack([
            torch.stack([(nodes[:, :k] == trie.item_node[target, level][:, None]).any(1)
                         for k in self.topk], dim=1)
            for level, nodes in enumerate(result.level_nodes, start=1)], dim=1)  # [B, L, |K|]
        self._prefix_hits.append(hits.cpu())

    def per_user_outputs(self) -> dict:
        outputs = {"target": torch.cat(self._eval_targets)}
        if self._prefix_hits:
            outputs["prefix_hits"] = torch.cat(self._prefix_hits)
        return outputs

    def set_per_user_outputs(self, outputs):
        self._eval_targets = [outputs["target"]]
        if "prefix_hits" in outputs:
            self._prefix_hits = [outputs["prefix_hits"]]

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False,
                 diagnostics=False):
        self._prefix_hits, self._eval_targets = [], []
        result = super().evaluate(eval_data, load_best_model, model_file, show_progress)
        self.last_diagnostics = {}
        if self.ranking_mode == "beam":
            recall = torch.cat(self._prefix_hits).double().mean(0)  # [L, |K|]
            self.last_diagnostics["prefix_recall"] = {
                f"@{k}": [round(float(r), 6) for r in recall[:, j]] for j, k in enumerate(self.topk)}
        if diagnostics and self.ranking_mode == "beam" and self.config["pruning_rate_users"]:
            self.last_diagnostics["pruning_rate"] = self.pruning_rate(eval_data, show_progress)
        return result

    @torch.no_grad()
    def pruning_rate(self, eval_data, show_progress=False) -> dict:
        """PR@K on a sample of the users of the last evaluation (BEAR Fig. 6).

        A target is *lost* when the exact ranking puts it in the top K but beam
        search does not return it.  (Beam scores are exact scores, so a target
        that beam search keeps ranks at least as high there as in the exact
        ranking.)  ``targets@K`` counts the sampled users whose target is in the
        exact top K (the denominator); with none, PR@K is undefined (None).

        The sample is drawn from all evaluated users (seeded); in a data-parallel
        run each rank ranks the sampled users of its shard and the ranks are
        gathered, so PR@K is the one-process value.
        """
        users = cat_interactions([batch[0] for batch in eval_data])  # this rank's shard
        generator = torch.Generator().manual_seed(self.config["seed"])
        sample = torch.randperm(len(self.last_eval_uids), generator=generator)[
            : self.config["pruning_rate_users"]]
        targets = torch.cat(self._eval_targets)[sample]
        beam_ranks = torch.tensor(self.last_eval_ranks)[sample]  # 0 = not in top max(K)
        row_of = {}  # user id -> its first row in this rank's users
        for row, uid in enumerate(users[eval_data._dataset.uid_field].tolist()):
            row_of.setdefault(uid, row)
        mine = [(j, row_of[uid]) for j, uid in enumerate(self.last_eval_uids[sample].tolist())
                if uid in row_of]
        picked = torch.tensor([j for j, _ in mine], dtype=torch.long)  # indices into sample
        rows = torch.tensor([r for _, r in mine], dtype=torch.long)
        ranks = [torch.zeros(0, dtype=torch.long)]
        chunk = self.config["full_rank_batch_users"]
        with progress_bar(len(rows), "exact ranking (PR@K)", "user", show_progress) as bar:
            for part, target in zip(rows.split(chunk), targets[picked].split(chunk)):
                scores = self.model.full_sort_predict(users[part].to(self.device))
                target_score = scores.gather(1, target.to(self.device)[:, None])
                ranks.append((scores > target_score).sum(1).cpu() + 1)
                bar.update(len(part))
        full_ranks = torch.zeros(len(sample), dtype=torch.long)
        for rank_picked, rank_ranks in distributed.gather((picked, torch.cat(ranks))):
            full_ranks[rank_picked] = rank_ranks  # a user on two ranks: the same rank twice
        out = {"users": len(sample)}
        for k in self.topk:
            in_full = full_ranks <= k
            lost = in_full & ((beam_ranks == 0) | (beam_ranks > k))
            n_in = int(in_full.sum())
            out[f"targets@{k}"] = n_in
            out[f"@{k}"] = round(float(lost.sum()) / n_in, 6) if n_in else None
        return out
