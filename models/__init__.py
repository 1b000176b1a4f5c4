"""Sequence models: SSM kernels, the residual block and the full network.

Depends on torch only (pykeops optional); knows nothing of `suite` or `tasks`.
"""
