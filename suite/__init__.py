"""ssm-suite: a benchmark suite for S4, S4D and Liquid-S4 on long-range sequence tasks.

The package is the command-line face (`suite ...`): configuration, registries, training,
MLflow tracking. Model code lives in `models/`, data code in `tasks/`; neither imports `suite`.
"""

__version__ = "0.1.0"
