"""Where to put the point labels of a plot so that they do not overlap: a greedy placement in pixels.

Each point gets its label on one of a few candidate spots around it (right and up first, then the other
directions, then further out, joined to the point by a short line); a spot is taken only if the label
stays inside the plotting area and covers no other label and no point. Points drawn on top of each other
share one label. A label with no free spot is left out; the point keeps its hover text. Pure functions,
computed at a nominal plot size: in a wider plot the points only move further apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Average width of a character and height of a line of the labels' 10-pixel font, in pixels.
CHAR_WIDTH = 5.8
LINE_HEIGHT = 13.0
#: Radius of the area around a point that no label may cover.
POINT_RADIUS = 5.0
#: Points closer than this share one label.
SAME_SPOT = 4.0
#: Distances of the candidate spots from the point, nearest first.
DISTANCES = (14.0, 28.0, 44.0, 62.0)
#: Directions in degrees (0: right, 90: up), in the order they are tried.
ANGLES = (30.0, -30.0, 0.0, 150.0, -150.0, 180.0, 90.0, -90.0, 60.0, -60.0, 120.0, -120.0)


@dataclass(frozen=True)
class Box:
    """A rectangle in pixels, y downwards."""

    left: float
    """Left edge."""
    top: float
    """Top edge."""
    right: float
    """Right edge."""
    bottom: float
    """Bottom edge."""

    def overlaps(self, other: Box, gap: float = 1.0) -> bool:
        return not (self.right + gap <= other.left or other.right + gap <= self.left or self.bottom + gap <= other.top or other.bottom + gap <= self.top)

    def inside(self, area: Box) -> bool:
        return self.left >= area.left and self.right <= area.right and self.top >= area.top and self.bottom <= area.bottom


@dataclass(frozen=True)
class Placement:
    """A label placed for a group of points drawn on the same spot."""

    points: tuple[int, ...]
    """Indexes of the points it names (the first is where its line points)."""
    text: str
    """The label."""
    dx: float
    """Offset of the label's centre from the point, in pixels (right is positive)."""
    dy: float
    """Offset of the label's centre from the point, in pixels (down is positive)."""


def text_size(text: str) -> tuple[float, float]:
    """Estimated width and height in pixels of a one-line label."""
    return len(text) * CHAR_WIDTH + 4.0, LINE_HEIGHT


def group_same_spot(xy: Sequence[tuple[float, float]], within: float = SAME_SPOT) -> list[list[int]]:
    """Points closer than ``within`` pixels (transitively) as groups of indexes, in the order of their first point."""
    parent = list(range(len(xy)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(xy)):
        for j in range(i + 1, len(xy)):
            if math.dist(xy[i], xy[j]) < within:
                parent[find(j)] = find(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(xy)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def joined(texts: Sequence[str], most: int = 3) -> str:
    """Labels of points on one spot as one: ``a, b, c +2`` (a label repeated is named once)."""
    texts = list(dict.fromkeys(texts))
    shown = ", ".join(texts[:most])
    return shown + (f" +{len(texts) - most}" if len(texts) > most else "")


def candidate(x: float, y: float, width: float, height: float, distance: float, angle: float) -> tuple[float, float, Box]:
    """The label's centre offset and box for one spot: the nearest corner or edge of the box lies ``distance``
    pixels from the point in direction ``angle``."""
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    dx = distance * cos + (math.copysign(width / 2, cos) if abs(cos) > 0.3 else 0.0)
    dy = -distance * sin - (math.copysign(height / 2, sin) if abs(sin) > 0.3 else 0.0)
    cx, cy = x + dx, y + dy
    return dx, dy, Box(cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)


def place_labels(xy: Sequence[tuple[float, float]], texts: Sequence[str], area: Box, order: Sequence[int] | None = None,
                 reserved: Sequence[Box] = ()) -> list[Placement]:
    """Labels for the points ``xy`` (pixels) inside ``area``, tried in ``order`` (indexes; default: as given).

    Points on one spot share a label; ``reserved`` boxes (a legend, another label) are kept free. Returns the
    labels that found room; a point whose index is in no placement has no label."""
    groups = group_same_spot(xy)
    rank = {i: n for n, i in enumerate(order if order is not None else range(len(xy)))}
    groups.sort(key=lambda g: min(rank.get(i, len(xy)) for i in g))
    dots = [Box(x - POINT_RADIUS, y - POINT_RADIUS, x + POINT_RADIUS, y + POINT_RADIUS) for x, y in xy]
    taken: list[Box] = list(reserved)
    out: list[Placement] = []
    for group in groups:
        group = sorted(group, key=lambda i: rank.get(i, len(xy)))
        text = joined([texts[i] for i in group])
        width, height = text_size(text)
        x, y = xy[group[0]]
        for distance in DISTANCES:
            spot = next(
                (
                    (dx, dy, box)
                    for dx, dy, box in (candidate(x, y, width, height, distance, a) for a in ANGLES)
                    if box.inside(area) and not any(box.overlaps(t) for t in taken) and not any(box.overlaps(d, 0.0) for d in dots)
                ),
                None,
            )
            if spot is not None:
                dx, dy, box = spot
                taken.append(box)
                out.append(Placement(tuple(group), text, round(dx, 1), round(dy, 1)))
                break
    return out
