"""Memories: what gives the coder a recommendation and learns from finished records."""

from spark_eval.memory.base import Memory

__all__ = ["Memory"]
