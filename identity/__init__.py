"""One-ID resolution: identifier graph, guardrails, components, stable ids, explanations.

Public verbs (import from the modules): `cdp.identity.config.load_identity_rules`,
`cdp.identity.explain.explain_profile`, `cdp.identity.quality.pairwise_quality`,
`cdp.identity.persist.resolve_one_id`; the stage itself is `cdp.resolve_identity.run`.
"""

# core verbs (identity-core): components with guardrail limits, stable One-IDs, the Spark components engine
from cdp.identity.graph import Resolution, resolve  # noqa: E402,F401
from cdp.identity.stable_ids import assign_one_ids  # noqa: E402,F401
from cdp.identity.distributed import resolver_for, spark_components  # noqa: E402,F401
