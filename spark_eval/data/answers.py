"""Answer post-processing, exactly as DS-1000's official harness does it (test_ds1000.py `postprocess`)."""
from __future__ import annotations

# Bump when post-processing changes: the version goes into every record.
POSTPROCESS_VERSION = "ds1000-official-1"


def postprocess(answer: str | list[str]) -> str:
    """Cut a model's answer down to the code DS-1000 inserts into its test program.

    Same steps, same order as the official harness: first element of a list; up to the first
    `</code>`; drop "```python"; up to the next "```"; up to "\\nEND SOLUTION"; drop `<code>`.
    Leading indentation is kept (the 71 function-body problems need it).
    """
    if isinstance(answer, list):
        answer = answer[0]
    code = answer.split("</code>")[0]
    code = code.replace("```python", "")
    code = code.split("```")[0]
    code = code.split("\nEND SOLUTION")[0]
    return code.replace("<code>", "")
