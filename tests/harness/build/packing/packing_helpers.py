"""Shared pieces of the packing tests: a tiny model with RTN codes, and a probe of what a kernel multiplies."""

from __future__ import annotations

from typing import Any

import torch

from harness.build.packing.codes import LinearCodes, round_scales_fp16, rtn_codes
from harness.build.methods import module_linears

TEXT = "The quick brown fox jumps over the lazy dog. Question: Which gas do plants take in from the air?"


def tiny_with_codes(bits: int = 4, group_size: int = 64, symmetric: bool = False, hidden: int = 64) -> tuple[Any, Any, dict[str, LinearCodes]]:
    """A tiny random Llama whose decoder linears hold their RTN codes (float16 scales), and the codes."""
    from harness.build.tiny_model import tiny_model_and_tokenizer

    model, tok = tiny_model_and_tokenizer(hidden=hidden, layers=2)
    # tied embeddings, as the embedded SmolLM2 has them
    model.config.tie_word_embeddings = True
    model.lm_head.weight = model.model.embed_tokens.weight
    model.eval()
    codes = {}
    with torch.no_grad():
        for name, m in module_linears(model):
            codes[name] = rtn_codes(m.weight, bits, group_size, symmetric)
            m.weight.copy_(round_scales_fp16(codes[name]).dequantize())
    return model, tok, codes


def kernel_weight(module: Any, in_features: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """The ``[out, in]`` weight a quantized linear's kernel multiplies: its output on the identity matrix."""
    with torch.no_grad():
        out = module(torch.eye(in_features, dtype=dtype)).float()
        if getattr(module, "bias", None) is not None:
            out = out - module.bias.float()
    return out.t()


def grid_steps(weight: torch.Tensor, codes: LinearCodes) -> float:
    """Largest ``|w - (q - z) s| / s``: below 0.5, every weight lies nearest to the code it came from."""
    s = codes.scales.float().repeat_interleave(codes.group_size, dim=1)
    return float(((weight.float() - codes.dequantize()) / s).abs().max())


def logits(model: Any, tok: Any) -> torch.Tensor:
    ids = tok(TEXT, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids).logits[0].float()
