"""cdp: a customer data platform with One-ID resolution for retail chains.

Public entry points: `cdp.config.load_settings`, `cdp.spark.build_spark`, and the `cdp` command (`cdp.cli`).
"""
__version__ = "0.1.0"
