"""The numerical ops of the SSM kernels and convolutions: each public op picks its backend (Triton, PyTorch) from
its arguments and has a plain `_ref` twin that the tests compare it with (outputs and gradients)."""
