"""Decoder-only backbone: causal masking and padding invariance."""

import torch
from recbole.data.interaction import Interaction

from generative_setup import build


def llama(tiny_dataset):
    config, model, train, valid, test = build("LlamaGR", tiny_dataset)
    return model.eval(), test


def histories(model, rows):
    """Interaction with the given item-id histories (padded to the longest)."""
    length = max(len(r) for r in rows)
    seq = torch.tensor([r + [0] * (length - len(r)) for r in rows])
    return Interaction({model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: torch.tensor([len(r) for r in rows])})


def test_target_logp_does_not_see_later_tokens(tiny_dataset):
    model, _ = llama(tiny_dataset)
    ctx = model.encode(histories(model, [[3, 5, 7]]))
    codes = model.codes[torch.tensor([[4, 9]])]  # [U=1, C=2, L]: same first code? make it so
    codes[0, 1, 0] = codes[0, 0, 0]
    codes[0, 1, 1:] = (codes[0, 0, 1:] + 1) % 4  # differ only after the first level
    logp = model.level_logits(model.decode(ctx, codes)).log_softmax(-1)  # [1, 2, L, K]
    # position 0 and 1 see only SEP and the (equal) first code
    assert torch.allclose(logp[0, 0, :2], logp[0, 1, :2], atol=1e-6)
    assert not torch.allclose(logp[0, 0, 2], logp[0, 1, 2])


def test_history_logp_does_not_depend_on_padding(tiny_dataset):
    model, _ = llama(tiny_dataset)
    short, long = [3, 5], [1, 2, 4, 6, 8, 10, 12]
    alone = model.encode(histories(model, [short]))
    padded = model.encode(histories(model, [short, long]))  # short is padded to 7 items
    codes = model.codes[torch.tensor([[9, 11, 13]])]
    a = model.code_logp(alone, codes)
    b = model.code_logp(padded, codes.expand(2, -1, -1))[:1]
    assert torch.allclose(a, b, atol=1e-5)
    # and the incremental decoder agrees too
    la = model.decoding(alone).step(None, None)
    lb = model.decoding(padded).step(None, None)[:1]
    assert torch.allclose(la, lb, atol=1e-5)


def test_history_order_matters(tiny_dataset):
    """Positions are real: reversing the history changes the prediction."""
    model, _ = llama(tiny_dataset)
    a = model.decoding(model.encode(histories(model, [[3, 5, 7]]))).step(None, None)
    b = model.decoding(model.encode(histories(model, [[7, 5, 3]]))).step(None, None)
    assert not torch.allclose(a, b)


def test_output_embedding_is_tied(tiny_dataset):
    model, _ = llama(tiny_dataset)
    w = model.output_weight()
    assert w.data_ptr() == model.embedding.weight[2:].data_ptr()
    assert w.shape == (model.n_levels, model.codebook_size, 16)
