"""Training rows for sequence mode: every target once, in as few causal passes as possible.

RecBole's sequential augmentation gives one row per training target ``j`` of a
user (items ``i_0 i_1 ...`` in time order): the history ``i_{max(0, j-W)} ..
i_{j-1}`` and the target ``i_j``, ``W = MAX_ITEM_LIST_LENGTH``.  Per-prefix
training re-encodes each of those histories.  Sequence mode keeps, per user:

* the *first-window row*: the row of the largest target ``j* <= W``.  Its items
  ``i_0 .. i_j*`` hold every target ``j <= j*`` with exactly its per-prefix
  history ``i_0 .. i_{j-1}`` (all of them start at ``i_0``), so one causal pass
  over it predicts all ``j*`` targets (``all_positions = True``);
* every row of a target ``j > W``: its history is a sliding window that no other
  row's pass reproduces, so it trains on its own target only
  (``all_positions = False``), exactly as in per-prefix mode.

Each target is therefore trained once per epoch with the history it has in
per-prefix mode; users with more than ``W + 1`` training items pay one pass per
extra target (Office: ``benchmarks/sequence_training.py`` counts them).
"""

import torch

ALL_POSITIONS = "all_positions"  # the interaction field: loss on every target of the row


def sequence_rows(user: torch.Tensor, history_len: torch.Tensor, max_len: int):
    """Rows to keep and their ``all_positions`` flag.

    ``user [N]`` and ``history_len [N]`` are the augmented training rows, grouped
    by user in time order (as RecBole's ``data_augmentation`` and leave-one-out
    split leave them).  Returns ``(keep [N] bool, all_positions [N] bool)``.
    """
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
    window = target_index <= max_len
    # the first-window row: the last row of the user with j <= W
    last_in_window = window.clone()
    last_in_window[:-1] &= ~(window[1:] & (group[1:] == group[:-1]))
    keep = last_in_window | ~window
    return keep, last_in_window


def window_targets(item_seq: torch.Tensor, item_len: torch.Tensor, target: torch.Tensor,
                   all_positions: torch.Tensor):
    """A row's items and which of them are trained targets.

    ``item_seq [B, S]`` (left-aligned), ``item_len [B]``, ``target [B]``,
    ``all_positions [B]`` -> ``items [B, S1]`` (the history followed by the
    target, ``S1 = max(item_len) + 1``, 0 = padding) and ``trained [B, S1 - 1]``:
    ``trained[b, k-1]`` marks item ``k`` (predicted from items ``0..k-1``).
    """
    B = len(item_len)
    S1 = int(item_len.max()) + 1
    items = torch.cat([item_seq, item_seq.new_zeros(B, 1)], 1)[:, :S1].clone()
    items[torch.arange(B, device=items.device), item_len] = target
    k = torch.arange(1, S1, device=items.device)
    trained = (k[None, :] <= item_len[:, None]) & (all_positions[:, None] | (k[None, :] == item_len[:, None]))
    return items, trained
