"""kompakt's lm-eval backend scores exactly what lm-eval's HFLM scores (to 1e-4), with fewer tokens computed."""

from __future__ import annotations

import pytest

pytest.importorskip("lm_eval")
torch = pytest.importorskip("torch")

from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.models.huggingface import HFLM  # noqa: E402

from harness.measure.lm_eval_model import KompaktLM, _common_prefix, cache_keyword, sharing_pays  # noqa: E402
from harness.build.tiny_model import tiny_model_and_tokenizer  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module")
def tiny():
    return tiny_model_and_tokenizer(seed=1)


def _ll(context: str, continuation: str) -> Instance:
    return Instance("loglikelihood", {}, (context, continuation), 0)


def _requests() -> list[Instance]:
    reqs = []
    # ARC-like: one context, several continuations of different lengths
    for ctx in ["Question: Which gas do plants take in from the air?\nAnswer:", "Q: What is human life expectancy?\nA:"]:
        for choice in [" carbon dioxide", " oxygen", " the lazy dog jumps over the fox", " x"]:
            reqs.append(_ll(ctx, choice))
    # WinoGrande-like: different contexts sharing a prefix, one continuation
    for option in ["Sarah", "Maria"]:
        reqs.append(_ll(f"Sarah was a much better surgeon than Maria so {option}", " always got the easier cases."))
    # context ending in whitespace (moved to the continuation by _encode_pair)
    reqs.append(_ll("The quick brown fox ", "jumps"))
    reqs.append(_ll("The quick brown fox ", "sleeps"))
    # empty context (the prefix token is the context)
    reqs.append(_ll("", "The quick brown fox"))
    # a lone request
    reqs.append(_ll("0123456789", " +-*/"))
    return reqs


def _both(model, tokenizer, **kwargs):
    ref = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=3, **kwargs)
    fast = KompaktLM(pretrained=model, tokenizer=tokenizer, batch_size=3, **kwargs)
    return ref, fast


def test_common_prefix():
    assert _common_prefix([1, 2, 3], [1, 2, 4], 10) == 2
    assert _common_prefix([1, 2, 3], [1, 2, 3], 2) == 2
    assert _common_prefix([], [1], 5) == 0


def test_sharing_pays_only_when_the_saved_tokens_outweigh_the_extra_calls():
    """A shared group takes two calls (prefix, tails) where plain batches of 8 take k/8 of one; each call costs 40 tokens."""
    # WinoGrande: two options sharing the 10 tokens before the blank save 10 tokens for 1.75 extra calls (70 tokens)
    assert not sharing_pays(2, 10, 0, 8, 40)
    # ARC: four choices of a 31-token question save 93 tokens for 1.5 extra calls (60)
    assert sharing_pays(4, 31, 0, 8, 40)
    # a short HellaSwag context of 16 tokens saves 48: not enough; its usual 30 tokens (90) are
    assert not sharing_pays(4, 16, 0, 8, 40) and sharing_pays(4, 30, 0, 8, 40)
    # exactly even is not a gain
    assert not sharing_pays(4, 20, 0, 8, 40)
    # TruthfulQA: the primer kept from the previous question counts as saved too
    assert sharing_pays(2, 30, 190, 8, 40) and not sharing_pays(2, 30, 0, 8, 40)
    # a group larger than a batch takes one call in plain batches per batch: one extra call for sharing
    assert sharing_pays(16, 3, 0, 8, 40) and not sharing_pays(16, 2, 0, 8, 40)
    assert not sharing_pays(1, 500, 0, 8, 40)  # a lone request has nothing to share


def test_short_shared_prefixes_are_scored_in_plain_batches(tiny):
    """WinoGrande-like pairs share only a few tokens: they go into plain batches (no extra calls), with HFLM's scores."""
    model, tokenizer = tiny
    ref, fast = _both(model, tokenizer)
    reqs = [_ll(f"{a} {b} so {o}", " got it.") for a, b in (("Ann", "Bo"), ("Cy", "Di"), ("Ed", "Flo")) for o in (a, b)]
    for (la, ga), (lb, gb) in zip(ref.loglikelihood(reqs, disable_tqdm=True), fast.loglikelihood(reqs, disable_tqdm=True)):
        assert abs(la - lb) < TOL and ga == gb
    assert fast.stats["groups_shared"] == 0 and fast.stats["groups_plain"] == 3
    assert fast.stats["forward_calls"] == 2  # six requests in batches of three, as HFLM runs them


def test_loglikelihood_equals_hflm(tiny):
    model, tokenizer = tiny
    ref, fast = _both(model, tokenizer)
    reqs = _requests()
    a = ref.loglikelihood(reqs, disable_tqdm=True)
    b = fast.loglikelihood(reqs, disable_tqdm=True)
    assert len(a) == len(b) == len(reqs)
    for (la, ga), (lb, gb) in zip(a, b):
        assert abs(la - lb) < TOL
        assert ga == gb
    # the shared contexts were computed once: fewer tokens than requested
    assert fast.stats["tokens_computed"] < fast.stats["tokens_requested"]
    assert fast.stats["groups_shared"] >= 2


def test_without_prefix_sharing_equals_hflm(tiny):
    model, tokenizer = tiny
    ref = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4)
    plain = KompaktLM(pretrained=model, tokenizer=tokenizer, batch_size=4, prefix_sharing=False)
    reqs = _requests()
    for (la, ga), (lb, gb) in zip(ref.loglikelihood(reqs, disable_tqdm=True), plain.loglikelihood(reqs, disable_tqdm=True)):
        assert abs(la - lb) < TOL and ga == gb


def test_greedy_flag_is_set_when_the_continuation_is_greedy(tiny):
    model, tokenizer = tiny
    fast = KompaktLM(pretrained=model, tokenizer=tokenizer, batch_size=2)
    ids = tokenizer("The quick brown", add_special_tokens=False).input_ids
    with torch.no_grad():
        nxt = int(model(torch.tensor([ids])).logits[0, -1].argmax())
    greedy_text = tokenizer.decode([nxt])
    (ll, greedy), = fast.loglikelihood([_ll("The quick brown", greedy_text)], disable_tqdm=True)
    enc = fast._encode_pair("The quick brown", greedy_text)
    if enc[1] == [nxt]:  # the decoded token re-encodes to itself
        assert greedy


def test_truncation_to_max_length_equals_hflm(tiny):
    model, tokenizer = tiny
    ref, fast = _both(model, tokenizer, max_length=24)
    long_ctx = "The quick brown fox jumps over the lazy dog. " * 6
    reqs = [_ll(long_ctx, " carbon dioxide"), _ll(long_ctx, " oxygen"), _ll(long_ctx, " x")]
    for (la, _), (lb, _) in zip(ref.loglikelihood(reqs, disable_tqdm=True), fast.loglikelihood(reqs, disable_tqdm=True)):
        assert abs(la - lb) < TOL


def test_cache_keyword_follows_the_forward_signature(tiny):
    """The key/value cache goes in under the name the model's forward declares (transformers renamed
    ``past_key_values`` to ``cache``): under a name it no longer knows it would vanish into ``**kwargs``."""

    class Old(torch.nn.Module):
        def forward(self, input_ids=None, past_key_values=None, use_cache=None, **kwargs):
            return input_ids

    class New(torch.nn.Module):
        def forward(self, input_ids=None, cache=None, use_cache=None, **kwargs):
            return input_ids

    assert cache_keyword(Old()) == "past_key_values"
    assert cache_keyword(New()) == "cache"
    import inspect

    model, _ = tiny
    assert cache_keyword(model) in inspect.signature(model.forward).parameters


def test_scoring_passes_the_cache_without_a_deprecation_warning(tiny):
    import warnings

    model, tokenizer = tiny
    fast = KompaktLM(pretrained=model, tokenizer=tokenizer, batch_size=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fast.loglikelihood(_requests(), disable_tqdm=True)
    assert fast.stats["groups_shared"] > 0  # the cache was passed on
    assert not [w for w in caught if "past_key_values" in str(w.message)]


def test_prefix_cache_is_reused_across_groups(tiny):
    """TruthfulQA-like: a long primer shared by every question; its cache is kept between questions."""
    model, tokenizer = tiny
    ref, fast = _both(model, tokenizer)
    primer = "Q: What is human life expectancy in the United States?\nA: Human life expectancy is 78 years.\n\n" * 2
    reqs = []
    for q in ["Which gas do plants take in?", "Who was the surgeon?", "What is the square root?"]:
        for a in [" carbon dioxide", " oxygen", " I have no comment."]:
            reqs.append(_ll(primer + "Q: " + q + "\nA:", a))
    a = ref.loglikelihood(reqs, disable_tqdm=True)
    b = fast.loglikelihood(reqs, disable_tqdm=True)
    for (la, _), (lb, _) in zip(a, b):
        assert abs(la - lb) < TOL
    primer_len = len(tokenizer(primer).input_ids)
    # the primer ran once, not once per question and choice
    assert fast.stats["tokens_computed"] < fast.stats["tokens_requested"] - 6 * primer_len


def test_rolling_equals_hflm(tiny):
    model, tokenizer = tiny
    ref, fast = _both(model, tokenizer, max_length=32)
    docs = [
        Instance("loglikelihood_rolling", {}, (" = Robert Boulter = \n Robert Boulter is an English film , television and theatre actor . " * 3,), 0),
        Instance("loglikelihood_rolling", {}, ("Short text.",), 1),
    ]
    a = ref.loglikelihood_rolling(docs, disable_tqdm=True)
    b = fast.loglikelihood_rolling(docs, disable_tqdm=True)
    assert len(a) == len(b) == 2
    for x, y in zip(a, b):
        assert abs(x - y) < TOL * max(1.0, abs(x) / 100)  # a sum over many tokens: 1e-4 per 100 nats


def test_tied_embeddings_model_equals_hflm(tiny_model_dir):
    """The shared fixture's model ties input and output embeddings and has 256 positions."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ref, fast = _both(model, tokenizer)
    reqs = _requests()
    for (la, ga), (lb, gb) in zip(ref.loglikelihood(reqs, disable_tqdm=True), fast.loglikelihood(reqs, disable_tqdm=True)):
        assert abs(la - lb) < TOL and ga == gb


def test_lm_eval_tasks_score_like_hflm(tiny, fake_data_dir):
    """Real lm-eval tasks (their prompts, choices and metrics, on local records; truncation for TruthfulQA's long
    primer) give the same scores."""
    from harness.measure.tasks.lm_eval_runner import run_task

    model, tokenizer = tiny
    ref, fast = _both(model, tokenizer)
    for task in ("arc_challenge", "truthfulqa_mc2", "winogrande"):
        a = run_task(ref, task, data_dir=fake_data_dir, limit=4)
        b = run_task(fast, task, data_dir=fake_data_dir, limit=4)
        assert [x.metric for x in a.accuracy] == [y.metric for y in b.accuracy]
        for x, y in zip(a.accuracy, b.accuracy):
            assert round(x.value, 4) == round(y.value, 4), (task, x, y)


def test_word_perplexity_records_its_rolling_window(tiny, fake_data_dir):
    """lm-eval's word perplexity depends on the window it rolls over the documents (the model's max_length),
    so the window is recorded with it; a shorter window gives another perplexity."""
    from harness.measure.tasks.lm_eval_runner import run_task

    model, tokenizer = tiny
    _, fast = _both(model, tokenizer)
    [p] = run_task(fast, "wikitext", data_dir=fake_data_dir, limit=2).perplexity
    assert p.context_length == fast.max_length and p.word_perplexity > 1.0
    fast._max_length = 16
    [short] = run_task(fast, "wikitext", data_dir=fake_data_dir, limit=2).perplexity
    assert short.context_length == 16 and short.word_perplexity != p.word_perplexity


def test_registered_with_lm_eval():
    from lm_eval.api.registry import get_model

    assert get_model("kompakt") is KompaktLM
