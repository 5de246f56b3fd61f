"""Target descriptions."""
