import math

import pytest
import torch

from gen3dface.core.cameras import (
    DEFAULT_FOV_DEG,
    DEFAULT_RADIUS,
    Cameras,
    intrinsics_from_fov,
    look_at,
    orbit_cameras,
    orbit_position,
    synthesis_grid,
    target_ring,
)
from gen3dface.core.errors import InputError


def test_orbit_positions_follow_the_convention():
    assert torch.allclose(orbit_position(0, 0, 4.0), torch.tensor([0.0, 0.0, 4.0]))
    assert torch.allclose(
        orbit_position(90, 0, 2.0), torch.tensor([2.0, 0.0, 0.0]), atol=1e-6
    )  # subject's left
    assert torch.allclose(
        orbit_position(180, 0, 1.0), torch.tensor([0.0, 0.0, -1.0]), atol=1e-6
    )  # back of head
    assert torch.allclose(orbit_position(0, 90, 3.0), torch.tensor([0.0, 3.0, 0.0]), atol=1e-6)  # above


def test_rotation_is_orthonormal_and_looks_at_origin():
    cams = orbit_cameras(torch.linspace(-180, 170, 36), torch.linspace(-60, 60, 36))
    R = cams.c2w[:, :3, :3]
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3).expand(36, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(36), atol=1e-5)
    forward = R[:, :, 2]
    assert torch.allclose(forward, -torch.nn.functional.normalize(cams.centers, dim=-1), atol=1e-5)
    assert torch.allclose(cams.w2c @ cams.c2w, torch.eye(4).expand(36, 4, 4), atol=1e-5)


def test_known_projection():
    cam = orbit_cameras([0.0], [0.0], radius=4.0, fov_deg=30.0, image_size=256)
    f = 128 / math.tan(math.radians(15))
    pts = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])
    uv, depth = cam.project(pts)
    expected = torch.tensor([[128, 128], [128 + f / 4, 128], [128, 128 - f / 4], [128, 128]])
    assert torch.allclose(uv[0], expected, atol=1e-3)
    assert torch.allclose(depth[0], torch.tensor([4.0, 4.0, 4.0, 3.0]))
    # image right is the subject's left (+X), image up is +Y, as in a photo of the face
    assert uv[0, 1, 0] > 128 and uv[0, 2, 1] < 128


def test_profile_camera_sees_the_left_ear():
    cam = orbit_cameras([90.0], [0.0])
    uv, depth = cam.project(torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]))
    assert depth[0, 0] < depth[0, 1]  # the left ear (+X) is nearer than the origin
    assert uv[0, 1, 0] < 128  # the nose (+Z) points to the image left in the left profile


def test_project_unproject_round_trip():
    g = torch.Generator().manual_seed(0)
    cams = synthesis_grid(image_size=128)
    pts = torch.rand(len(cams), 50, 3, generator=g) * 2 - 1
    uv, depth = cams.project(pts)
    back = cams.unproject(uv, depth)
    assert torch.allclose(back, pts, atol=1e-4)
    assert bool((depth > 0).all())


def test_rays_hit_the_pixels_they_come_from():
    cams = target_ring(4, image_size=17)
    origins, dirs = cams.rays()
    assert origins.shape == dirs.shape == (4, 17, 17, 3)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(4, 17, 17), atol=1e-5)
    # the centre pixel (8, 8) of an odd image looks straight at the origin
    assert torch.allclose(dirs[:, 8, 8], -torch.nn.functional.normalize(cams.centers, dim=-1), atol=1e-5)
    # points along a ray project back to that pixel's centre
    p = origins[:, 3, 11] + 2.5 * dirs[:, 3, 11]
    uv, _ = cams.project(p[:, None])
    assert torch.allclose(uv[:, 0], torch.tensor([11.5, 3.5]).expand(4, 2), atol=1e-3)


def test_target_ring_and_synthesis_grid_angles():
    ring = target_ring()
    assert len(ring) == 16
    az = ring.azimuth_deg
    step = (torch.diff(az) + 180) % 360 - 180  # azimuth_deg wraps to (-180, 180]
    assert torch.allclose(step, torch.full((15,), 22.5), atol=1e-3)
    assert abs(float(az[0]) + 180) < 1e-3 or abs(float(az[0]) - 180) < 1e-3
    assert abs(float(az[8])) < 1e-4  # view 8 faces the front
    assert torch.allclose(ring.elevation_deg, torch.zeros(16), atol=1e-4)
    grid = synthesis_grid()
    assert len(grid) == 48
    els = sorted({round(float(e), 3) for e in grid.elevation_deg})
    assert els == [-40.0, 0.0, 40.0]
    azs = grid.azimuth_deg
    assert float(azs.min()) >= -180 - 1e-3 and float(azs.max()) <= 180 + 1e-3
    assert torch.allclose(grid.c2w[16:32], ring.c2w, atol=1e-5)
    assert torch.allclose(grid.radius, torch.full((48,), DEFAULT_RADIUS))


def test_head_cube_is_in_view_of_every_grid_camera():
    cams = synthesis_grid(image_size=64)
    corners = torch.tensor(
        [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=torch.float32
    )
    uv, depth = cams.project(corners.expand(48, 8, 3))
    assert bool((depth > 0).all())
    # the head sphere of radius 1 fits in every image
    assert DEFAULT_RADIUS * math.tan(math.radians(DEFAULT_FOV_DEG / 2)) > 1.0


def test_resized_scales_pixels():
    cams = target_ring(16, image_size=256)
    small = cams.resized(32)
    pts = torch.rand(16, 10, 3) - 0.5
    uv, _ = cams.project(pts)
    uv_s, _ = small.project(pts)
    assert torch.allclose(uv_s, uv / 8, atol=1e-4)


def test_serialisation_round_trip(tmp_path):
    cams = synthesis_grid(image_size=64)
    cams.save(tmp_path / "cameras.json")
    back = Cameras.load(tmp_path / "cameras.json")
    assert torch.allclose(back.K, cams.K) and torch.allclose(back.c2w, cams.c2w, atol=1e-6)
    assert (back.height, back.width) == (64, 64)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError):
        Cameras.load(tmp_path / "bad.json")
    with pytest.raises(InputError):
        Cameras.from_dict({"K": []})


def test_degenerate_cameras_are_refused():
    with pytest.raises(ValueError):
        look_at(torch.tensor([0.0, 3.0, 0.0]))
    with pytest.raises(ValueError):
        orbit_cameras([0.0], [90.0])
    with pytest.raises(ValueError):
        Cameras(torch.eye(3)[None], torch.eye(4)[None].expand(2, 4, 4), 8, 8)
    K = intrinsics_from_fov(60, 100, 200)
    assert K[0, 2] == 100 and K[1, 2] == 50


def test_interactive_image_updates_on_slider_change():
    import ipywidgets as widgets
    import numpy as np

    from gen3dface.core.viz import interactive_image

    slider = widgets.IntSlider(value=10, min=0, max=255)
    box = interactive_image(lambda v: np.full((8, 8, 3), v, np.uint8), v=slider)
    image = box.children[1]
    first = image.value
    assert first[:4] == b"\x89PNG"
    slider.value = 200
    assert image.value != first
