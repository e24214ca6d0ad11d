"""GaLore's projector with a randomized SVD (``svd: randomized``).

galore-torch's ``GaLoreProjector.get_orthogonal_matrix`` takes a full fp32 ``torch.linalg.svd`` of each projected
gradient whenever the projection is (re)computed, only to keep its top ``rank`` singular vectors; on an 8B model
that is minutes at the first step (and again every ``update_interval`` steps). :class:`RandomizedGaLoreProjector`
computes only that top-``rank`` subspace with ``torch.svd_lowrank`` (Halko et al.'s randomized range finder with
two power iterations), an approximation that is close where the gradient's spectrum falls off past ``rank``.

Imported when the optimizer is built (torch is loaded here, never at registration)."""

from __future__ import annotations

from typing import Any

import torch
from galore_torch.galore_projector import GaLoreProjector

__all__ = ["POWER_ITERATIONS", "RandomizedGaLoreProjector", "oversampling"]

#: Power (subspace) iterations of ``torch.svd_lowrank``: each sharpens the subspace where the spectrum decays
#: slowly, at two more products with the gradient.
POWER_ITERATIONS = 2


def oversampling(rank: int) -> int:
    """Extra directions sampled beyond ``rank``: ``max(8, rank // 4)`` (Halko et al. advise 5-10; a quarter of the
    rank keeps the margin for large ranks, at a cost linear in the sampled width)."""
    return max(8, rank // 4)


class RandomizedGaLoreProjector(GaLoreProjector):
    """``GaLoreProjector`` whose orthogonal matrices come from ``torch.svd_lowrank`` instead of a full SVD: the
    same shapes, dtypes and devices for the ``right``, ``left`` and ``full`` projections, spanning (approximately)
    the same top-``rank`` singular subspace.

    ``torch.svd_lowrank`` draws its Gaussian test matrix from torch's global random generator (that of the
    gradient's device), so each refresh of a projection advances it: runs stay reproducible under a fixed seed, and
    the Trainer restores the generators' states on resume, but the random stream differs from a ``svd: full`` run.
    """

    def get_orthogonal_matrix(self, weights: Any, rank: int, type: str) -> Any:
        data = weights.data
        original_type, original_device = data.dtype, data.device
        matrix = data if data.dtype == torch.float else data.float()
        m, n = matrix.shape
        q = min(rank + oversampling(rank), m, n)
        U, _, V = torch.svd_lowrank(matrix, q=q, niter=POWER_ITERATIONS)  # V: n x q, not transposed

        def cast(tensor: torch.Tensor) -> torch.Tensor:
            # contiguous: a slice of the q-wide factors would keep (and save with the state) all of their storage
            return tensor.to(device=original_device, dtype=original_type).contiguous()

        if type == "right":
            return cast(V[:, :rank].T)
        if type == "left":
            return cast(U[:, :rank])
        if type == "full":
            return [cast(U[:, :rank]), cast(V[:, :rank].T)]
        raise ValueError("type should be left, right or full")
