"""Group-wise splits: by ratio (stratified or not), k-fold, leave-one-group-out, a given test set."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from common.data.splits import (
    fold_groups,
    group_strata,
    leave_one_group_out,
    split_by_group,
    split_counts,
    split_with_test,
)

NAMES = ("training", "validation", "testing")


def items_of(n_groups: int, per_group: int = 2, n_classes: int | None = None) -> list[dict]:
    """``per_group`` items for each of ``n_groups`` patients; patient ``p`` has class ``p % n_classes``."""
    return [
        {"id": f"{p}-{k}", "patient": f"P{p:03d}", **({"class": p % n_classes} if n_classes else {})}
        for p in range(n_groups)
        for k in range(per_group)
    ]


def groups(items: list[dict], key: str = "patient") -> set:
    return {it[key] for it in items}


def test_split_counts() -> None:
    assert split_counts(20, (8, 1, 1)) == [16, 2, 2]
    assert split_counts(3, (8, 1, 1)) == [1, 1, 1]
    assert split_counts(10, (8, 2, 0)) == [8, 2, 0]
    assert split_counts(233, (8, 1, 1)) == [187, 23, 23]
    assert sum(split_counts(7, (1, 1))) == 7
    with pytest.raises(ValueError):
        split_counts(5, (0, 0))


def test_group_strata_majority_class_smallest_on_tie() -> None:
    items = [
        {"patient": "b", "class": 2},
        {"patient": "a", "class": 1},
        {"patient": "a", "class": 0},
        {"patient": "b", "class": 2},
        {"patient": "b", "class": 0},
    ]
    assert group_strata(items, "patient", "class") == {"a": 0, "b": 2}
    assert list(group_strata(items, "patient")) == ["a", "b"]  # sorted, no strata


def test_split_by_group_without_classes_is_shuffle_and_cut() -> None:
    """No stratify key: the sections are consecutive runs of one seeded permutation of the sorted groups."""
    items = items_of(20)
    sections = split_by_group(items, (8, 1, 1), NAMES, group_key="patient", seed=5)
    order = [f"P{p:03d}" for p in np.random.default_rng(5).permutation(20)]
    assert groups(sections["training"]) == set(order[:16])
    assert groups(sections["validation"]) == set(order[16:18])
    assert groups(sections["testing"]) == set(order[18:])
    assert sum(len(v) for v in sections.values()) == 40
    position = {it["id"]: i for i, it in enumerate(items)}
    for name in NAMES:  # items keep their input order
        where = [position[it["id"]] for it in sections[name]]
        assert where == sorted(where)


def test_split_by_group_is_deterministic_and_order_independent() -> None:
    items = items_of(30, n_classes=3)
    first = split_by_group(items, (8, 1, 1), NAMES, group_key="patient", stratify_key="class", seed=3)
    shuffled = items[:]
    random.Random(0).shuffle(shuffled)
    second = split_by_group(shuffled, (8, 1, 1), NAMES, group_key="patient", stratify_key="class", seed=3)
    assert {k: groups(v) for k, v in first.items()} == {k: groups(v) for k, v in second.items()}
    other = split_by_group(items, (8, 1, 1), NAMES, group_key="patient", stratify_key="class", seed=4)
    assert groups(other["testing"]) != groups(first["testing"])


@pytest.mark.parametrize("seed", [0, 1029, 7])
def test_split_by_group_stratified(seed: int) -> None:
    """30 patients of 3 classes, 8:1:1: validation and testing hold one patient of each class."""
    items = items_of(30, n_classes=3)
    sections = split_by_group(items, (8, 1, 1), NAMES, group_key="patient", stratify_key="class", seed=seed)
    assert [len(groups(sections[n])) for n in NAMES] == [24, 3, 3]
    for name in ("validation", "testing"):
        assert Counter(it["class"] for it in sections[name]) == {0: 2, 1: 2, 2: 2}
    all_groups = [groups(sections[n]) for n in NAMES]
    assert not (
        all_groups[0] & all_groups[1] or all_groups[0] & all_groups[2] or all_groups[1] & all_groups[2]
    )


def test_split_by_group_checks_ratios() -> None:
    with pytest.raises(ValueError, match="one ratio per section"):
        split_by_group(items_of(4), (1, 1), NAMES, group_key="patient")


@pytest.mark.parametrize(("n_groups", "n_folds"), [(20, 5), (23, 4), (7, 7)])
def test_kfold_every_group_tested_once(n_groups: int, n_folds: int) -> None:
    items = items_of(n_groups, n_classes=3)
    folds = fold_groups(items, n_folds, group_key="patient", stratify_key="class", seed=1)
    assert len(folds) == n_folds
    flat = [g for fold in folds for g in fold]
    assert sorted(flat) == sorted(groups(items))  # every group in exactly one fold
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    assert fold_groups(items, n_folds, group_key="patient", stratify_key="class", seed=1) == folds


def test_kfold_is_stratified() -> None:
    """30 patients, 10 of each class, 5 folds: every fold holds 2 patients of each class."""
    items = items_of(30, n_classes=3)
    cls = {it["patient"]: it["class"] for it in items}
    for seed in (0, 1, 2):
        for fold in fold_groups(items, 5, group_key="patient", stratify_key="class", seed=seed):
            assert Counter(cls[g] for g in fold) == {0: 2, 1: 2, 2: 2}


def test_kfold_checks_n_folds() -> None:
    with pytest.raises(ValueError, match="n_folds must be 2..4"):
        fold_groups(items_of(4), 5, group_key="patient")
    with pytest.raises(ValueError, match="n_folds"):
        fold_groups(items_of(4), 1, group_key="patient")


def test_leave_one_group_out() -> None:
    items = items_of(5)
    held = [leave_one_group_out(items, fold, group_key="patient") for fold in range(5)]
    assert held == sorted(groups(items))  # fold i holds out the i-th group in sorted order
    with pytest.raises(ValueError, match="fold must be 0..4"):
        leave_one_group_out(items, 5, group_key="patient")


def test_split_with_test_leaves_out_leaked_items() -> None:
    """A test set that is not group-wise: the other items of test groups go nowhere."""
    items = items_of(10, per_group=2, n_classes=2)
    is_test = [it["id"] in ("0-0", "1-0", "1-1") for it in items]  # P000 half in test, P001 whole
    sections, left_out = split_with_test(
        items, is_test, (3, 1, 1), NAMES, group_key="patient", stratify_key="class", seed=0
    )
    assert left_out == 1
    assert [it["id"] for it in sections["testing"]] == ["0-0", "1-0", "1-1"]
    rest = groups(sections["training"]) | groups(sections["validation"])
    assert rest == {f"P{p:03d}" for p in range(2, 10)}
    assert not groups(sections["training"]) & groups(sections["validation"])
    assert list(sections) == list(NAMES)
