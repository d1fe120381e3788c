"""Programs the harness runs by path inside the grading interpreter, where spark_eval is not importable: the
fork server that runs test programs (`forkserver.py`) and the walk of a library's public API (`docwalk.py`).
Standard library only; this folder holds nothing else, so nothing here can shadow a library's imports."""
