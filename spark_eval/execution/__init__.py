"""Sandboxed execution of a benchmark's test program on an answer."""

from spark_eval.execution.base import OUTPUT_VERSION, Sandbox
from spark_eval.execution.sandbox import ProcessSandbox

__all__ = ["OUTPUT_VERSION", "ProcessSandbox", "Sandbox"]
