"""Paper tables (Markdown, CSV, LaTeX) beside the published numbers, and the self-contained HTML report."""

from spark_eval.report.build import load_prompts, report_stage, write_report, write_tables

__all__ = ["load_prompts", "report_stage", "write_report", "write_tables"]
