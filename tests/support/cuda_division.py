"""CPU torch dividing the way CUDA kernels do, so the exactness of a device path is checked against
CUDA's arithmetic on a machine without a GPU."""

from __future__ import annotations

import torch


def emulate_cuda_scalar_division(monkeypatch) -> None:
    """CUDA's true division of a floating tensor by a Python number multiplies by the number's
    reciprocal (ATen BinaryDivTrueKernel.cu); CPU divides. Tensor divisors divide on both."""
    true_div, div = torch.Tensor.__truediv__, torch.Tensor.div

    def cuda_like(self, other):
        if self.is_floating_point() and isinstance(other, (int, float)):
            inverse = true_div(torch.ones((), dtype=self.dtype), torch.tensor(float(other), dtype=self.dtype))
            return self * inverse
        return true_div(self, other)

    def cuda_like_inplace(self, other):
        return self.copy_(cuda_like(self, other))

    monkeypatch.setattr(torch.Tensor, "__truediv__", cuda_like)
    monkeypatch.setattr(torch.Tensor, "__itruediv__", cuda_like_inplace)
    monkeypatch.setattr(torch.Tensor, "div",
                        lambda self, other, **kw: div(self, other, **kw) if kw else cuda_like(self, other))
