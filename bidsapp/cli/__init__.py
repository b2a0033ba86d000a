"""Command-line interface (BIDS-Apps conventions)."""
