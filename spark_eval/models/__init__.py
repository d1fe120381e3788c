"""Coders: what answers a DS-1000 problem (replayed answers now; LLM providers plug in here)."""

from spark_eval.models.base import Coder

__all__ = ["Coder"]
