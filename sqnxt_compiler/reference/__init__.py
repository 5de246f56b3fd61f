"""Numerical reference: the numpy executor of the IR and the onnxruntime comparison."""
