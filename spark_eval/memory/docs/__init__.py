"""The documentation: walking a library's API (`walk.py`), the knowledge base built from it (`kb.py`), and the
documented APIs a reference solution uses (`apilabels.py`)."""
