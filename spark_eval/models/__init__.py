"""Models: the ChatModel seam (OpenAI, Anthropic, vLLM, embedded llama.cpp) and the Coder seam."""

from spark_eval.models.base import ChatModel, Coder, GenerationParams, ModelCallError, ModelConfigError

__all__ = ["ChatModel", "Coder", "GenerationParams", "ModelCallError", "ModelConfigError"]
