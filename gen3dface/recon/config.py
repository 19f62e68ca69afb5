"""How a surface is fitted: :class:`ReconConfig`, and :func:`config_for` that reads a profile's sizes
(``Profile.recon`` in :mod:`gen3dface.core.profiles`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from gen3dface.core.errors import InputError


@dataclass(frozen=True)
class ReconConfig:
    """How a field is fitted.

    Attributes:
        grid_sizes: SDF grid side R of each coarse-to-fine stage (nodes per side over [-1, 1]).
        iters: Adam steps of each stage.
        rays_per_batch: rays per step (3/4 drawn near the foreground, 1/4 anywhere).
        blur: standard deviation (voxels) of a 3x3x3 Gaussian applied to the SDF grid before use (0 = off).
        fine_samples: graded samples per ray inside the surface band.
        band_voxels: half-width of the band, in voxels of the current grid.
        sharpness: ``s * voxel`` at the start and the end of fitting (the NeuS logistic gets sharper; a soft
            one inflates the surface, so it starts at a few voxels and ends well under one).
        lr_sdf, lr_rgb: Adam learning rates of the SDF (head-frame units) and colour (logits) grids;
            both decay by 10x over the fit.
        w_mask, w_eikonal, w_smooth, w_rgb_smooth: loss weights (mask BCE, eikonal, SDF Laplacian,
            colour total variation).
        init: ``"hull"`` (visual hull of the masks, the default) or ``"sphere"`` (radius 0.7).
        mesh_resolution: marching-cubes grid side.
        min_component: connected mesh pieces with fewer faces than this fraction of the largest are dropped.
        seed: makes ray sampling repeatable.
    """

    grid_sizes: tuple[int, ...] = (40, 64)
    blur: float = 0.0
    iters: tuple[int, ...] = (150, 250)
    rays_per_batch: int = 2048
    fine_samples: int = 20
    band_voxels: float = 3.0
    sharpness: tuple[float, float] = (4.0, 16.0)
    lr_sdf: float = 3e-3
    lr_rgb: float = 8e-2
    w_mask: float = 0.3
    w_eikonal: float = 0.05
    w_smooth: float = 2e-3
    w_rgb_smooth: float = 1e-3
    init: str = "hull"
    mesh_resolution: int = 96
    min_component: float = 0.05
    seed: int = 0

    def __post_init__(self):
        if len(self.grid_sizes) != len(self.iters) or not self.grid_sizes:
            raise InputError("recon: give one iteration count per grid size")
        if any(r < 8 or r > 512 for r in self.grid_sizes):
            raise InputError(f"recon: grid sizes must lie in 8..512, got {self.grid_sizes}")
        if any(n < 0 for n in self.iters) or self.rays_per_batch < 1 or self.fine_samples < 2:
            raise InputError("recon: iterations >= 0, rays_per_batch >= 1 and fine_samples >= 2 please")
        if self.init not in ("hull", "sphere"):
            raise InputError(f"recon: init must be 'hull' or 'sphere', got {self.init!r}")

    @property
    def total_iters(self) -> int:
        return int(sum(self.iters))

    def to_dict(self) -> dict:
        return asdict(self)


def config_for(profile: str = "smoke", **changes) -> ReconConfig:
    """The profile's :class:`ReconConfig` (``Profile.recon``) with ``changes`` applied (e.g. ``iters=(50, 50)``)."""
    from gen3dface.core.profiles import get_profile

    return ReconConfig(**{**get_profile(profile).recon, **changes})
