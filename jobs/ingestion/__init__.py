"""Ingestion: landing files -> bronze (as delivered) -> silver (typed, normalised), validated by Great Expectations.

Modules: `readers` (discover, hash, decode, stage), `normalise` (typed silver columns, Spark built-ins),
`expectations` (rules as data -> GX suites), `quarantine` (rejected rows and files), `ledger` (file ledger and
run summary). The job is `cdp.ingest.run(spark, settings, run_date)`.
"""
from cdp.ingestion.expectations import load_rules, validate_rows
from cdp.ingestion.normalise import TYPERS, silver_columns

__all__ = ["TYPERS", "load_rules", "silver_columns", "validate_rows"]
