"""Upcasting half-precision codes for the loss computation without overflowing their gradients."""

from __future__ import annotations

import torch


class _SaturatingCast(torch.autograd.Function):
    """``x.to(dtype)`` whose gradient, cast back to x's dtype, saturates at that dtype's largest finite
    value instead of overflowing to inf."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        ctx.source = x.dtype
        return x.to(dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        largest = torch.finfo(ctx.source).max
        return grad.clamp(-largest, largest).to(ctx.source), None


def upcast(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` in ``dtype`` (a wider float type) for computing a loss; its gradient stays finite.

    The lossless loss is steep by design: its positive term -ln((beta - d)/beta + eps) has slope
    1/(beta*eps), about 1e8 at d = beta. float32 holds that, float16 (largest finite value 65504)
    does not, so a plain ``x.float()`` would hand a float16 input an inf gradient. This cast clamps
    the gradient to the input dtype's finite range on the way back (the direction is kept, the
    magnitude is the largest float16 can hold). NaN gradients stay NaN. Upcast before indexing
    rows out of a batch: the gradients of the rows are then summed in the wide dtype, where a
    row used by two steep triplets cannot overflow.

    Shape: any; output the same shape in ``dtype``.
    """
    if x.dtype == dtype:
        return x
    return _SaturatingCast.apply(x, dtype)
