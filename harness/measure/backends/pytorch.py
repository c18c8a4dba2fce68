"""The PyTorch backend: transformers models, timed through ``generate``.

What is timed, exactly:

- **prefill**: one forward pass over the prompt with the KV cache on and logits for
  the last position only (``logits_to_keep=1``, as ``generate``'s own prefill does),
  between two device synchronizations;
- **generation**: ``model.generate`` greedy (``do_sample=False``) with
  ``min_new_tokens = max_new_tokens``, so every run generates exactly the same number
  of tokens whatever the model predicts (EOS is suppressed until the count is
  reached), and a streamer that records the clock each time ``generate`` hands it a
  token. ``generate`` hands over tokens as they are chosen (``StopCheck`` copies them
  to the host, which synchronizes the device), so the timestamps are the real times:
  time to first token = first token - call; decode = last token - first token, over
  ``new_tokens - 1`` steps; the whole call's rate is also kept (``generate_tokens_per_s``,
  as most tools report it).

Settings are recorded with every figure: torch and transformers versions, dtype,
device, the attention implementation transformers chose, threads, and that the model
is not compiled (``torch.compile`` is not used: on CPUs it needs a C++ toolchain and
minutes of compilation per shape, and most users run eager).
"""

from __future__ import annotations

import importlib.metadata
import inspect
import time
from pathlib import Path
from typing import Any

from typing import ClassVar

from pydantic import Field

from harness.measure.backends.base import BackendConfig
from harness.measure.efficiency.memory import disk_bytes, weights_bytes
from kompakt.profiles import Profile


class PytorchConfig(BackendConfig):
    """Settings of the PyTorch backend (device and dtype come from the profile)."""

    trust_remote_code: bool = Field(
        default=False, description="Let transformers run the checkpoint's own Python code (models with an auto_map); off by default."
    )


class _TimingStreamer:
    """A ``generate`` streamer that only notes when each token arrives."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        now = time.perf_counter()
        if not self._prompt_seen:  # generate first hands over the prompt itself
            self._prompt_seen = True
            return
        self.times.append(now)

    def end(self) -> None:
        pass


#: gptqmodel's CPU kernels that compute in bfloat16 whatever the model's dtype (aten's int4pack operator).
BF16_KERNELS = ("TorchAtenAwqLinear", "TorchAtenLinear")


def kernel_compute(kernels: dict[str, int], dtype: str) -> str:
    """``TorchAtenAwqLinear x210 (bfloat16)``: the kernels of a packed model and what they compute in."""
    return ", ".join(f"{n} x{c} ({'bfloat16' if n in BF16_KERNELS else dtype})" for n, c in kernels.items())


def packed_note(backend: "PytorchBackend", quantization_config: dict[str, Any]) -> str:
    """What a reader should know about a packed checkpoint: its kernels, what they compute in, when weights are counted."""
    return (f"packed {str(quantization_config.get('quant_method', '?')).upper()} checkpoint on gptqmodel's kernels "
            f"{kernel_compute(backend.kernels, backend.dtype)}; the rest of the model in {backend.dtype}; weights counted "
            "after one forward pass (the kernels repack on first use)")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


class PytorchBackend:
    """A loaded transformers causal LM on one device, ready to be timed."""

    name: ClassVar[str] = "pytorch"
    formats: ClassVar[tuple[str, ...]] = ("hf",)
    #: Formats it can also load, dequantized by transformers (noted in the results file): not timed as stored.
    dequantizes: ClassVar[tuple[str, ...]] = ("gguf",)
    Config: ClassVar[type[PytorchConfig]] = PytorchConfig

    def __init__(self, model: Any, *, device: str | None = None, source: Path | None = None, load_note: str | None = None):
        import torch

        self.model = model
        self.model.eval()
        first = next(model.parameters())
        self.device = str(device or first.device)
        self.dtype = str(first.dtype).removeprefix("torch.")
        # bitsandbytes keeps packed uint8/int8 weights; the compute dtype is that of the float parameters.
        floats = [p.dtype for p in model.parameters() if p.dtype.is_floating_point]
        if floats:
            self.dtype = str(max(set(floats), key=floats.count)).removeprefix("torch.")
        self.source = source
        self.load_notes = [load_note] if load_note else []
        config = model.config
        self.vocab_size = int(getattr(config, "vocab_size"))
        self.max_context = getattr(config, "max_position_embeddings", None)
        gen = getattr(model, "generation_config", None)
        eos = getattr(config, "eos_token_id", None) or getattr(gen, "eos_token_id", None)
        eos_ids = eos if isinstance(eos, list) else ([eos] if eos is not None else [])
        self.eos_token_id = eos_ids[0] if eos_ids else None
        pad = getattr(config, "pad_token_id", None)
        if pad is None and gen is not None:
            pad = getattr(gen, "pad_token_id", None)
        self.pad_token_id = pad if pad is not None else self.eos_token_id
        self.special_ids = sorted({i for i in [*eos_ids, getattr(config, "bos_token_id", None), self.pad_token_id] if isinstance(i, int)})
        self._logits_to_keep = "logits_to_keep" in inspect.signature(model.forward).parameters
        self._torch = torch
        self._warmed = False
        from harness.measure.efficiency.memory import is_quant_linear

        kernels: dict[str, int] = {}
        for module in model.modules():
            if is_quant_linear(module):
                kernels[type(module).__name__] = kernels.get(type(module).__name__, 0) + 1
        self.kernels = kernels
        """gptqmodel kernel classes of a packed checkpoint's linears and their counts (empty for anything else)."""

    # ------------------------------------------------------------------ loading

    @classmethod
    def available(cls) -> tuple[bool, str | None]:
        import importlib.util

        missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
        if missing:
            return False, f"the PyTorch backend needs {', '.join(missing)}: pip install -e '.[harness]' (torch==2.13.0, the CPU build, first)"
        return True, None

    @classmethod
    def from_model(cls, model: Any, config: PytorchConfig | None = None) -> "PytorchBackend":
        """A model already loaded (used as it is, on the device it is on)."""
        return cls(model)

    @classmethod
    def load(cls, path: Path, profile: Profile, config: PytorchConfig | None = None) -> "PytorchBackend":
        """Load a transformers checkpoint folder (safetensors) or a ``.gguf`` file (dequantized) as the profile says."""
        config = config or PytorchConfig()
        return cls.load_path(path, device=profile.device, dtype=profile.dtype, trust_remote_code=config.trust_remote_code)

    @classmethod
    def load_path(cls, path: Path, *, device: str = "cpu", dtype: str = "float32", trust_remote_code: bool = False) -> "PytorchBackend":
        """Load a transformers checkpoint folder (safetensors) or a ``.gguf`` file (dequantized) onto ``device``."""
        from transformers import AutoModelForCausalLM

        path = Path(path)
        common: dict[str, Any] = {"device_map": device, "trust_remote_code": trust_remote_code}
        note = None
        if path.suffix == ".gguf":
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype, **common)
            note = f"the GGUF file {path.name} is dequantized to {dtype} by transformers on load: PyTorch runs float weights"
        else:
            from harness.build.base_model import load_model, log_repeated_warnings_once, saved_quantization_config

            log_repeated_warnings_once()  # bitsandbytes' per-matmul cast warning, once
            config_q = saved_quantization_config(path)
            if config_q and config_q.get("quant_method") in ("awq", "gptq"):
                # a packed checkpoint on gptqmodel's kernels (incomplete or damaged ones are refused)
                model = load_model(path, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
                backend = cls(model, device=device, source=path)
                backend.load_notes.append(packed_note(backend, config_q))
                return backend
            else:
                # A bitsandbytes checkpoint carries its own quantization config; its float parts load in ``dtype``.
                model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=True, **common)
                if config_q:
                    note = f"loaded with its saved quantization config ({config_q.get('quant_method', 'unknown')})"
        return cls(model, device=device, source=path, load_note=note)

    # ------------------------------------------------------------------ what is recorded

    def settings(self) -> dict[str, str]:
        torch = self._torch
        attn = getattr(self.model.config, "_attn_implementation", None) or "default"
        return {
            "backend": "pytorch",
            "torch": torch.__version__,
            "transformers": _version("transformers") or "?",
            "device": self.device,
            "dtype": self.dtype,
            "attention": attn,
            "compile": "off",
            "threads": str(torch.get_num_threads()),
            **({"kernels": kernel_compute(self.kernels, self.dtype)} if self.kernels else {}),
        }

    def describe(self) -> str:
        s = self.settings()
        return (
            f"torch {s['torch']}, transformers {s['transformers']}; {s['dtype']} on {s['device']}; attention {s['attention']}; "
            f"not compiled; {s['threads']} threads; {'kernels ' + s['kernels'] + '; ' if 'kernels' in s else ''}greedy generate() with min_new_tokens = max_new_tokens, tokens timed by a "
            "streamer; prefill = one forward over the prompt (logits of the last position)"
        )

    def versions(self) -> dict[str, str]:
        out = {}
        for dist in ("bitsandbytes", "accelerate", *(("gptqmodel", "optimum") if self.kernels else ())):
            v = _version(dist)
            if v:
                out[dist] = v
        return out

    def weights_bytes(self) -> int:
        """Bytes of the weights as held after one short forward pass (packed kernels repack on first use)."""
        if not self._warmed:
            ids, mask = self._inputs([[self.special_ids[0] if self.special_ids else 0] * 4])
            with self._torch.inference_mode():
                self.model(input_ids=ids, attention_mask=mask, use_cache=False)
            self._warmed = True
        return weights_bytes(self.model)

    def disk_bytes(self) -> int | None:
        return disk_bytes(self.source) if self.source is not None and Path(self.source).exists() else None

    def supported_batch_sizes(self, sizes: list[int]) -> tuple[list[int], list[str]]:
        return list(sizes), []

    # ------------------------------------------------------------------ timed work

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            self._torch.cuda.synchronize()

    def _inputs(self, prompt: list[list[int]]) -> tuple[Any, Any]:
        ids = self._torch.tensor(prompt, dtype=self._torch.long, device=self.device)
        return ids, self._torch.ones_like(ids)

    def prefill(self, prompt: list[list[int]]) -> float:
        """Seconds of one forward pass over the prompt (KV cache on, last-position logits)."""
        ids, mask = self._inputs(prompt)
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "use_cache": True}
        if self._logits_to_keep:
            kwargs["logits_to_keep"] = 1
        with self._torch.inference_mode():
            self._sync()
            t0 = time.perf_counter()
            out = self.model(**kwargs)
            self._sync()
            seconds = time.perf_counter() - t0
        del out
        return seconds

    def generate(self, prompt: list[list[int]], new_tokens: int) -> list[float]:
        """Run greedy generation of exactly ``new_tokens``; return [call time, time of token 1, ..., token n]."""
        from transformers import GenerationConfig

        ids, mask = self._inputs(prompt)
        config = GenerationConfig(
            do_sample=False,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id,
            use_cache=True,
        )
        streamer = _TimingStreamer()
        with self._torch.inference_mode():
            self._sync()
            t0 = time.perf_counter()
            out = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=config, streamer=streamer)
            self._sync()
        generated = out.shape[1] - ids.shape[1]
        if generated != new_tokens or len(streamer.times) != new_tokens:
            raise RuntimeError(f"generate produced {generated} tokens ({len(streamer.times)} streamed), not {new_tokens}")
        return [t0, *streamer.times]

    def close(self) -> None:
        import gc

        self.model = None
        gc.collect()
