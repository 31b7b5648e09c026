"""What the order-aware encoders (rnn, transformer) share: each row's real words moved to the
front, in order, whatever side the padding was on, with their count."""

from __future__ import annotations

import torch


def left_aligned(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``ids`` with each row's real ids first (stable: their order kept) and padding after,
    and each row's count of real ids.

    Each id's new position comes from running counts (a real id goes after the real ids
    before it, padding after all of them) and is scattered there: the same result as a
    stable sort of the mask, in operations that ONNX export can express (a sort cannot)."""
    real = mask.long()
    count = real.sum(1)
    position = torch.where(mask, real.cumsum(1) - 1, count.unsqueeze(1) + (1 - real).cumsum(1) - 1)
    return torch.zeros_like(ids).scatter(1, position, ids), count
