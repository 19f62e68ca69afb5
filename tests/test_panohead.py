"""The PanoHead adapter: EG3D camera conditioning, the trust gate, and the dataset plumbing on a stand-in G."""

import json
import math

import numpy as np
import pytest
import torch

from gen3dface.core.cameras import orbit_cameras
from gen3dface.core.errors import BackendUnavailable, InputError
from gen3dface.synth.panohead import (
    EG3D_FOCAL,
    PANOHEAD_RADIUS,
    from_eg3d,
    load_panohead,
    panohead_fov_deg,
    panohead_grid,
    to_eg3d,
)
from gen3dface.synth.synthesis import SynthConfig, panohead_maker, synthesize


def eg3d_reference(yaw: float, pitch: float, radius: float, pivot) -> torch.Tensor:
    """EG3D's look-at camera written independently from its documented rule: origin on a sphere about the
    pivot, forward = pivot - origin, right = -normalize(up x forward), up' = forward x right."""
    o = torch.tensor(
        [
            radius * math.cos(pitch) * math.sin(yaw),
            radius * math.sin(pitch),
            radius * math.cos(pitch) * math.cos(yaw),
        ]
    ) + torch.tensor(pivot)
    f = torch.nn.functional.normalize(torch.tensor(pivot) - o, dim=0)
    up = torch.tensor([0.0, 1.0, 0.0])
    r = -torch.nn.functional.normalize(torch.linalg.cross(up, f), dim=0)
    u = torch.nn.functional.normalize(torch.linalg.cross(f, r), dim=0)
    m = torch.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = r, u, f, o
    return m


@pytest.mark.parametrize("az,el", [(0, 0), (30, 10), (-120, -35), (180, 40), (90, 0)])
@pytest.mark.parametrize("pivot", [(0.0, 0.0, 0.0), (0.0, 0.0, 0.2)])
def test_eg3d_conditioning_matches_eg3d_cameras(az, el, pivot):
    cam = orbit_cameras([az], [el], radius=PANOHEAD_RADIUS / 0.5, fov_deg=panohead_fov_deg(), image_size=512)
    c = to_eg3d(cam, 0.5, pivot)[0]
    assert c.shape == (25,)
    ref = eg3d_reference(math.radians(az), math.radians(el), PANOHEAD_RADIUS, pivot)
    assert torch.allclose(c[:16].reshape(4, 4), ref, atol=1e-5)
    K = c[16:].reshape(3, 3)
    assert torch.allclose(
        K, torch.tensor([[EG3D_FOCAL, 0, 0.5], [0, EG3D_FOCAL, 0.5], [0, 0, 1.0]]), atol=1e-3
    )
    back = from_eg3d(c[None], 512, 0.5, pivot)
    assert torch.allclose(back.c2w, cam.c2w, atol=1e-5) and torch.allclose(back.K, cam.K, atol=1e-3)


def test_grid_and_errors(tmp_path):
    grid = panohead_grid(128)
    assert len(grid) == 48 and torch.allclose(grid.radius, torch.full((48,), PANOHEAD_RADIUS / 0.5))
    with pytest.raises(InputError):
        from_eg3d(torch.zeros(3, 24), 64)
    pkl = tmp_path / "panohead.pkl"
    pkl.write_bytes(b"not really")
    with pytest.raises(BackendUnavailable, match="trust_pickle"):
        load_panohead(pkl, tmp_path)
    with pytest.raises(BackendUnavailable, match="not a PanoHead checkout"):
        load_panohead(pkl, tmp_path, trust_pickle=True)


class FakeG(torch.nn.Module):
    """Stands in for PanoHead's G_ema API (z_dim, mapping, synthesis -> {'image'}) to test the plumbing."""

    z_dim = 8
    rendering_kwargs = {"avg_camera_pivot": [0, 0, 0], "avg_camera_radius": 2.7}

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))
        self.seen = []

    def mapping(self, z, c, truncation_psi=1.0):
        return z * truncation_psi

    def synthesis(self, ws, c):
        self.seen.append(c.clone())
        yaw = torch.atan2(c[0, 3], c[0, 11])  # camera x over z: the azimuth
        img = torch.full((1, 3, 64, 64), float(torch.tanh(ws.mean()))) + 0.0 * yaw
        img[:, 0] = torch.sin(yaw)
        return {"image": img}


def test_panohead_identities_land_in_the_dataset_format(tmp_path):
    G = FakeG()
    cfg = SynthConfig(views=6, res=32, ssaa=1)
    r = synthesize(tmp_path / "ph", 2, cfg, make_item=panohead_maker(G), progress=False)
    assert r["made"] == 2
    d = tmp_path / "ph" / "id_000001"
    meta = json.loads((d / "meta.json").read_text())
    assert (
        meta["generator"] == "panohead"
        and len(list(d.glob("view_*.png"))) == 6
        and not (d / "mesh.ply").exists()
    )
    cams = json.loads((d / "cameras.json").read_text())
    assert np.allclose(np.array(cams["K"])[0, 0, 0] / 32, EG3D_FOCAL, atol=1e-3)
    assert len(G.seen) == 12 and all(c.shape == (1, 25) for c in G.seen)
    with pytest.raises(InputError, match="other settings"):
        synthesize(tmp_path / "ph", 2, cfg, progress=False)  # procedural into a PanoHead dataset
