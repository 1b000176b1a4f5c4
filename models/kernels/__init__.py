"""Fast numerical kernels, each with a plain reference twin used by the tests."""
