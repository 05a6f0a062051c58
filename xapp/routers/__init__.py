"""REST routers of the xApp, one per concern (health, config, metrics, model, decide)."""
