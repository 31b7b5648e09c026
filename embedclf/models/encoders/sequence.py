"""What the order-aware encoders (rnn, transformer) share: each row's real words moved to the
front, in order, whatever side the padding was on, with their count."""

from __future__ import annotations

import torch


def left_aligned(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``ids`` with each row's real ids first (stable: their order kept) and padding after,
    and each row's count of real ids."""
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    return ids.gather(1, order), mask.sum(1)
