"""spark_eval: a research harness that reproduces and extends the Spark shared-memory paper on DS-1000."""

__version__ = "0.1.0"
