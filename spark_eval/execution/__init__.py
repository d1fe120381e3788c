"""Sandboxed execution of DS-1000's own tests on an answer."""

from spark_eval.execution.base import LIBRARY_MODULES, Sandbox
from spark_eval.execution.program import build_program
from spark_eval.execution.sandbox import ProcessSandbox

__all__ = ["LIBRARY_MODULES", "ProcessSandbox", "Sandbox", "build_program"]
