"""Learning from experience: the learner (`learner.py`), its screen (`screen.py`), the curator (`curator.py`), a
round of learning (`loop.py`), where experience comes from (`experience.py`) and the poisoning arm (`poison.py`)."""
