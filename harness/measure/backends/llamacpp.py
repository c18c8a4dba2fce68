"""The llama.cpp backend: GGUF files through llama-cpp-python's low-level bindings.

llama-cpp-python is optional (``scripts/build-llamacpp.sh`` builds it once into a
cached wheel); without it this module imports, and :func:`available` says why not.

What is timed, exactly (a manual greedy loop, the same at every batch size):

- one llama.cpp context per batch size ``b`` with ``n_seq_max = b`` and room for
  ``b * (prompt + new)`` tokens (one KV cell per token of every sequence);
- **prefill**: the cache cleared, then one ``llama_decode`` over all ``b * prompt``
  tokens (sequence ``i`` holds row ``i`` of the prompt, logits for the last position of
  each row only), timed alone;
- **generation**: the prefill again, then the argmax of each row's logits is the first
  token (time to first token), then ``new - 1`` steps of one ``llama_decode`` over ``b``
  tokens (one per sequence) and an argmax each; EOS is not checked, so every run
  generates exactly ``new`` tokens per sequence, as ``min_new_tokens`` does on PyTorch.

The argmax reads the logits straight from llama.cpp's buffer (``llama_get_logits_ith``,
no copy into Python lists), so Python adds well under a millisecond per step. The
high-level ``Llama`` class is not used: it decodes one sequence only and keeps a
``n_batch x n_vocab`` score array that is not part of what llama.cpp itself needs.

Settings recorded: llama-cpp-python version, threads (the same as PyTorch's intra-op
threads, so the two backends get the same cores), GPU layers, flash attention, mmap.
"""

from __future__ import annotations

import importlib.metadata
import time
from pathlib import Path
from typing import Any

from typing import ClassVar

from pydantic import Field

from harness.measure.backends.base import BackendConfig
from harness.measure.efficiency.memory import disk_bytes, gguf_weights_bytes
from kompakt.profiles import Profile

#: Tokens per micro-batch llama.cpp computes at once inside a prefill (its default).
N_UBATCH = 512


def available() -> tuple[bool, str | None]:
    """Whether llama-cpp-python can be imported, and if not why."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as err:
        return False, f"llama-cpp-python is not installed ({err}); build it once with scripts/build-llamacpp.sh"
    return True, None


def _threads() -> int:
    try:
        import torch

        return torch.get_num_threads()  # PyTorch's default: the physical cores
    except ImportError:  # pragma: no cover
        import os

        return max(1, (os.cpu_count() or 2) // 2)


class LlamaCppConfig(BackendConfig):
    """Settings of the llama.cpp backend (the device comes from the profile)."""

    threads: int | None = Field(
        default=None, ge=1, description="CPU threads (default: PyTorch's intra-op threads, so both backends get the same cores)."
    )
    n_gpu_layers: int | None = Field(default=None, ge=-1, description="Layers offloaded to the GPU (default: all on a GPU profile, none on the CPU).")
    use_mmap: bool = Field(default=True, description="Map the file instead of reading it (llama.cpp's default).")
    flash_attn: bool | None = Field(default=None, description="Force flash attention on or off (default: llama.cpp's automatic choice).")
    verbose: bool = Field(default=False, description="Let llama.cpp log (it logs every graph node at load otherwise).")


class LlamaCppBackend:
    name: ClassVar[str] = "llama.cpp"
    formats: ClassVar[tuple[str, ...]] = ("gguf",)
    Config: ClassVar[type[LlamaCppConfig]] = LlamaCppConfig

    def __init__(self, path: Path, *, device: str = "cpu", context_length: int = 2048, threads: int | None = None,
                 n_gpu_layers: int | None = None, use_mmap: bool = True, flash_attn: bool | None = None, verbose: bool = False):
        ok, why = available()
        if not ok:
            raise RuntimeError(why)
        import llama_cpp
        from llama_cpp import _internals

        self._ll = llama_cpp
        self._internals = _internals
        self.source = Path(path)
        self.device = device
        self.threads = threads or _threads()
        # On a GPU profile every layer is offloaded (-1 = all); on the CPU none.
        self.n_gpu_layers = n_gpu_layers if n_gpu_layers is not None else (-1 if device.startswith("cuda") else 0)
        self.use_mmap = use_mmap
        self.flash_attn = flash_attn
        self.load_notes: list[str] = []
        if not verbose:
            from llama_cpp import _logger

            _logger.set_verbose(False)  # llama.cpp logs every graph node at load otherwise
        llama_cpp.llama_backend_init()
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = self.n_gpu_layers
        mparams.use_mmap = use_mmap
        self.model = _internals.LlamaModel(path_model=str(self.source), params=mparams, verbose=False)
        self.vocab_size = self.model.n_vocab()
        self.max_context = self.model.n_ctx_train()
        self.special_ids = sorted({i for i in (self.model.token_bos(), self.model.token_eos()) if i is not None and i >= 0})
        self._contexts: dict[tuple[int, int], Any] = {}
        self._batches: dict[tuple[int, int], Any] = {}
        self._flash_name = "auto"

    @classmethod
    def available(cls) -> tuple[bool, str | None]:
        return available()

    @classmethod
    def load(cls, path: Path, profile: Profile, config: LlamaCppConfig | None = None) -> "LlamaCppBackend":
        if Path(path).suffix != ".gguf":
            raise ValueError("the llama.cpp backend runs GGUF files only: pass the path of a .gguf file")
        config = config or LlamaCppConfig()
        return cls(Path(path), device=profile.device, context_length=profile.context_length, **config.model_dump())

    # ------------------------------------------------------------------ what is recorded

    def settings(self) -> dict[str, str]:
        return {
            "backend": "llama.cpp",
            "llama_cpp_python": importlib.metadata.version("llama-cpp-python"),
            "device": self.device,
            "threads": str(self.threads),
            "gpu_layers": str(self.n_gpu_layers),
            "flash_attention": self._flash_name,
            "mmap": "on" if self.use_mmap else "off",
        }

    def describe(self) -> str:
        s = self.settings()
        return (
            f"llama-cpp-python {s['llama_cpp_python']} (llama.cpp); {s['threads']} threads; {s['gpu_layers']} GPU layers; "
            f"flash attention {s['flash_attention']}; mmap {s['mmap']}; greedy manual loop over llama_decode, one sequence per "
            "batch row, EOS ignored so every run generates the same count; prefill = one llama_decode over the prompt"
        )

    def versions(self) -> dict[str, str]:
        return {"llama-cpp-python": importlib.metadata.version("llama-cpp-python")}

    def weights_bytes(self) -> int:
        # The tensor data of the file as llama.cpp holds it (quant blocks with their
        # scales); llama_model_size reports the same total and cross-checks it.
        return gguf_weights_bytes(self.source)

    def disk_bytes(self) -> int:
        return disk_bytes(self.source)

    def supported_batch_sizes(self, sizes: list[int]) -> tuple[list[int], list[str]]:
        return list(sizes), []

    # ------------------------------------------------------------------ contexts

    def _context(self, n_seq: int, n_ctx: int, n_batch: int) -> tuple[Any, Any]:
        key = (n_seq, n_ctx)
        if key not in self._contexts:
            ll = self._ll
            p = ll.llama_context_default_params()
            p.n_ctx = n_ctx
            p.n_batch = n_batch
            p.n_ubatch = min(n_batch, N_UBATCH)
            p.n_seq_max = n_seq
            p.n_threads = self.threads
            p.n_threads_batch = self.threads
            if self.flash_attn is not None:
                p.flash_attn_type = ll.LLAMA_FLASH_ATTN_TYPE_ENABLED if self.flash_attn else ll.LLAMA_FLASH_ATTN_TYPE_DISABLED
                self._flash_name = "on" if self.flash_attn else "off"
            ctx = self._internals.LlamaContext(model=self.model, params=p, verbose=False)
            batch = self._internals.LlamaBatch(n_tokens=n_batch, embd=0, n_seq_max=n_seq, verbose=False)
            self._contexts[key] = ctx
            self._batches[key] = batch
        return self._contexts[key], self._batches[key]

    def _free_contexts(self) -> None:
        for b in self._batches.values():
            b.close()
        for c in self._contexts.values():
            c.close()
        self._contexts.clear()
        self._batches.clear()

    @staticmethod
    def _fill(batch: Any, rows: list[list[int]], start: int) -> list[int]:
        """Put ``rows`` (one per sequence) at positions ``start..`` into ``batch``; return the logit indices."""
        b = batch.batch
        k = 0
        out = []
        for seq, row in enumerate(rows):
            for i, tok in enumerate(row):
                b.token[k] = tok
                b.pos[k] = start + i
                b.seq_id[k][0] = seq
                b.n_seq_id[k] = 1
                last = i == len(row) - 1
                b.logits[k] = last
                if last:
                    out.append(k)
                k += 1
        b.n_tokens = k
        return out

    def _argmax(self, ctx: Any, indices: list[int]) -> list[int]:
        import numpy as np

        toks = []
        for i in indices:
            logits = np.ctypeslib.as_array(ctx.get_logits_ith(i), shape=(self.vocab_size,))
            toks.append(int(logits.argmax()))
        return toks

    # ------------------------------------------------------------------ timed work

    def prefill(self, prompt: list[list[int]], new_tokens: int = 64) -> float:
        n_seq, plen = len(prompt), len(prompt[0])
        ctx, batch = self._context(n_seq, n_seq * (plen + new_tokens), max(n_seq * plen, n_seq))
        ctx.kv_cache_clear()
        self._fill(batch, prompt, 0)
        t0 = time.perf_counter()
        ctx.decode(batch)
        return time.perf_counter() - t0

    def generate(self, prompt: list[list[int]], new_tokens: int) -> list[float]:
        n_seq, plen = len(prompt), len(prompt[0])
        ctx, batch = self._context(n_seq, n_seq * (plen + new_tokens), max(n_seq * plen, n_seq))
        ctx.kv_cache_clear()
        t0 = time.perf_counter()
        idx = self._fill(batch, prompt, 0)
        ctx.decode(batch)
        toks = self._argmax(ctx, idx)
        stamps = [t0, time.perf_counter()]
        for step in range(1, new_tokens):
            idx = self._fill(batch, [[t] for t in toks], plen + step - 1)
            ctx.decode(batch)
            toks = self._argmax(ctx, idx)
            stamps.append(time.perf_counter())
        return stamps

    # ------------------------------------------------------------------ scoring

    def window_nll(self, ids: list[int]) -> float:
        """Mean negative log-likelihood of ``ids[1:]`` given the tokens before each, from llama.cpp's own logits.

        One ``llama_decode`` over the whole window with logits at every position (a context of
        exactly ``len(ids)`` tokens, cleared first), as the PyTorch token perplexity scores a window
        in one forward pass. The log-softmax is taken in float64 from llama.cpp's float32 logits.
        """
        import numpy as np

        n = len(ids)
        if n < 2:
            raise ValueError("a window needs at least two tokens")
        ctx, batch = self._context(1, n, n)
        ctx.kv_cache_clear()
        b = batch.batch
        for i, tok in enumerate(ids):
            b.token[i] = tok
            b.pos[i] = i
            b.seq_id[i][0] = 0
            b.n_seq_id[i] = 1
            b.logits[i] = i < n - 1
        b.n_tokens = n
        ctx.decode(batch)
        total = 0.0
        for i in range(n - 1):
            row = np.ctypeslib.as_array(ctx.get_logits_ith(i), shape=(self.vocab_size,)).astype(np.float64)
            top = row.max()
            total += top + np.log(np.exp(row - top).sum()) - row[ids[i + 1]]
        return total / (n - 1)

    def close(self) -> None:
        self._free_contexts()
        if getattr(self, "model", None) is not None:
            self.model.close()
            self.model = None
