"""Marketer console: an HTTP API (FastAPI; OpenAPI at /docs) and a static single-page UI over the gold tables.

    >>> from cdp.console import create_app                     # doctest: +SKIP
    >>> app = create_app(spark, settings, users_file)           # doctest: +SKIP

`cdp console --lake DIR` serves it (see docs/console.md).
"""
from __future__ import annotations

from typing import Any

__all__ = ["create_app", "hash_password", "load_users"]


def __getattr__(name: str) -> Any:  # lazy: importing cdp.console must not import FastAPI or Spark
    if name == "create_app":
        from cdp.console.app import create_app

        return create_app
    if name in ("hash_password", "load_users"):
        from cdp.console import auth

        return getattr(auth, name)
    raise AttributeError(name)
