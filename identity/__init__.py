"""One-ID resolution: identifier graph, guardrails, components, stable ids, explanations.

Public verbs (import from the modules): `cdp.identity.config.load_identity_rules`,
`cdp.identity.explain.explain_profile`, `cdp.identity.quality.pairwise_quality`,
`cdp.identity.persist.resolve_one_id`; the stage itself is `cdp.resolve_identity.run`.
"""
