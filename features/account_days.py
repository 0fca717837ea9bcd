"""Rows keyed by (account, day) in one sorted int64 array, for the numpy forms of a grid: each
account's last row before a date is then one binary search per account, whatever the date.

A key is ``code * SPAN + day + SPAN // 2`` (days may be negative: the half span keeps them
inside their account's range). Used by the activities' last QBR (``families_np``) and the
latest NPS answer (``voice_np``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

SPAN = 2**40  # an account's range of keys


def keys(code: np.ndarray, day: np.ndarray) -> np.ndarray:
    """The (account code, day number) pairs as keys; sorted pairs give sorted keys."""
    return code * SPAN + day + SPAN // 2


def last_before(sorted_keys: np.ndarray, accounts: int, day: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``accounts`` codes: the position in ``sorted_keys`` of its last row before
    ``day`` (any position where it has none), and whether it has one."""
    import numpy as np

    starts = np.arange(accounts, dtype=np.int64) * SPAN
    if not len(sorted_keys):
        return np.zeros(accounts, np.int64), np.zeros(accounts, bool)
    last = np.searchsorted(sorted_keys, starts + day + SPAN // 2) - 1
    at = np.maximum(last, 0)
    return at, (last >= 0) & (sorted_keys[at] >= starts)


def day_of(sorted_keys: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The day numbers of the rows at ``at`` of ``sorted_keys`` (``last_before``'s positions;
    zeros where ``sorted_keys`` is empty)."""
    import numpy as np

    if not len(sorted_keys):
        return np.zeros(len(at), np.int64)
    return sorted_keys[at] % SPAN - SPAN // 2
