"""LLMRec: a pretrained causal LM that recommends the next item's title.

The LLM-based recommender of the BEAR paper (Yang et al., 2026, §2.1, Fig. 2;
the BIGRec backbone of its Table 2, Bao et al., 2025): the user's history is
written into an instruction prompt by item titles, the model generates the
next item's title, and constrained beam search over the catalogue's titles
returns the top ``B`` items.

* Backbone: a Hugging Face causal LM from a local folder (``llm_path``) or a
  small random Llama for CPU runs, fine-tuned fully or with LoRA
  (:mod:`recbole_genrec.layers.causal_lm`).
* Identifiers: each item's title (``title_field``; collisions by
  ``title_collision``, :mod:`recbole_genrec.data.item_titles`) tokenized with
  a leading space (it follows ``Output:``) and ended by the tokenizer's EOS;
  variable lengths live on the project's trie and beam search through
  :mod:`recbole_genrec.layers.title_trie`.  An item's score is the sum of its
  tokens' log-probs, ``log P(y|x) = sum_t log P(y_t | y_<t, x)`` (§2.2).
* Prompt (``prompt_template``, default the wording of Fig. 2): the history's
  titles in order, the instruction, then the target.  It is encoded once per
  user; targets, sampled candidates and beams continue from its keys/values.
* Losses: ``ce`` is Eq. 2.1 summed over the batch's target tokens and divided
  by their number; ``msl``, ``bear`` (Eq. 3.5, the top-``B`` threshold over the
  vocabulary at each step of the title, or over the trie's valid tokens with
  ``bear_constrained``) and the preference losses (S-DPO, ...) use the same
  per-token log-probs with the padding after each title masked (``TrainBatch.mask``).
  APAO is refused: its prefix losses and worst-prefix weights index the
  prefix lengths ``m = 1..L`` of a fixed-depth tree, and titles of different
  lengths have no common ``m``-th level.

Everything else -- the chunked beam search, exact ranking (PR@K), the loss
hook, sampling negatives -- is :class:`GenerativeRecommender`'s.
"""

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender

from recbole_genrec.data.item_titles import check_unique_token_ids, disambiguate_titles, item_titles
from recbole_genrec.errors import ConfigError
from recbole_genrec.layers.causal_lm import build_causal_lm, continue_prompts, encode_prompts
from recbole_genrec.layers.prefix_trie import PrefixTrie
from recbole_genrec.layers.title_trie import TitleDecoding, identifier_mask, title_codes
from recbole_genrec.losses import build_loss
from recbole_genrec.losses.base import TrainBatch
from recbole_genrec.model.generative_recommender import GenerativeRecommender

HISTORY = "{history}"


class LLMRec(GenerativeRecommender):
    def __init__(self, config, dataset):
        # GenerativeRecommender.__init__ builds semantic-ID tables; titles replace them
        SequentialRecommender.__init__(self, config, dataset)
        if "apao" in (config["loss"] or "").split("+"):
            raise ConfigError("--loss=apao needs fixed-depth identifiers (its prefix lengths "
                              "m = 1..L); LLMRec's titles have different lengths",
                              "model LLMRec", "use ce, msl, bear or a preference loss")
        template = config["prompt_template"]
        if template.count(HISTORY) != 1:
            raise ConfigError(f"prompt_template must contain {HISTORY} exactly once",
                              "option prompt_template")
        titles = disambiguate_titles(item_titles(dataset, config["title_field"],
                                                 config["title_missing"]),
                                     config["title_collision"],
                                     lambda i: str(dataset.id2token(dataset.iid_field, i)))
        entries = [config["history_item_template"].format(title=t) for t in titles]
        head, tail = template.split(HISTORY)
        separator = config["history_separator"]
        self.llm, self.tokenizer = build_causal_lm(
            config, corpus=[head, tail, separator] + [" " + t for t in titles[1:]] + entries[1:])
        target_ids = self.tokenizer.encode([" " + t for t in titles])
        check_unique_token_ids(target_ids, titles)
        self.end = self.tokenizer.end_id
        codes = title_codes(target_ids, self.end)  # [n_items, L]
        self.register_buffer("codes", codes, persistent=False)
        self.n_levels = self.n_semantic_levels = codes.shape[1]
        self.trie = PrefixTrie(codes)
        self.vocab_size = self.head().out_features
        self._register_prompt(head, tail, separator, entries)
        self.titles = titles
        self.train_mode = "prefix"
        self.beam_size = config["beam_size"]
        self.eval_chunk_users = config["eval_chunk_users"]
        self.exact_top_k = max(config["topk"])
        self.full_rank_batch_users = config["full_rank_batch_users"]
        self.loss = build_loss(config, self)

    def _register_prompt(self, head, tail, separator, entries):
        """Token tables the prompt is assembled from: ``[BOS] head e_1 sep e_2 ... e_n tail``."""
        bos = [] if self.tokenizer.bos_id is None else [self.tokenizer.bos_id]
        head_ids, tail_ids, sep_ids = self.tokenizer.encode([head, tail, separator])
        entry_ids = self.tokenizer.encode(entries[1:])
        width = max(map(len, entry_ids)) + len(sep_ids)
        # [2, n_items, W]: an item's entry as the first history item, and after a separator
        table = torch.zeros(2, len(entries), width, dtype=torch.long)
        length = torch.zeros(2, len(entries), dtype=torch.long)
        for item, ids in enumerate(entry_ids, start=1):
            for j, piece in enumerate((ids, sep_ids + ids)):
                table[j, item, : len(piece)] = torch.tensor(piece, dtype=torch.long)
                length[j, item] = len(piece)
        self.register_buffer("entry_tokens", table, persistent=False)
        self.register_buffer("entry_lengths", length, persistent=False)
        self.register_buffer("prompt_head", torch.tensor(bos + head_ids, dtype=torch.long),
                             persistent=False)
        self.register_buffer("prompt_tail", torch.tensor(tail_ids, dtype=torch.long),
                             persistent=False)

    # the language model -----------------------------------------------------------
    def causal_lm(self):
        """The ``transformers`` model (inside the LoRA wrapper, if any)."""
        return self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm

    def decoder(self):
        return self.causal_lm().get_decoder()

    def head(self):
        return self.causal_lm().get_output_embeddings()

    def token_logp(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden [..., d]`` -> next-token log-probs ``[..., V]`` (fp32)."""
        return F.log_softmax(self.head()(hidden).float(), dim=-1)

    # prompts ------------------------------------------------------------------------
    def prompt_tokens(self, interaction):
        """History titles in the template -> ``tokens, mask [B, P]``, left-padded."""
        seq, seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        seq = seq[:, : int(seq_len.max())]
        B, S = seq.shape
        after_first = (torch.arange(S, device=seq.device) > 0).long().expand(B, S)
        pieces = self.entry_tokens[after_first, seq]  # [B, S, W]
        lengths = self.entry_lengths[after_first, seq].masked_fill(seq == 0, 0)  # [B, S]
        real = torch.arange(pieces.shape[-1], device=seq.device) < lengths.unsqueeze(-1)
        head, tail = self.prompt_head.expand(B, -1), self.prompt_tail.expand(B, -1)
        tokens = torch.cat([head, pieces.flatten(1), tail], 1)
        real = torch.cat([torch.ones_like(head, dtype=torch.bool), real.flatten(1),
                          torch.ones_like(tail, dtype=torch.bool)], 1)
        order = torch.sort(real.long(), dim=1, stable=True).indices  # padding first, in order
        width = int(real.sum(1).max())
        tokens, real = tokens.gather(1, order)[:, -width:], real.gather(1, order)[:, -width:]
        return tokens.masked_fill(~real, 0), real

    def encode(self, interaction):
        return encode_prompts(self.decoder(), *self.prompt_tokens(interaction))

    # teacher forcing ----------------------------------------------------------------
    def decode(self, ctx, codes):
        """Hidden states ``[U, C, T, d]`` predicting ``codes [U, C, T]``."""
        U, C, T = codes.shape
        first = ctx.last_hidden[:, None, None, :].expand(U, C, 1, -1)
        if T == 1:
            return first
        users = torch.arange(U, device=codes.device).repeat_interleave(C)
        hidden, _ = continue_prompts(self.decoder(), ctx, users, codes[..., :-1].flatten(0, 1))
        return torch.cat([first, hidden.unflatten(0, (U, C))], 2)

    def code_logp(self, ctx, codes):
        """Token log-probs of identifiers ``[U, C, T]``, 0 after each one's end."""
        mask = identifier_mask(codes, self.end)
        width = int(mask.sum(-1).max())  # decode no further than the longest one
        logp = self.token_logp(self.decode(ctx, codes[..., :width]))
        token = logp.gather(-1, codes[..., :width].unsqueeze(-1)).squeeze(-1)
        token = token.masked_fill(~mask[..., :width], 0.0)
        return F.pad(token, (0, codes.shape[-1] - width))

    def train_batch(self, interaction) -> TrainBatch:
        items = interaction[self.POS_ITEM_ID]
        ctx = self.encode(interaction)
        codes = self.codes[items]
        mask = identifier_mask(codes, self.end)
        width = int(mask.sum(-1).max())
        codes, mask = codes[:, :width], mask[:, :width]
        logits = self.head()(self.decode(ctx, codes.unsqueeze(1)).squeeze(1)).float()
        return TrainBatch(ctx=ctx, items=items, codes=codes, logits=logits,
                          interaction=interaction, mask=mask)

    def predict(self, interaction):
        codes = self.codes[interaction[self.ITEM_ID]].unsqueeze(1)
        return self.code_logp(self.encode(interaction), codes).sum(-1).squeeze(1)

    # decoding -----------------------------------------------------------------------
    def decoding(self, ctx) -> TitleDecoding:
        return TitleDecoding(self, ctx, self.end)

    def first_logp(self, ctx):
        return self.token_logp(ctx.last_hidden)

    def continue_rows(self, ctx, users, tokens, kv, rows, generated):
        if kv is not None:
            kv = [(k.index_select(0, rows), v.index_select(0, rows)) for k, v in kv]
        hidden, kv = continue_prompts(self.decoder(), ctx, users, tokens, kv, generated)
        return self.token_logp(hidden[:, -1]), kv
