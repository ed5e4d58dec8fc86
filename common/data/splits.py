"""Deterministic group-wise splits of datalist items: by ratio, k-fold and leave-one-group-out.

Items are dicts; ``group_key`` names the key whose value must never be in two sections (the patient, or
the case when every case is its own patient), and the optional ``stratify_key`` the key whose values are
spread evenly over the sections (the tumour class). A group's stratum is the most frequent value of its
items (the smallest value on a tie). Groups are sorted before any shuffling and every shuffle is a
``numpy.random.default_rng(seed)`` permutation, so the same items and seed always give the same split,
whatever the order the items come in. Within a section, items keep their input order.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "fold_groups",
    "group_strata",
    "leave_one_group_out",
    "split_by_group",
    "split_counts",
    "split_with_test",
]

Item = Mapping[str, Any]


def split_counts(n: int, ratios: Sequence[float]) -> list[int]:
    """Split ``n`` items by ``ratios`` (largest remainders); each positive ratio gets >= 1 if ``n`` allows."""
    weights = np.asarray(ratios, dtype=np.float64)
    if weights.ndim != 1 or weights.size == 0 or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"ratios must be non-negative with a positive sum, got {ratios}")
    exact = n * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    positive = weights > 0
    if n >= positive.sum():
        for i in np.flatnonzero(positive & (counts == 0)):
            counts[int(np.argmax(counts))] -= 1
            counts[i] += 1
    return counts.tolist()


def group_strata(
    items: Sequence[Item], group_key: str, stratify_key: str | None = None
) -> dict[Hashable, Any]:
    """``{group: stratum}`` in sorted group order; the stratum is ``None`` without ``stratify_key``."""
    values: dict[Hashable, list[Any]] = {}
    for item in items:
        values.setdefault(item[group_key], []).append(None if stratify_key is None else item[stratify_key])
    return {
        group: max(sorted(set(values[group])), key=values[group].count) if stratify_key is not None else None
        for group in sorted(values)
    }


def _shuffled_strata(strata: Mapping[Hashable, Any], seed: int) -> list[list[Hashable]]:
    """The groups of each stratum (strata in sorted order), each list shuffled by one shared generator."""
    members: dict[Any, list[Hashable]] = {}
    for group, stratum in strata.items():
        members.setdefault(stratum, []).append(group)
    rng = np.random.default_rng(seed)
    order = sorted(members, key=lambda s: (s is not None, s))  # None only when there is no stratify key
    return [[members[s][i] for i in rng.permutation(len(members[s]))] for s in order]


def split_by_group(
    items: Sequence[Item],
    ratios: Sequence[float],
    names: Sequence[str],
    *,
    group_key: str,
    stratify_key: str | None = None,
    seed: int = 0,
) -> dict[str, list[Item]]:
    """Split ``items`` into the sections ``names`` by group, with group counts in proportion to ``ratios``.

    The number of groups per section is :func:`split_counts` of the group count. The groups of each
    stratum are shuffled; the smaller sections (the last names first) are then filled by taking groups
    from the strata in turn, so that a 3-group test section holds one group of each of three classes; the
    first section takes the rest. Without ``stratify_key`` this is a plain shuffle-and-cut: the first
    section gets the first groups of one permutation, the next section the next ones, and so on.

    Returns:
        ``{name: items}`` for every name, items in input order.
    """
    if len(ratios) != len(names):
        raise ValueError(f"one ratio per section {list(names)} expected, got {list(ratios)}")
    strata = group_strata(items, group_key, stratify_key)
    queues = _shuffled_strata(strata, seed)
    counts = split_counts(len(strata), ratios)
    section_of: dict[Hashable, str] = {}
    turn = 0
    for name, count in reversed(list(zip(names[1:], counts[1:]))):
        while count > 0:
            queue = queues[turn % len(queues)]
            turn += 1
            if queue:
                section_of[queue.pop()] = name
                count -= 1
    section_of.update({group: names[0] for queue in queues for group in queue})
    sections: dict[str, list[Item]] = {name: [] for name in names}
    for item in items:
        sections[section_of[item[group_key]]].append(item)
    return sections


def fold_groups(
    items: Sequence[Item], n_folds: int, *, group_key: str, stratify_key: str | None = None, seed: int = 0
) -> list[list[Hashable]]:
    """The groups of each of ``n_folds`` folds: every group in exactly one fold, fold sizes within one.

    The groups of each stratum are shuffled and the strata dealt out in turn over the folds, so every fold
    holds about the same share of each class.

    Raises:
        ValueError: ``n_folds`` is below 2 or above the number of groups.
    """
    strata = group_strata(items, group_key, stratify_key)
    if not 2 <= int(n_folds) <= len(strata):
        raise ValueError(f"n_folds must be 2..{len(strata)} (the number of {group_key}s), got {n_folds}")
    folds: list[list[Hashable]] = [[] for _ in range(int(n_folds))]
    order = [group for queue in _shuffled_strata(strata, seed) for group in queue]
    for position, group in enumerate(order):
        folds[position % len(folds)].append(group)
    return [sorted(fold) for fold in folds]


def leave_one_group_out(items: Sequence[Item], fold: int, *, group_key: str) -> Hashable:
    """The group held out in fold ``fold``: the ``fold``-th group in sorted order (0-based).

    Raises:
        ValueError: ``fold`` is not 0..(number of groups - 1).
    """
    groups = sorted({item[group_key] for item in items})
    if not 0 <= int(fold) < len(groups):
        raise ValueError(f"fold must be 0..{len(groups) - 1} (one per {group_key}), got {fold}")
    return groups[int(fold)]


def split_with_test(
    items: Sequence[Item],
    is_test: Sequence[bool],
    ratios: Sequence[float],
    names: Sequence[str],
    *,
    group_key: str,
    stratify_key: str | None = None,
    seed: int = 0,
) -> tuple[dict[str, list[Item]], int]:
    """The test items given, the others split by group into the remaining sections.

    The last of ``names`` receives the items where ``is_test`` is true; the others go to the first
    sections by :func:`split_by_group` with the first ``len(names) - 1`` ``ratios`` (the test ratio is
    not used). When the test items are not whole groups, the other items of test groups are left out so
    that no group is in two sections.

    Returns:
        ``({name: items}, number of items left out)``.
    """
    if len(is_test) != len(items) or len(ratios) != len(names):
        raise ValueError("need one test flag per item and one ratio per section")
    test_groups = {item[group_key] for item, test in zip(items, is_test) if test}
    rest = [item for item, test in zip(items, is_test) if not test]
    kept = [item for item in rest if item[group_key] not in test_groups]
    sections = split_by_group(
        kept, ratios[:-1], names[:-1], group_key=group_key, stratify_key=stratify_key, seed=seed
    )
    sections[names[-1]] = [item for item, test in zip(items, is_test) if test]
    return sections, len(rest) - len(kept)
