"""Predictive models (scikit-learn): churn warning, repurchase propensity, CLV, replenishment, win-back tiers,
look-alike expansion, with a model registry. Feature building (`cdp.models.features`) is separate from fitting."""
