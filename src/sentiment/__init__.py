"""sentiment: a self-hostable sentiment-analysis system (prepare, train, evaluate, serve, api)."""

__version__ = "0.1.0"
