"""The DS-1000 conversation: how a chat model is asked to solve a problem (a versioned template)."""
from __future__ import annotations

from typing import Any

from spark_eval.models.base import ChatModel, Coder, Message
from spark_eval.types import Problem
from spark_eval.records import Completion, Recommendation

# Bump when a template below changes: the version goes into every record, and resume refuses to mix.
CODER_VERSION = "coder-1"

CODER_SYSTEM = (
    "You are an expert Python programmer for data science (NumPy, pandas, Matplotlib, SciPy, scikit-learn, "
    "PyTorch, TensorFlow). Complete the solution to the problem. Reply with only the code that goes where "
    "the solution goes, with no explanation and no tests. Keep the variable names the problem asks for."
)

RECOMMENDATION_TEMPLATE = (
    "\n\nAdvice from a shared memory of documentation and past experience (use it if it helps):\n"
    "<advice>\n{recommendation}\n</advice>"
)

# Where DS-1000's prompts expect the answer to end (its prompts' own markers).
STOP_SEQUENCES = ("</code>", "# SOLUTION END", "END SOLUTION")


def coder_messages(problem: Problem, recommendation: Recommendation | None) -> list[Message]:
    """System prompt, then the DS-1000 prompt as it is (plus the recommendation when a memory gives one)."""
    prompt = problem.prompt
    if recommendation is not None and recommendation.text:
        prompt += RECOMMENDATION_TEMPLATE.format(recommendation=recommendation.text)
    return [{"role": "system", "content": CODER_SYSTEM}, {"role": "user", "content": prompt}]


class ChatCoder:
    """A Coder that asks a ChatModel, at the model's default parameters plus DS-1000's stop sequences."""

    def __init__(self, model: ChatModel, seed: int | None = None) -> None:
        self.model = model
        self.name = model.name
        self.seed = seed

    async def answer(self, problem: Problem, recommendation: Recommendation | None, repeat: int = 0) -> Completion:
        params = self.model.default_params(stop=STOP_SEQUENCES, seed=self.seed, repeat=repeat)
        return await self.model.complete(coder_messages(problem, recommendation), params)


def as_coder(model: Any, seed: int | None = None) -> Coder:
    """The configured `model` as a Coder: replayed answers already are one; chat models get the conversation."""
    return model if hasattr(model, "answer") else ChatCoder(model, seed)
