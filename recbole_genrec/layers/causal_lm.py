"""A Hugging Face causal LM as a recommender backbone: build it, encode prompts
once, continue them with cached keys/values.

Building (:func:`build_causal_lm`):

* ``llm_path`` set: weights and tokenizer from that local folder (e.g. a
  downloaded Llama-3.2-1B); nothing is fetched from the network;
* ``llm_path: ~``: a small ``LlamaForCausalLM`` initialised at random
  (``random_*`` options) with a byte-level BPE tokenizer trained offline on the
  given corpus (the catalogue's titles and the prompt) with the ``tokenizers``
  package -- deterministic, so another process rebuilds the same vocabulary;
* ``finetune: lora`` wraps the model with ``peft`` LoRA adapters (``lora_*``;
  the base weights are frozen), ``full`` trains every weight.

Running: prompts are left-padded ``[U, P]`` (real tokens at positions
``0 .. n_real - 1``); :func:`encode_prompts` runs them once and keeps the
per-layer keys/values; :func:`continue_prompts` appends ``T`` tokens to ``N``
rows that each belong to a user (``users [N]``), attending to that user's
prompt -- targets under teacher forcing, sampled candidates, or beams.
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from recbole_genrec.errors import ConfigError


class TextTokenizer:
    """The few calls the recommender needs, for a ``transformers`` tokenizer (a
    local model folder) or a ``tokenizers.Tokenizer`` (trained here)."""

    def __init__(self, tokenizer, end_id: int, bos_id: int | None):
        self.tokenizer, self.end_id, self.bos_id = tokenizer, end_id, bos_id

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens."""
        if hasattr(self.tokenizer, "encode_batch"):  # tokenizers.Tokenizer
            return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def __len__(self):
        if hasattr(self.tokenizer, "get_vocab_size"):
            return self.tokenizer.get_vocab_size()
        return len(self.tokenizer)


SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>"]


def train_tokenizer(corpus: list[str], vocab_size: int) -> TextTokenizer:
    """Byte-level BPE trained on ``corpus`` (every string can be encoded)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(corpus, trainer)
    return TextTokenizer(tokenizer, tokenizer.token_to_id("<eos>"), tokenizer.token_to_id("<bos>"))


def load_tokenizer(path: Path) -> TextTokenizer:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"the tokenizer in {path} has no end-of-sequence token",
                          "option llm_path", "LLMRec ends every title with it")
    return TextTokenizer(tokenizer, tokenizer.eos_token_id, tokenizer.bos_token_id)


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def build_causal_lm(config, corpus: list[str]):
    """-> ``(model, tokenizer)`` as the config says (see the module doc)."""
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    dtype = DTYPES[config["llm_dtype"]]
    if config["llm_path"]:
        path = Path(config["llm_path"]).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path / 'config.json'} not found", "option llm_path",
                              "point llm_path at a local folder with the model's weights and "
                              "tokenizer (e.g. a downloaded meta-llama/Llama-3.2-1B)")
        tokenizer = load_tokenizer(path)
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, local_files_only=True)
    else:
        tokenizer = train_tokenizer(corpus, config["random_vocab_size"])
        d, heads = config["random_hidden_size"], config["random_heads"]
        if d % heads:
            raise ConfigError(f"random_hidden_size={d} is not a multiple of random_heads={heads}")
        model = LlamaForCausalLM(LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=d, intermediate_size=config["random_intermediate_size"],
            num_hidden_layers=config["random_layers"], num_attention_heads=heads,
            num_key_value_heads=heads, max_position_embeddings=4096, tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.end_id, pad_token_id=0)).to(dtype)
    if config["finetune"] == "lora":
        model = add_lora(model, config)
    return model, tokenizer


def add_lora(model, config):
    """``peft`` LoRA adapters on ``lora_target_modules``; every other weight frozen."""
    from peft import LoraConfig, get_peft_model

    targets = list(config["lora_target_modules"])
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = sorted(set(targets) - names)
    if missing:
        raise ConfigError(f"lora_target_modules {missing} are not modules of the model",
                          "option lora_target_modules",
                          f"choose among e.g. {sorted(n for n in names if n.endswith('proj'))}")
    return get_peft_model(model, LoraConfig(
        r=config["lora_r"], lora_alpha=config["lora_alpha"], lora_dropout=config["lora_dropout"],
        target_modules=targets, task_type="CAUSAL_LM"))


@dataclass
class PromptContext:
    kv: list  # per layer (keys, values) [U, H, P, dh] of the prompts
    mask: torch.Tensor  # [U, P] bool, True = real token (left padding)
    n_real: torch.Tensor  # [U] real prompt tokens
    last_hidden: torch.Tensor  # [U, d] final hidden state at the prompt's last token


def _cache(kv):
    from transformers import DynamicCache

    cache = DynamicCache()
    for layer, (k, v) in enumerate(kv):
        cache.update(k, v, layer)
    return cache


def _kv(cache) -> list:
    return [(layer.keys, layer.values) for layer in cache.layers]


def encode_prompts(decoder, tokens: torch.Tensor, mask: torch.Tensor) -> PromptContext:
    """``tokens, mask [U, P]`` (left-padded) -> their cached keys/values."""
    positions = (mask.long().cumsum(1) - 1).clamp(min=0)
    out = decoder(input_ids=tokens, attention_mask=mask.long(), position_ids=positions,
                  use_cache=True)
    return PromptContext(_kv(out.cache), mask, mask.sum(1), out.last_hidden_state[:, -1])


def continue_prompts(decoder, ctx: PromptContext, users: torch.Tensor, tokens: torch.Tensor,
                     kv=None, generated: int = 0):
    """``tokens [N, T]`` after ``generated`` earlier tokens of rows of ``users [N]``.

    ``kv``: the rows' keys/values so far (prompt + earlier tokens, ``[N, H, P+g, dh]``
    per layer), or ``None`` to start from the users' prompts.  Returns hidden
    states ``[N, T, d]`` and the rows' keys/values including ``tokens``."""
    N, T = tokens.shape
    if kv is None:
        kv = [(k.index_select(0, users), v.index_select(0, users)) for k, v in ctx.kv]
    mask = torch.cat([ctx.mask.index_select(0, users).long(),
                      tokens.new_ones(N, generated + T)], 1)
    positions = ctx.n_real.index_select(0, users)[:, None] + generated + torch.arange(
        T, device=tokens.device)
    out = decoder(input_ids=tokens, attention_mask=mask, position_ids=positions,
                  cache=_cache(kv), use_cache=True)
    return out.last_hidden_state, _kv(out.cache)
