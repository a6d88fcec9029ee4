"""Training rows for sequence mode: every target once, in as few causal passes as possible.

RecBole's sequential augmentation gives one row per training target ``j`` of a
user (items ``i_0 i_1 ...`` in time order): the history ``i_{max(0, j-W)} ..
i_{j-1}`` and the target ``i_j``, ``W = MAX_ITEM_LIST_LENGTH``.  Per-prefix
training re-encodes each of those histories.  Sequence mode keeps, per user:

* the *first-window row*: the row of the largest target ``j* <= W``.  Its items
  ``i_0 .. i_j*`` hold every target ``j <= j*`` with exactly its per-prefix
  history ``i_0 .. i_{j-1}`` (all of them start at ``i_0``), so one causal pass
  over it trains all ``j*`` targets;
* for the targets ``j > W`` (users with more than ``W + 1`` training items):
  every ``s``-th row, ``s = sequence_stride``, training its last ``s`` targets
  (and the user's last row for the remainder).  Target ``k`` of such a row sees
  the ``k`` items before it in the row's window: between ``W - s + 1`` and
  ``W`` items.  ``s = 1`` (the default) is exact -- each of these targets has
  its own sliding window, its per-prefix history -- and costs one pass per
  target; a larger ``s`` trades history length for fewer passes.

A row carries ``trained_targets``, how many of its last targets it trains.
Each target is trained once per epoch (``benchmarks/sequence_training.py``
counts, on Office, how many lie beyond the window).
"""

import torch

TRAINED_TARGETS = "trained_targets"  # the interaction field: the row trains its last n targets


def sequence_rows(user: torch.Tensor, history_len: torch.Tensor, max_len: int, stride: int = 1):
    """Rows to keep and how many targets each trains.

    ``user [N]`` and ``history_len [N]`` are the augmented training rows, grouped
    by user in time order (as RecBole's ``data_augmentation`` and leave-one-out
    split leave them).  Returns ``keep [N]`` (bool), ``trained_targets [N]`` (0 where
    not kept) and ``beyond [N]`` (bool: the row's target lies past the first window).
    """
    if not 1 <= stride <= max_len:
        raise ValueError(f"sequence_stride={stride}: expected 1 <= stride <= "
                         f"MAX_ITEM_LIST_LENGTH={max_len}")
    n = len(user)
    new_user = torch.ones(n, dtype=torch.bool)
    new_user[1:] = user[1:] != user[:-1]
    starts = torch.nonzero(new_user).squeeze(1)
    group = torch.cumsum(new_user.long(), 0) - 1
    target_index = torch.arange(n) - starts[group] + 1  # j: rank within the user + 1
    expected = target_index.clamp(max=max_len)
    if not torch.equal(history_len, expected):
        bad = int(torch.nonzero(history_len != expected)[0])
        raise ValueError(
            f"training row {bad}: history length {int(history_len[bad])}, expected "
            f"{int(expected[bad])} for target {int(target_index[bad])} of its user; "
            "sequence mode needs the rows of each user together and in time order")
    last_of_user = torch.ones(n, dtype=torch.bool)
    last_of_user[:-1] = group[1:] != group[:-1]
    window = target_index <= max_len
    first_window = window & (last_of_user | ~torch.cat([window[1:], window.new_zeros(1)]))
    beyond = target_index - max_len  # 1, 2, ... for the targets past the first window
    step = ~window & ((beyond % stride == 0) | last_of_user)
    trained = torch.zeros(n, dtype=torch.long)
    trained[first_window] = target_index[first_window]
    remainder = beyond % stride
    trained[step] = torch.where(remainder[step] == 0, stride, remainder[step])
    return first_window | step, trained, ~window


def window_targets(item_seq: torch.Tensor, item_len: torch.Tensor, target: torch.Tensor,
                   trained_targets: torch.Tensor):
    """A row's items and which of them are trained targets.

    ``item_seq [B, S]`` (left-aligned), ``item_len [B]``, ``target [B]``,
    ``trained_targets [B]`` -> ``items [B, S1]`` (the history followed by the
    target, ``S1 = max(item_len) + 1``, 0 = padding) and ``trained [B, S1 - 1]``:
    ``trained[b, k-1]`` marks item ``k`` (predicted from items ``0..k-1``), true
    for the row's last ``trained_targets`` items.
    """
    B = len(item_len)
    S1 = int(item_len.max()) + 1
    items = torch.cat([item_seq, item_seq.new_zeros(B, 1)], 1)[:, :S1].clone()
    items[torch.arange(B, device=items.device), item_len] = target
    k = torch.arange(1, S1, device=items.device)[None, :]
    trained = (k <= item_len[:, None]) & (k > (item_len - trained_targets)[:, None])
    return items, trained
