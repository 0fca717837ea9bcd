"""The grid's distinct counts tell users (and undeclared event types) apart by the top bits of
their hash, and fall back to a dictionary of the strings when two of one account share them:
either way each row's next row of the same entity is the same."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from features.usage_grid import _by_dictionary, _by_hash, _LastDays


def _hash(name: str | None) -> int:
    return int.from_bytes(hashlib.sha256(str(name).encode()).digest()[:8], "big")


def _rows(keys: list[tuple[int, str | None, int]], hashes=_hash) -> pa.Table:
    """Rows (a, entity, h, probe, last) of distinct (account, entity, probe) keys."""
    return pa.table({
        "a": pa.array([a for a, _, _ in keys], pa.int64()),
        "entity": pa.array([e for _, e, _ in keys], pa.string()),
        "h": pa.array([hashes(e) for _, e, _ in keys], pa.uint64()),
        "probe": pa.array([p for _, _, p in keys], pa.int32()),
        "last": pa.array([10 * p + i % 7 for i, (_, _, p) in enumerate(keys)], pa.int32()),
    })


def _as_set(found: _LastDays) -> list[tuple[int, int, int, int]]:
    return sorted(zip(found.account.tolist(), found.probe.tolist(), found.last.tolist(),
                      found.next_probe.tolist(), strict=True))


KEYS = st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["u1", "u2", "u3", "x", None]),
                          st.integers(0, 6)), min_size=1, max_size=40, unique=True)


@settings(max_examples=200, deadline=None)
@given(keys=KEYS)
def test_hashed_and_colliding_entities_give_the_dictionary_s_rows(keys):
    def by_dictionary(rows: pa.Table) -> _LastDays:
        account = rows.column("a").to_numpy()
        probe = rows.column("probe").to_numpy().astype(np.int64)
        order, same = _by_dictionary(rows, account, probe)
        next_probe = np.full(len(order), np.iinfo(np.int32).max, dtype=np.int64)
        next_probe[:-1] = np.where(same, probe[order][1:], next_probe[:-1])
        return _LastDays(account[order], probe[order],
                         rows.column("last").to_numpy().astype(np.int64)[order], next_probe)

    expected = _as_set(by_dictionary(_rows(keys)))
    assert _as_set(_LastDays.of(_rows(keys))) == expected
    assert _as_set(_LastDays.of(_rows(keys, hashes=lambda e: 7))) == expected  # all collide


def test_two_entities_of_one_account_with_the_same_hash_fall_back():
    keys = [(0, "u1", 0), (0, "u2", 1), (0, "u1", 2), (1, "u1", 0)]
    account = np.array([a for a, _, _ in keys])
    probe = np.array([p for _, _, p in keys])
    assert _by_hash(_rows(keys, hashes=lambda e: 5), account, probe) is None
    order, same = _by_hash(_rows(keys), account, probe)
    # u1 and u2 of account 0 apart, each in probe order; account 1's u1 alone
    runs = [(keys[i][0], keys[i][1]) for i in order]
    assert sorted(runs[:3]) == [(0, "u1"), (0, "u1"), (0, "u2")]
    assert runs[3] == (1, "u1")
    u1 = [i for i in order[:3] if keys[i][1] == "u1"]
    assert [keys[i][2] for i in u1] == [0, 2]
    assert same.tolist().count(True) == 1  # only u1's two rows of account 0 follow each other


def test_the_same_entity_name_in_two_accounts_is_two_entities():
    found = _LastDays.of(_rows([(0, "u1", 0), (1, "u1", 1)], hashes=lambda e: 5))
    assert found.next_probe.tolist() == [np.iinfo(np.int32).max] * 2
