"""Graph passes (one module per pass) and the pass registry."""
