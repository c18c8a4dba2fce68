"""A tiny random Llama and a byte-level BPE tokenizer built in code, for tests (no download).

``tiny_model_and_tokenizer()`` returns a model of a few hundred thousand
parameters whose scores are meaningless but deterministic (seeded), so the
plumbing of the backend and the orchestration can be tested in seconds.
``save_tiny_model(folder)`` writes it as a transformers checkpoint (safetensors),
the form ``--model <folder>`` reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Question: Which gas do plants take in from the air?\nAnswer: carbon dioxide",
    "Q: What is human life expectancy in the United States?\nA: Human life expectancy is 78 years.",
    "Sarah was a much better surgeon than Maria so she always got the easier cases.",
    " = Robert Boulter = \n Robert Boulter is an English film , television and theatre actor .",
    "A man is sitting on a roof. He starts pulling up roofing on a roof.",
    "0123456789 +-*/=()[]{}<>.,;:!?'\"@#$%&_",
]


def tiny_tokenizer(vocab_size: int = 320) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|pad|>"
    )


def tiny_model_and_tokenizer(seed: int = 0, layers: int = 2, hidden: int = 64, max_positions: int = 512) -> tuple[Any, Any]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # larger weights than the default init, so choices differ clearly
        for p in model.parameters():
            p.normal_(0.0, 0.2) if p.dim() > 1 else None
    model.eval()
    return model, tokenizer


def save_tiny_model(folder: Path, seed: int = 0) -> Path:
    model, tokenizer = tiny_model_and_tokenizer(seed=seed)
    folder = Path(folder)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
