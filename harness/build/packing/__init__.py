"""Packed storage of quantized weights: AWQ GEMM / GPTQ v2 checkpoints for transformers, GGUF blocks for llama.cpp."""
