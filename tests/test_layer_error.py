"""The maths of ``scripts/layer-error.py``, the diagnostic the README quotes for rtn4, gptq4 and awq4."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "layer-error.py"


@pytest.fixture(scope="module")
def le():
    spec = importlib.util.spec_from_file_location("layer_error", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_relative_output_error_is_zero_for_the_same_weights_and_scales_with_the_error(le):
    torch.manual_seed(0)
    x, w = torch.randn(64, 16), torch.randn(8, 16)
    assert le.relative_output_error(x, w, w) == 0.0
    # an error of 10 % of every weight is 1 % of the output's squared norm
    assert le.relative_output_error(x, 1.1 * w, w) == pytest.approx(0.01, rel=1e-4)
    # float16 weights (as some variants store them) are compared in float32
    assert le.relative_output_error(x, w.half(), w) < 1e-6


def test_kl_from_reference_matches_the_definition(le):
    ref = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    var = torch.log(torch.tensor([[0.25, 0.5, 0.25]]))
    expected = 0.5 * math.log(2) + 0.25 * math.log(0.5)
    assert le.kl_from_reference(ref, var) == pytest.approx(expected)
    assert le.kl_from_reference(ref, ref) == pytest.approx(0.0, abs=1e-7)
    # the direction: the reference's probabilities weight the log-ratio, not the variant's
    ref, var = torch.log(torch.tensor([[0.9, 0.1]])), torch.log(torch.tensor([[0.5, 0.5]]))
    assert le.kl_from_reference(ref, var) == pytest.approx(0.9 * math.log(1.8) + 0.1 * math.log(0.2))


def test_stream_error_is_relative_to_the_reference(le):
    h = torch.ones(2, 3, 4)
    assert le.stream_error(h, h) == 0.0
    assert le.stream_error(1.5 * h, h) == pytest.approx(0.5)


def test_token_nll_scores_each_next_token(le):
    # two positions of a three-token vocabulary; the first predicts token 2 with probability 0.5
    logp = torch.log(torch.tensor([[[0.25, 0.25, 0.5], [1 / 3, 1 / 3, 1 / 3]]]))
    ids = torch.tensor([[0, 2]])
    assert le.token_nll(logp, ids) == pytest.approx(math.log(2))


def test_script_help_runs_without_a_model():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True)
    assert "--layers" in out.stdout and "held-out" in out.stdout
