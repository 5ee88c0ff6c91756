"""mmbot: the market-making bot. Knows nothing of Prefect, gates or reports."""

__version__ = "0.1.0"
