"""sqnxtc: a compiler and scheduler for the SqueezeNext reference accelerator."""
__version__ = "0.1.0"
