"""Pareto frontiers and deltas against a reference: pure functions, tested directly."""

from __future__ import annotations

from collections.abc import Sequence


def dominates(a: tuple[float, float], b: tuple[float, float], x_lower: bool, y_lower: bool) -> bool:
    """Whether point ``a`` is at least as good as ``b`` on both axes and better on one."""
    ax, ay = (-a[0] if x_lower else a[0]), (-a[1] if y_lower else a[1])
    bx, by = (-b[0] if x_lower else b[0]), (-b[1] if y_lower else b[1])
    return ax >= bx and ay >= by and (ax > bx or ay > by)


def pareto_mask(points: Sequence[tuple[float, float]], x_lower: bool, y_lower: bool) -> list[bool]:
    """For each point, whether no other point dominates it.

    Sorting by the first axis (best first) and sweeping keeps this O(n log n);
    equal points are all kept on the frontier.
    """
    sx = -1.0 if x_lower else 1.0
    sy = -1.0 if y_lower else 1.0
    # Work in "higher is better" on both axes.
    order = sorted(range(len(points)), key=lambda i: (-sx * points[i][0], -sy * points[i][1]))
    mask = [False] * len(points)
    best_y = float("-inf")
    i = 0
    while i < len(order):
        # Points sharing the same x form a block: the best y in the block decides.
        j = i
        x = sx * points[order[i]][0]
        while j < len(order) and sx * points[order[j]][0] == x:
            j += 1
        block = order[i:j]
        block_best = max(sy * points[k][1] for k in block)
        for k in block:
            y = sy * points[k][1]
            if y == block_best and y > best_y:
                mask[k] = True
        best_y = max(best_y, block_best)
        i = j
    return mask


def delta(value: float, reference: float) -> float:
    """Absolute change against the reference (value minus reference)."""
    return value - reference


def relative(value: float, reference: float, lower_is_better: bool) -> float | None:
    """How much of the reference's quality a variant keeps, as a ratio where 1.0 means equal
    and above 1.0 means better: value/reference when higher is better, reference/value when
    lower is better (so a perplexity of 12 against 10 keeps 0.83). None when undefined."""
    if lower_is_better:
        return reference / value if value else None
    return value / reference if reference else None
