"""The bottom of the harness: the record, its vocabulary, the run directory's file formats and what is
derived from records alone (summary.json, validity.json). Imports nothing of the pipeline, models or Hydra."""

from spark_eval.records.files import (RunDirectoryError, append_jsonl, append_record, read_json_object,
                                      read_jsonl, read_lines, read_records, rewrite_records, write_atomic, write_json, write_jsonl)
from spark_eval.records.format import (BAND_SCORES, BANDS, CAPPED, EXEC_STATUSES, GRADED, NO_STATUS, Completion, ExecResult,
                                       Judgment, Recommendation, Record, RetrievedItem, Usage,
                                       record_key)

__all__ = ["BANDS", "BAND_SCORES", "CAPPED", "Completion", "EXEC_STATUSES", "ExecResult", "GRADED", "Judgment", "NO_STATUS",
           "Recommendation", "Record", "RetrievedItem", "RunDirectoryError", "Usage", "append_jsonl", "append_record", "read_json_object",
           "read_jsonl", "read_lines", "read_records", "record_key", "rewrite_records", "write_atomic", "write_json",
           "write_jsonl"]
