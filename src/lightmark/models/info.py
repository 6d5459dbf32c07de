"""Model cost figures: parameters, float32 size, multiply-accumulates."""

from __future__ import annotations

import torch
from torch import nn

MAX_MODEL_MB = 15.0
"""The product's size budget: one float32 model of at most 15 MB."""


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def float32_size_mb(model: nn.Module) -> float:
    """Size of all parameters and buffers stored as float32, in MB (10^6 bytes)."""
    n = count_parameters(model) + sum(b.numel() for b in model.buffers() if b.is_floating_point())
    return n * 4 / 1e6


@torch.no_grad()
def count_macs(model: nn.Module, input_size: int) -> int:
    """Multiply-accumulates of one forward pass at batch 1 (convolutions and linear layers)."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1]
        total += out.numel() * (m.in_channels // m.groups) * k

    def linear_hook(m: nn.Linear, _inp, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, 3, input_size, input_size))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total


def model_summary(model: nn.Module, input_size: int | None = None) -> dict:
    """``{"params", "size_mb", "gmacs"}`` of a model (``input_size`` defaults to its config)."""
    size = input_size or model.config.input_size
    return {
        "params": count_parameters(model),
        "size_mb": round(float32_size_mb(model), 3),
        "gmacs": round(count_macs(model, size) / 1e9, 4),
        "input_size": size,
    }
