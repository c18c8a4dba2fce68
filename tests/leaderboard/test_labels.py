"""Label placement on plots: hand-made layouts with known answers, and no overlaps on random ones."""

from __future__ import annotations

import random

from leaderboard.labels import (
    DISTANCES, POINT_RADIUS, Box, candidate, group_same_spot, joined, place_labels, text_size,
)

AREA = Box(0, 0, 400, 300)


def boxes_of(xy, texts, placed):
    out = []
    for p in placed:
        w, h = text_size(p.text)
        x, y = xy[p.points[0]]
        out.append(Box(x + p.dx - w / 2, y + p.dy - h / 2, x + p.dx + w / 2, y + p.dy + h / 2))
    return out


def test_a_lone_point_is_labelled_up_and_to_the_right_nearby():
    xy = [(100.0, 150.0)]
    [label] = place_labels(xy, ["awq4"], AREA)
    assert label.points == (0,) and label.text == "awq4"
    assert label.dx > 0 and label.dy < 0  # right and up: the first direction tried
    box = boxes_of(xy, ["awq4"], [label])[0]
    assert box.left >= 100 + DISTANCES[0] * 0.8  # clear of the point


def test_candidate_geometry_puts_the_nearest_edge_at_the_distance():
    dx, dy, box = candidate(50, 50, 40, 10, 14, 0.0)
    assert (dx, dy) == (34.0, 0.0)
    assert box.left == 64 and box.right == 104 and box.top == 45 and box.bottom == 55
    _, _, up = candidate(50, 50, 40, 10, 14, 90.0)
    assert up.bottom == 36 and up.left == 30


def test_points_on_one_spot_share_a_label():
    xy = [(100.0, 100.0), (101.0, 101.5), (300.0, 100.0), (102.0, 103.0)]
    assert group_same_spot(xy) == [[0, 1, 3], [2]]
    placed = place_labels(xy, ["a", "b", "c", "d"], AREA)
    assert sorted(p.text for p in placed) == ["a, b, d", "c"]


def test_joined_names_each_once_and_counts_the_rest():
    assert joined(["awq4", "awq4", "rtn4"]) == "awq4, rtn4"
    assert joined(["a", "b", "c", "d", "e"]) == "a, b, c +2"


def test_a_label_that_cannot_fit_is_left_out():
    tiny = Box(0, 0, 30, 30)
    assert place_labels([(15.0, 15.0)], ["a-very-long-variant-name"], tiny) == []


def test_labels_keep_out_of_reserved_boxes_and_the_area_edge():
    xy = [(390.0, 10.0)]  # top-right corner: up and right do not fit
    reserved = [Box(300, 20, 400, 40)]
    [label] = place_labels(xy, ["corner"], AREA, reserved=reserved)
    box = boxes_of(xy, ["corner"], [label])[0]
    assert box.inside(AREA) and not box.overlaps(reserved[0])
    assert label.dx < 0


def test_order_decides_who_gets_the_best_spot():
    xy = [(100.0, 100.0), (100.0, 118.0)]
    first = place_labels(xy, ["a", "b"], AREA, order=[1, 0])
    assert first[0].text == "b"


def test_random_layouts_never_overlap():
    rng = random.Random(7)
    for _ in range(30):
        xy = [(rng.uniform(10, 390), rng.uniform(10, 290)) for _ in range(rng.randint(2, 40))]
        texts = [f"variant-{i}" * rng.randint(1, 2) for i in range(len(xy))]
        placed = place_labels(xy, texts, AREA)
        boxes = boxes_of(xy, texts, placed)
        for i, a in enumerate(boxes):
            assert a.inside(AREA)
            for b in boxes[i + 1 :]:
                assert not a.overlaps(b, 0.0)
            for x, y in xy:
                dot = Box(x - POINT_RADIUS, y - POINT_RADIUS, x + POINT_RADIUS, y + POINT_RADIUS)
                assert not a.overlaps(dot, 0.0)
        named = [i for p in placed for i in p.points]
        assert len(named) == len(set(named))
