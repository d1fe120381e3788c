"""The experience store: its vocabulary and protocol (`base.py`), the SQL both backends share (`sql.py`), SQLite
(`sqlite.py`), PostgreSQL (`postgres.py`), and opening or copying one where `memory.store` points (`open.py`)."""
