"""bitsandbytes quantization: LLM.int8() and 4-bit NormalFloat (NF4).

- ``bnb_int8`` (Dettmers et al., 2022): 8-bit weights with a per-row absmax
  scale; at run time the input feature columns with outliers above
  ``threshold`` are multiplied in 16 bit, the rest in int8.
- ``bnb_nf4`` (Dettmers et al., 2023, QLoRA): 4-bit NormalFloat weights with
  one absmax scale per block of ``blocksize`` weights (64, fixed by
  bitsandbytes), optionally double-quantized scales.

Both are loaded through transformers' ``BitsAndBytesConfig`` (bitsandbytes
0.45+ runs on the CPU too) and saved in bitsandbytes' own serialization, the
real packed format: the artifact reloads with ``from_pretrained`` and needs
bitsandbytes. The embeddings and LM head stay in float, as transformers
does by default. Nothing can follow these steps except measuring.

A pitfall this module avoids: on the CPU bitsandbytes repacks 4-bit weights
for its kernel on the first inference forward, and a model saved after that
reloads as garbage. So the quantized model is saved before it ever runs.
"""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from harness.build.base_model import BNB_CAST_LOGGER, log_repeated_warnings_once  # noqa: F401 (the loaders' filter, re-exported)
from harness.build.methods import Method, MethodConfig, StepContext, StepOutcome


class BnbInt8Config(MethodConfig):
    # 6.0 is the outlier threshold of the LLM.int8() paper and bitsandbytes' default.
    threshold: float = Field(default=6.0, gt=0, description="Outlier threshold: input features with a magnitude above it run in 16 bit.")


class BnbNF4Config(MethodConfig):
    quant_type: Literal["nf4", "fp4"] = Field(default="nf4", description="4-bit data type: NormalFloat (nf4) or plain 4-bit float (fp4).")
    double_quant: bool = Field(default=True, description="Quantize the block scales again (saves about 0.4 bits per weight).")
    compute_dtype: Literal["float32", "bfloat16", "float16"] = Field(
        default="float32", description="Precision the dequantized weights are multiplied in (float32 on CPUs)."
    )


def nf4_config(*, double_quant: bool = True, quant_type: str = "nf4", compute_dtype: str = "float32") -> Any:
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant_type,
        bnb_4bit_use_double_quant=double_quant,
        bnb_4bit_compute_dtype=getattr(torch, compute_dtype),
    )


def load_quantized(model: Any, quantization_config: Any, tmp: str | Path) -> Any:
    """``model`` reloaded through bitsandbytes with ``quantization_config`` (via a temporary checkpoint)."""
    from transformers import AutoModelForCausalLM

    model.save_pretrained(tmp, safe_serialization=True)
    quantized = AutoModelForCausalLM.from_pretrained(
        tmp, quantization_config=quantization_config, device_map="cpu", dtype="float32", use_safetensors=True
    )
    quantized.eval()
    return quantized


def quantized_record(model: Any) -> dict[str, Any]:
    import bitsandbytes as bnb

    n = 0
    weight_bytes = 0
    for module in model.modules():
        if isinstance(module, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)):
            n += 1
            weight_bytes += module.weight.numel() * module.weight.element_size()
    return {"quantized_linears": n, "packed_weight_bytes": weight_bytes, "storage": "bitsandbytes serialization"}


class _Bnb(Method):
    stage = "quantize"
    final = True
    requires = ("bnb",)
    distributions = ("bitsandbytes", "transformers")

    def _quantize(self, model: Any, qconfig: Any, ctx: StepContext) -> StepOutcome:
        with tempfile.TemporaryDirectory(prefix="bnb-", dir=ctx.out_dir.parent) as tmp:
            quantized = load_quantized(model, qconfig, tmp)
        del model
        gc.collect()
        return StepOutcome(model=quantized, record=quantized_record(quantized))


class BnbInt8(_Bnb):
    name = "bnb_int8"
    Config = BnbInt8Config
    # bitsandbytes' int8_vectorwise_quant looks for outlier columns over every row of its input, i.e. every token of
    # every sequence in the batch.
    batch_dependent = ("LLM.int8() multiplies in 16 bit the input columns with an outlier anywhere in the batch, so a "
                       "sequence's scores depend on the sequences batched with it")

    def apply(self, model: Any, config: BnbInt8Config, ctx: StepContext) -> StepOutcome:
        from transformers import BitsAndBytesConfig

        return self._quantize(model, BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=config.threshold), ctx)


class BnbNF4(_Bnb):
    name = "bnb_nf4"
    Config = BnbNF4Config

    def apply(self, model: Any, config: BnbNF4Config, ctx: StepContext) -> StepOutcome:
        qconfig = nf4_config(double_quant=config.double_quant, quant_type=config.quant_type, compute_dtype=config.compute_dtype)
        return self._quantize(model, qconfig, ctx)
