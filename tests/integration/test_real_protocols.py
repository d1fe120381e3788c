"""The paper's model configs against a real server: llama.cpp's `llama-server` (built by `make setup` from the sources
llama-cpp-python compiles) serving SmolLM2-135M.

Each shipped config is composed as `python -m spark_eval` composes it, with only its base URL changed (and a dummy
key in its key's variable), and built by the run's ModelPool, so each provider's SDK sends through its production
transport: gpt5_codex (OpenAI's Responses API), claude_haiku_4_5 (Anthropic's Messages API), gemini_2_5_pro (Google's
OpenAI-compatible path), gpt4o and openai_compatible (Chat Completions). For each: answers to DS-1000 problems, a
structured reply of every shape the judges, the retrieval agent and the learner ask for, stop sequences, a reply cut
at its token cap counted as capped, and the usage read into the run's ledger at the config's list price.

One server serves every protocol under Gemini's path prefix, `/v1beta/openai`, so Gemini's base URL keeps its path
exactly and the others' name the prefix. It checks the key (`--api-key`) and keeps a prompt cache, whose reads it
reports as each protocol does (`cached_tokens`, Anthropic's `cache_read_input_tokens`). Its chat template is ChatML
with tool calls in the Hermes format (SmolLM2's own renders no tools), so the server builds the forced tool call's
grammar and parses a call the model makes.

Where llama-server differs from the provider it stands in for, the test says so and checks what the harness must do
with such a reply:
- Responses API: llama-server ignores `text.format` (OpenAI's API constrains the reply to the schema); the reply
  goes through the structured-reply parser and its one retry, and stays a recorded parse error when unusable.
- Responses API: llama-server reports every reply `completed`, also one cut at `max_output_tokens` (OpenAI's API
  says `incomplete`, reason `max_output_tokens`); a reply whose output reached the cap counts as capped either way.
- Messages API: llama-server turns the forced tool call (`tool_choice: {type: tool}`) into Chat Completions'
  `required`, whose grammar lets free text come before the call (Anthropic's API answers with the call alone); SmolLM2
  writes text until the cap, so the reply is free text: it goes through the same parser and retry as the Responses
  API's.
Those two protocols' structured replies are asked with a lower token cap (UNCONSTRAINED_CAP), as they run to it.
"""
import asyncio
import json
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from spark_eval.data import build_benchmark
from spark_eval.judge.helpfulness import HelpfulnessJudge
from spark_eval.judge.pairwise import PairwiseJudge, pairwise_messages
from spark_eval.judge.quality import QualityJudge
from spark_eval.memory.agent import RetrievalAgent
from spark_eval.memory.index import Hit
from spark_eval.memory.learning.learner import Learner
from spark_eval.memory.store.base import Item
from spark_eval.models.base import GenerationParams
from spark_eval.models.coder import ChatCoder
from spark_eval.models.ledger import Ledger
from spark_eval.models.pool import ModelPool
from spark_eval.records import Recommendation, Usage
from tests.conftest import compose_config
from tests.integration.conftest import llama_server_running, smollm_weights

PREFIX = "/v1beta/openai"
KEY = "dummy-key"
NO_KEY = "no-key"  # what the harness sends for a config without a key variable (openai_compatible)
TEMPLATE = Path(__file__).with_name("chatml_tools.jinja")

# config -> (its key's variable, the path of its base URL on the server)
CONFIGS = {
    "gpt5_codex": ("OPENAI_API_KEY", f"{PREFIX}/v1"),
    "claude_haiku_4_5": ("ANTHROPIC_API_KEY", PREFIX),  # the SDK adds /v1/messages
    "gemini_2_5_pro": ("GEMINI_API_KEY", "/v1beta/openai/"),  # its shipped base URL's own path
    "gpt4o": ("OPENAI_API_KEY", f"{PREFIX}/v1"),
    "openai_compatible": (None, f"{PREFIX}/v1"),
}
ENFORCED = {"gemini_2_5_pro", "gpt4o", "openai_compatible"}
"""Whose structured replies the server constrains to the schema (not the Responses API's nor the Messages API's: see
the module's doc)."""
UNCONSTRAINED_CAP = 96
"""The token cap of each structured request where the server does not constrain the reply (it runs to the cap)."""
GREEDY = ENFORCED | {"claude_haiku_4_5"}
"""Whose configs ask for temperature 0. gpt5_codex sends none, as reasoning models take none: the server then decodes
at its own default, which the test server sets to 0 (`--temp 0`), so that its replies do not vary from run to run
(sampled, a count to 30 once ran to its 40 tokens without reaching 7)."""
IDS = (291, 292)
COUNT = [{"role": "user", "content": "Count from 1 to 30, one number per line."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with llama_server_running(smollm_weights(), log, "--ctx-size", "8192", "--parallel", "2", "--temp", "0",
                              "--chat-template-file", str(TEMPLATE), prefix=PREFIX,
                              api_key=f"{KEY},{NO_KEY}") as root:
        yield root.removesuffix(PREFIX)


@pytest.fixture(params=list(CONFIGS))
def shipped(request, server, monkeypatch, tmp_path):
    """(config name, the model built as a run builds it, its config node, the run's ledger); `run(model, work)`
    closes the model's client before its event loop ends."""
    name = request.param
    variable, path = CONFIGS[name]
    if variable:
        monkeypatch.setenv(variable, KEY)
    cfg = compose_config(f"model={name}", f"model.base_url={server}{path}", f"paths.cache={tmp_path}")
    ledger = Ledger()
    return name, ModelPool(ledger).get(cfg.model), cfg.model, ledger


def run(model, work):
    """`work` on an event loop of its own, the model's SDK client closed before the loop ends."""
    async def closing():
        try:
            return await work
        finally:
            await model.aclose()

    return asyncio.run(closing())


def assert_charged(node, ledger: Ledger, usage: Usage) -> None:
    """Every call's usage is in the ledger at the config's list prices: prompt tokens read from the server's prompt
    cache at the cached-input price, written to it at the cache-write price, the rest at the input price (each the
    input price when the config names none), output at the output price."""
    price = {part: value for part, value in (node.get("price") or {}).items() if value is not None}
    full = price.get("input", 0.0)
    cached = usage.cached_input_tokens or 0
    written = usage.cache_write_tokens or 0
    expected = ((usage.input_tokens - cached - written) * full + cached * price.get("cached_input", full)
                + written * price.get("cache_write", full) + usage.output_tokens * price.get("output", 0.0)) / 1e6
    assert usage.cost_usd == pytest.approx(expected, abs=1e-7)
    assert ledger.usd == pytest.approx(usage.cost_usd, abs=1e-7) and ledger.calls == usage.calls
    if any(price.values()):
        assert usage.cost_usd > 0


def prompt_tokens(server: str, messages: list[dict]) -> int:
    """The tokens of `messages` as the server renders them with its chat template, asked of its own endpoints."""
    def post(path: str, body: dict) -> dict:
        request = urllib.request.Request(f"{server}{PREFIX}{path}", data=json.dumps(body).encode(),
                                         headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read())

    prompt = post("/apply-template", {"messages": messages})["prompt"]
    return len(post("/tokenize", {"content": prompt, "add_special": True, "parse_special": True})["tokens"])


def test_answers_ds1000_problems(shipped, server, problems):
    """The coder's own request for two DS-1000 problems (its messages and stop sequences; the cap lowered for time):
    an answer each, every prompt token counted as the server counts them, the usage charged at the list prices. The
    first problem asked again (another sample) finds its prompt in the server's prompt cache: those tokens are
    counted apart and charged at the cached-input price."""
    name, model, node, ledger = shipped
    coder = ChatCoder(model, build_benchmark(compose_config().dataset), seed=0)
    usage = Usage()
    for problem_id, repeat in ((IDS[0], 0), (IDS[1], 0), (IDS[0], 1)):
        messages, params = coder.request(problems[problem_id], None, repeat)
        completion = run(model, model.complete(messages, replace(params, max_tokens=24)))
        assert completion.text.strip() and 0 < completion.output_tokens <= 24 and completion.attempts == 1
        assert completion.input_tokens == prompt_tokens(server, messages)
        assert completion.request_id
        usage += Usage.of(completion)
    assert 0 < getattr(completion, "cached_input_tokens", 0) < completion.input_tokens
    assert_charged(node, ledger, usage)


class OneItemRecall:
    """What the agent searches: one documentation item for every query."""

    item = Item("doc:numpy:numpy.ndarray.shape", "doc", "Numpy", "numpy.ndarray.shape",
                "Tuple of array dimensions. The shape property is usually used to get the current shape of an array.")

    def search(self, query, libraries, exclude_families, k):
        return [Hit(id=self.item.id, kind="doc", library="Numpy", score=1.0, bm25_rank=1, dense_rank=1,
                    bm25_score=1.0, dense_score=1.0)]

    def fetch(self, ids):
        return {self.item.id: self.item}


def structured_replies(model, problem, cap: int | None = None) -> dict[str, tuple[object, str | None, Usage, int]]:
    """Every structured reply the harness asks for, through its own components (each with its own token cap, or
    `cap`): shape -> (value, error, usage, asks), `usage` the account of `asks` structured requests (the agent's one
    account holds its plan's and its advice's)."""
    code = "result = a.shape"
    capped = {} if cap is None else {"max_tokens": cap}
    replies = {}
    for judge in (QualityJudge(model, scoring="sampled", **capped), HelpfulnessJudge(model, scoring="sampled", **capped)):
        verdict = run(model, judge.grade(problem, code, Recommendation(text="Use the array's shape attribute: a.shape.")))
        replies[judge.kind] = (verdict.score, verdict.parse_error, verdict.usage, 1)
    pairwise = PairwiseJudge(model, scoring="sampled", **capped)
    verdict = run(model, pairwise.verdict(pairwise_messages(problem, code, "result = len(a)")))
    replies["pairwise"] = (verdict.score, verdict.parse_error, verdict.usage, 1)
    advice = run(model, RetrievalAgent(model, **capped).recommend(problem, OneItemRecall(), ()))
    usage = Usage.from_json(advice.trace["usage"])
    if not advice.plan:  # an unusable plan leaves it empty
        replies["plan"] = (None, advice.error, usage, 1)
    else:
        replies["plan"] = (advice.plan, None, Usage(), 0)
        replies["recommendation"] = (advice.text or None, advice.error, usage, 2)
    trace = {"status": "failed", "error_type": "AssertionError", "library": "Numpy", "problem": problem.prompt,
             "code": "result = len(a)", "source": {"record_key": "291/0/0"}}
    candidates, calls = run(model, Learner(model, traces_per_call=1, max_new=1, **capped).distill([trace]))
    replies["insights"] = (candidates or None, calls[0]["error"], calls[0]["usage"], 1)
    return replies


def test_structured_replies_of_every_shape(shipped, problems):
    """The quality, helpfulness and pairwise judges' verdicts, the retrieval agent's plan and recommendation and the
    learner's insights. Where the server constrains replies to the schema, each is usable; on the Responses and
    Messages APIs it does not (see the module's doc), and each is what the harness makes of free text: usable, or a
    recorded parse error after the one retry, never an exception or a made-up value."""
    name, model, node, ledger = shipped
    replies = structured_replies(model, problems[291], None if name in ENFORCED else UNCONSTRAINED_CAP)
    assert {"quality", "helpfulness", "pairwise", "plan", "insights"} <= set(replies)
    usage = Usage()
    for shape, (value, error, spent, asks) in replies.items():
        usage += spent
        if name in ENFORCED:
            assert value is not None and error is None, (shape, error)
        else:
            assert (value is None) == (error is not None), (shape, value, error)
            # each request asked at most twice (the parser's one retry); an unusable one was asked twice
            assert asks <= (spent.calls or 0) <= 2 * asks and (error is None or spent.calls > asks), (shape, spent)
    assert_charged(node, ledger, usage)


def test_stop_sequences_end_the_reply(shipped):
    """A reply stops before its stop sequence, not counted as capped; with greedy decoding it is the unstopped reply
    up to the sequence. The Responses API takes no stop sequences: the harness cuts the reply at the first itself."""
    name, model, node, ledger = shipped
    full = run(model, model.complete(COUNT, model.default_params(max_tokens=40)))
    stopped = run(model, model.complete(COUNT, model.default_params(max_tokens=40, stop=("7",))))
    assert "7" not in stopped.text and stopped.text.strip() and Usage.of(stopped).capped == 0
    if name in GREEDY:
        assert "7" in full.text and stopped.text.strip() == full.text[: full.text.index("7")].strip()
        assert stopped.output_tokens < full.output_tokens
    assert_charged(node, ledger, Usage.of(full) + Usage.of(stopped))


def test_a_reply_cut_at_its_cap_is_counted_capped(shipped):
    """A reply cut at max_tokens counts as capped in the usage every record keeps, whatever the protocol calls it
    (`length`, Anthropic's `max_tokens`; llama-server's Responses API says `completed`: see the module's doc)."""
    name, model, node, ledger = shipped
    completion = run(model, model.complete(COUNT, model.default_params(max_tokens=6)))
    assert completion.output_tokens == 6
    assert Usage.of(completion).capped == 1, completion.finish_reason
    assert_charged(node, ledger, Usage.of(completion))


def test_the_key_is_sent(server, monkeypatch, tmp_path):
    """The server checks the key: a config's key variable holding another key is refused (401), at once."""
    from spark_eval.models.base import ModelCallError

    monkeypatch.setenv("ANTHROPIC_API_KEY", "another-key")
    cfg = compose_config("model=claude_haiku_4_5", f"model.base_url={server}{PREFIX}", f"paths.cache={tmp_path}")
    model = ModelPool(Ledger()).get(cfg.model)
    with pytest.raises(ModelCallError) as refused:
        run(model, model.complete(COUNT, GenerationParams(max_tokens=4)))
    assert refused.value.attempts == 1 and "401" in str(refused.value) and "\n" not in str(refused.value)
