"""The integer form of kompakt's weight grid: hand-made cases with known codes, and the bad inputs the packers refuse."""

from __future__ import annotations

import pytest
import torch

from harness.build.packing.codes import LinearCodes, PackingError, rtn_codes
from harness.build.methods.rtn import fake_quantize


def test_known_codes_of_one_group() -> None:
    # range [-1, 2] over 15 steps: scale 0.2, zero round(1 / 0.2) = 5
    w = torch.tensor([[-1.0, 0.0, 0.5, 2.0]])
    c = rtn_codes(w, bits=4, group_size=4)
    assert torch.allclose(c.scales, torch.tensor([[0.2]]))
    assert c.zeros.tolist() == [[5]]
    assert c.codes.tolist() == [[0, 5, 7, 15]]  # 0.5 / 0.2 = 2.5 rounds to even 2, plus 5
    assert torch.allclose(c.dequantize(), torch.tensor([[-1.0, 0.0, 0.4, 2.0]]))


def test_symmetric_codes_are_shifted_to_unsigned() -> None:
    w = torch.tensor([[-1.27, 0.0, 0.635, 1.27]])
    c = rtn_codes(w, bits=8, group_size=-1, symmetric=True)
    assert c.group_size == 4 and c.zeros.tolist() == [[128]]
    assert c.codes.tolist() == [[1, 128, 192, 255]]  # -127, 0, 64 (63.5 to even), 127 plus 128


@pytest.mark.parametrize("bits, group_size, symmetric", [(4, 64, False), (4, 32, True), (8, -1, True), (8, 64, False)])
def test_codes_dequantize_to_what_rtn_saves(bits: int, group_size: int, symmetric: bool) -> None:
    torch.manual_seed(0)
    w = torch.randn(48, 128) * 0.05
    w[3, :64] = 0.0  # an all-zero group
    c = rtn_codes(w, bits, group_size, symmetric)
    c.validate()
    assert torch.equal(c.dequantize(), fake_quantize(w, bits, group_size, symmetric))


def _codes(**change: object) -> LinearCodes:
    base = dict(codes=torch.zeros(4, 64, dtype=torch.uint8), scales=torch.ones(4, 1), zeros=torch.zeros(4, 1, dtype=torch.uint8), bits=4, group_size=64)
    base.update(change)
    return LinearCodes(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"codes": torch.full((4, 64), 16, dtype=torch.uint8)}, "codes must lie in \\[0, 15\\]"),
        ({"zeros": torch.full((4, 1), 20, dtype=torch.uint8)}, "zeros must lie in"),
        ({"scales": torch.ones(4, 2)}, "scales must have shape \\(4, 1\\)"),
        ({"scales": torch.zeros(4, 1)}, "finite and positive"),
        ({"scales": torch.full((4, 1), float("nan"))}, "finite and positive"),
        ({"codes": torch.zeros(4, 64)}, "integer tensors"),
        ({"group_size": 48}, "does not divide"),
        ({"codes": torch.zeros(64, dtype=torch.uint8)}, "2-D"),
    ],
)
def test_bad_codes_are_refused_with_the_field(change: dict, message: str) -> None:
    with pytest.raises(PackingError, match=message) as err:
        _codes(**change).validate("model.layers.0.mlp.up_proj")
    assert "model.layers.0.mlp.up_proj" in str(err.value)
