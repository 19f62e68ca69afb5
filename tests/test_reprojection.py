"""Mesh-guided reprojection (gen3dface.volume.reprojection) and the model that reads it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gen3dface.core.cameras import orbit_cameras
from gen3dface.mesh.facemesh import face_template, tesselation_triangles
from gen3dface.synth.render import Mesh, render
from gen3dface.synth.shading import Shading
from gen3dface.volume.reprojection import crop_cameras, head_proxy, mirrored_input, reproject

S = 96


def _proxy_scene():
    """The head proxy of the canonical face template, painted with a colour that codes each point's position and
    lit without highlights: a surface point has the same colour in every view."""
    fv = torch.as_tensor(face_template(), dtype=torch.float32)[None]
    ft = torch.as_tensor(tesselation_triangles())
    verts, tris, _ = head_proxy(fv, ft)
    v = verts[0]
    colours = (v - v.min(0).values) / (v.max(0).values - v.min(0).values)
    colours = 0.15 + 0.7 * colours
    mesh = Mesh(v, tris, colours)
    shading = Shading("photo", key=0.5, fill=0.0, ambient=0.6, specular=0.0)
    return fv, ft, mesh, shading


def test_reprojection_carries_a_known_pattern_to_the_right_pixels():
    fv, ft, mesh, shading = _proxy_scene()
    cam_in = orbit_cameras(torch.tensor([10.0]), 5.0, image_size=S)
    targets = orbit_cameras(torch.tensor([-30.0, 0.0, 35.0, 180.0]), 0.0, image_size=S)
    image = render(mesh, cam_in, shading=shading)["rgb"][0]  # (1, 3, S, S)
    truth = render(mesh, targets, shading=shading)["rgb"][0]  # (4, 3, S, S)
    # the input "crop" is the whole rendered view: an identity crop transform
    cams = crop_cameras(cam_in, np.array([[[1.0, 0, 0], [0, 1.0, 0]]]), S)
    warped, visible = reproject(image, cams, fv, ft, targets.batched(1))
    assert warped.shape == (1, 4, 3, S, S) and visible.shape == (1, 4, 1, S, S)
    vis = visible[0, :, 0].bool()
    # the back view sees nothing the input saw; the near-frontal ones see a large part of the head
    assert vis[3].sum() == 0
    assert vis[1].float().mean() > 0.25 and vis[0].float().mean() > 0.1 and vis[2].float().mean() > 0.1
    # inside the visible region (away from silhouettes, where bilinear sampling mixes in the background) the
    # carried colours are the true colours of the target view
    from scipy.ndimage import binary_erosion

    for k in range(3):
        core = torch.from_numpy(binary_erosion(vis[k].numpy(), iterations=2))
        err = (warped[0, k] - truth[k]).abs().amax(0)[core]
        assert err.median() < 0.02, (k, float(err.median()))
        assert (err < 0.1).float().mean() > 0.95, (k, float((err < 0.1).float().mean()))
    # where nothing is visible the warped view is zero
    assert warped[0][~visible[0].bool().expand_as(warped[0])].abs().max() == 0


def test_the_proxy_carries_nothing_round_the_side_of_the_head(monkeypatch):
    """Only the front of the skull ellipsoid is in the proxy (:data:`PROXY_FRONT_DEG`): a photo from the side
    still reaches the views beside it, but the side of the head behind the face, where the whole ellipsoid put the
    photo's ear and hair, is left to the model (views from behind the ear get a small fraction of it)."""
    import gen3dface.volume.reprojection as R

    v, f = R._skull()
    towards = v[f].mean(1) - np.asarray(R.PROXY_CENTRE)
    azimuth = np.degrees(np.abs(np.arctan2(towards[:, 0], towards[:, 2])))
    assert R.PROXY_FRONT_DEG - 10 < azimuth.max() <= R.PROXY_FRONT_DEG
    cam_in = orbit_cameras(torch.tensor([60.0]), 0.0, image_size=S)
    cams = crop_cameras(cam_in, np.array([[[1.0, 0, 0], [0, 1.0, 0]]]), S)
    targets = orbit_cameras(torch.tensor([45.0, 112.5, 135.0]), 0.0, image_size=S).batched(1)
    seen = {}
    for limit in (180.0, R.PROXY_FRONT_DEG):  # the whole ellipsoid first: the photo is of a head with sides
        monkeypatch.setattr(R, "PROXY_FRONT_DEG", limit)
        R._skull.cache_clear()
        if limit == 180.0:
            fv, ft, mesh, shading = _proxy_scene()
            image = render(mesh, cam_in, shading=shading)["rgb"][0]
        _, visible = reproject(image, cams, fv, ft, targets)
        seen[limit] = visible[0, :, 0].float().mean((1, 2))
    R._skull.cache_clear()
    whole, front = seen[180.0], seen[R.PROXY_FRONT_DEG]
    assert front[0] > 0.15
    assert (front[1:] < whole[1:] / 4).all() and whole[1:].min() > 0.15


def test_reprojection_follows_a_crop_transform():
    """A crop (scale + shift of the photo) moves the carried pixels with it: the same target colours result."""
    fv, ft, mesh, shading = _proxy_scene()
    cam_in = orbit_cameras(torch.tensor([0.0]), 0.0, image_size=S)
    targets = orbit_cameras(torch.tensor([20.0]), 0.0, image_size=S)
    image = render(mesh, cam_in, shading=shading)["rgb"][0]
    ident = crop_cameras(cam_in, np.array([[[1.0, 0, 0], [0, 1.0, 0]]]), S)
    w1, v1 = reproject(image, ident, fv, ft, targets.batched(1))
    # crop: the photo scaled by 0.5 about the origin (a 48 px crop of the 96 px photo, resampled)
    half = torch.nn.functional.interpolate(image, scale_factor=0.5, mode="area")
    crop = crop_cameras(cam_in, np.array([[[0.5, 0, 0], [0, 0.5, 0]]]), S // 2)
    w2, v2 = reproject(half, crop, fv, ft, targets.batched(1))
    both = (v1 * v2)[0, 0, 0].bool()
    assert both.float().mean() > 0.2
    assert (w1 - w2)[0, 0].abs().amax(0)[both].median() < 0.05


def test_add_reprojection_starts_as_the_same_model():
    from gen3dface.core.cameras import target_ring
    from gen3dface.generation.model import Gen3DFaceModel, add_reprojection

    torch.manual_seed(0)
    base = Gen3DFaceModel.from_profile("smoke").eval()
    wide = add_reprojection(base).eval()
    assert wide.config.reprojection and not base.config.reprojection
    assert wide.unet.conv_in.in_channels == base.unet.conv_in.in_channels + base.channels + 1
    S_ = base.image_size
    fv = torch.as_tensor(face_template(), dtype=torch.float32)[None]
    ft = torch.as_tensor(tesselation_triangles())
    img = torch.rand(1, 3, S_, S_) * 2 - 1
    ring = target_ring(4, image_size=S_).batched(1)
    cin = orbit_cameras(torch.tensor([0.0]), 0.0, image_size=S_)
    y0 = base.condition(img, fv, ft)
    y1 = wide.condition(img, fv, ft, cameras=ring, input_cameras=cin)
    assert y1["reprojection"].shape == (1, 4, base.channels + 1, base.latent_size, base.latent_size)
    assert y1["reprojection"][:, :, -1].sum() > 0  # some of the input is visible in the ring views
    x = torch.randn(1, 4, *base.view_shape)
    t = torch.tensor([500])
    with torch.no_grad():
        assert torch.allclose(base(x, t, y0, ring), wide(x, t, y1, ring), atol=1e-5)
    with pytest.raises(Exception, match="input cameras"):
        wide.condition(img, fv, ft)


def test_crop_cameras_project_where_the_crop_shows_a_point():
    """A rotated, scaled, shifted crop: its camera is an ordinary pinhole (upper-triangular K) that projects every
    point to the crop transform of its photo pixel, and unprojects back to the same point."""
    cam = orbit_cameras(torch.tensor([25.0]), -10.0, image_size=200)
    th, s = np.radians(17.0), 0.6
    M = np.array([[s * np.cos(th), -s * np.sin(th), 13.0], [s * np.sin(th), s * np.cos(th), -21.0]])
    crop = crop_cameras(cam, M[None], 120)
    assert torch.allclose(crop.K[0].tril(-1), torch.zeros(3, 3))
    pts = torch.rand(50, 3) - 0.5
    uv, z = cam[0].project(pts)
    want = uv.double() @ torch.as_tensor(M[:, :2]).T + torch.as_tensor(M[:, 2])
    got, z2 = crop[0].project(pts)
    assert torch.allclose(got.double(), want, atol=1e-3)
    assert torch.allclose(crop[0].unproject(got, z2), pts, atol=1e-4)


def test_keep_known_puts_the_known_content_back():
    from gen3dface.generation.diffusion import keep_known, make_scheduler

    sch = make_scheduler("ddim")
    sch.set_timesteps(4)
    x = torch.randn(1, 2, 3, 8, 8)
    x0 = torch.rand(1, 2, 3, 8, 8)
    w = torch.zeros(1, 2, 1, 8, 8)
    w[..., :4] = 1
    mid = keep_known(sch, x, (x0, w), 0, torch.Generator().manual_seed(0))
    assert torch.equal(mid[..., 4:], x[..., 4:])  # weight 0: untouched
    assert not torch.allclose(mid[..., :4], x0[..., :4])  # weight 1 mid-way: x0 noised to the next timestep
    last = keep_known(sch, x, (x0, w), 3)
    assert torch.equal(last[..., :4], x0[..., :4]) and torch.equal(last[..., 4:], x[..., 4:])


def test_keep_photo_draws_the_views_towards_the_reprojected_photo():
    from gen3dface.core.errors import InputError
    from gen3dface.core.cameras import target_ring
    from gen3dface.generation.model import Gen3DFaceModel, add_reprojection
    from gen3dface.generation.pipeline import Gen3DFacePipeline

    torch.manual_seed(0)
    base = Gen3DFaceModel.from_profile("smoke").eval()
    S_ = base.image_size
    fv, ft, mesh, shading = _proxy_scene()
    cin = orbit_cameras(torch.tensor([0.0]), 0.0, image_size=S_)
    image = render(mesh, cin, shading=shading)["rgb"][0]
    with pytest.raises(InputError, match="keep-photo"):
        Gen3DFacePipeline.from_model(base).generate_views(image, fv, ft, steps=2, num_views=3, keep_photo=0.5)
    pipe = Gen3DFacePipeline.from_model(add_reprojection(base).eval())
    assert pipe.keep_photo_for(None) == 1.0
    with pytest.raises(InputError, match="between 0 and 1"):
        pipe.keep_photo_for(1.5)
    # the photo is kept at every step (KEEP_UNTIL), so wholly visible latent pixels come out as the reprojected photo
    kw = dict(input_cameras=cin, steps=3, num_views=3, guidance=1.0)
    free = pipe.generate_views(image, fv, ft, keep_photo=0.0, **kw)[0].astype(float)
    kept = pipe.generate_views(image, fv, ft, keep_photo=1.0, **kw)[0].astype(float)
    ring = target_ring(3, image_size=S_).batched(1)
    warped, visible = reproject(image, cin, fv, ft, ring)
    want = ((warped[0] + 1) * 127.5).permute(0, 2, 3, 1).numpy()
    f = base.config.codec_factor
    whole = torch.nn.functional.avg_pool2d(visible[0], f) == 1  # latent pixels wholly visible
    core = torch.nn.functional.interpolate(whole.float(), scale_factor=f)[:, 0].numpy() > 0.5
    assert core.sum() > 50
    err_free = np.abs(free - want)[core].mean()
    err_kept = np.abs(kept - want)[core].mean()
    assert err_kept < 1.0 and err_free > 20, (err_kept, err_free)


def test_keep_photo_leaves_the_hidden_pixels_of_a_partly_visible_latent_pixel_to_the_model():
    """Pixel latents: each pixel of a latent pixel has its own keep weight, 0 where the photo does not see it,
    so no hidden pixel is drawn towards the warp's mid-grey (which dotted the seam round the kept pixels)."""
    from gen3dface.core.cameras import target_ring
    from gen3dface.generation.model import Gen3DFaceModel
    from gen3dface.generation.pipeline import keep_weights

    base = Gen3DFaceModel.from_profile("smoke")
    model = Gen3DFaceModel(**{**dict(base.config), "reprojection": True, "codec": "pixel", "codec_factor": 2})
    S_ = model.image_size
    fv, ft, mesh, shading = _proxy_scene()
    cin = orbit_cameras(torch.tensor([0.0]), 0.0, image_size=S_)
    image = render(mesh, cin, shading=shading)["rgb"][0]
    cams = crop_cameras(cin, np.array([[[1.0, 0, 0], [0, 1.0, 0]]]), S_)
    ring = target_ring(4, image_size=S_).batched(1)
    y = model.condition(image, fv, ft, cameras=ring, input_cameras=cams)
    x0, w = keep_weights(model, y, 0.8)
    assert x0.shape == w.shape == (1, 4, model.channels, S_ // 2, S_ // 2)
    visible = model.encode(y["reprojection_visible"].expand(1, 4, 3, S_, S_))  # (1, 4, C, h, w): per pixel
    frac = visible.mean(2, keepdim=True)
    assert torch.all(w[visible == 0] == 0)  # hidden pixels: the model's
    whole = (frac == 1).expand_as(w)
    assert whole.sum() > 50 and torch.allclose(w[whole], torch.tensor(0.8))
    part = (frac == 0.75).expand_as(w) & (visible == 1)
    assert part.sum() > 0 and torch.allclose(w[part], torch.tensor(0.4))  # 3 of 4 seen: half the weight
    assert torch.all(w[(frac <= 0.5).expand_as(w)] == 0)


def test_guidance_defaults_to_off_while_the_photo_is_kept():
    from gen3dface.generation.model import Gen3DFaceModel, add_reprojection
    from gen3dface.generation.pipeline import GUIDANCE, GUIDANCE_KEEPING_PHOTO, Gen3DFacePipeline

    base = Gen3DFaceModel.from_profile("smoke").eval()
    paper = Gen3DFacePipeline.from_model(base)
    keeping = Gen3DFacePipeline.from_model(add_reprojection(base).eval())
    assert (GUIDANCE, GUIDANCE_KEEPING_PHOTO) == (2.0, 1.0)
    assert paper.guidance_for(None) == GUIDANCE
    assert keeping.guidance_for(None) == GUIDANCE_KEEPING_PHOTO  # keep_photo's default is 1
    assert keeping.guidance_for(None, keep_photo=0.0) == GUIDANCE  # the model alone: guidance on
    assert keeping.guidance_for(3.0) == paper.guidance_for(3.0) == 3.0


def test_mirrored_input_projects_a_mirrored_point_to_the_flipped_pixel():
    cam = orbit_cameras(torch.tensor([25.0]), -10.0, image_size=120)
    crop = crop_cameras(cam, np.array([[[0.8, -0.1, 7.0], [0.1, 0.8, -3.0]]]), 120)
    pts = torch.rand(1, 40, 3) - 0.5
    img = torch.rand(1, 3, 120, 120)
    flipped, mcam, mv, mt = mirrored_input(img, crop, pts, torch.tensor([[0, 1, 2]]))
    uv, z = crop[0].project(pts[0])
    muv, mz = mcam[0].project(mv[0])
    assert torch.allclose(muv[:, 0], 120 - uv[:, 0], atol=1e-3) and torch.allclose(
        muv[:, 1], uv[:, 1], atol=1e-3
    )
    assert torch.allclose(mz, z, atol=1e-4)
    assert torch.equal(flipped, img.flip(-1)) and mt.tolist() == [[0, 2, 1]]
    assert torch.allclose(mv[0, :, 0], -pts[0, :, 0]) and torch.allclose(mv[0, :, 1:], pts[0, :, 1:])


def _symmetric_scene(target_azimuth: float, photo_azimuth: float = 45.0):
    """:func:`_proxy_scene` painted symmetrically (the colour codes |x|, y, z: the same on both sides) and lit
    evenly (no light from one side), photographed from ``photo_azimuth``: ``(fv, ft, image (1, 3, S, S), its crop
    camera, the target camera at ``target_azimuth``, the true target view (1, 3, S, S))``."""
    fv, ft, mesh, _ = _proxy_scene()
    sym = mesh.vertices.clone()
    sym[:, 0] = sym[:, 0].abs()
    colours = 0.15 + 0.7 * (sym - sym.min(0).values) / (sym.max(0).values - sym.min(0).values)
    mesh = Mesh(mesh.vertices, mesh.faces, colours)
    shading = Shading("photo", key=0.0, fill=0.0, ambient=1.0, specular=0.0)
    cam_in = orbit_cameras(torch.tensor([photo_azimuth]), 0.0, image_size=S)
    target = orbit_cameras(torch.tensor([target_azimuth]), 0.0, image_size=S)
    image = render(mesh, cam_in, shading=shading)["rgb"][0]
    truth = render(mesh, target, shading=shading)["rgb"][0]
    cams = crop_cameras(cam_in, np.array([[[1.0, 0, 0], [0, 1.0, 0]]]), S)
    return fv, ft, image, cams, target, truth


def test_mirror_fills_the_side_the_photo_does_not_show_with_its_mirror_image():
    """A head painted symmetrically, photographed from one side: the far side's views get the true colours of the
    side the photo shows, mirrored, where without the mirror nothing is carried."""
    fv, ft, image, cams, targets, truth = _symmetric_scene(-70.0)
    w0, v0 = reproject(image, cams, fv, ft, targets.batched(1))
    w1, v1 = reproject(image, cams, fv, ft, targets.batched(1), mirror=True)
    assert torch.equal(w1 * v0, w0) and bool((v1 >= v0).all())  # what the photo sees is kept as it was
    filled = (v1 - v0)[0, 0, 0].bool()
    assert filled.float().mean() > 2 * v0.float().mean() + 0.05, (
        float(filled.float().mean()),
        float(v0.mean()),
    )
    from scipy.ndimage import binary_erosion

    core = torch.from_numpy(binary_erosion(filled.numpy(), iterations=2))
    err = (w1[0, 0] - truth[0]).abs().amax(0)[core]
    assert core.sum() > 100 and err.median() < 0.03, float(err.median())


def test_squarest_takes_the_mirror_image_where_it_sees_the_surface_more_squarely():
    """The same symmetric head photographed from 45 deg, seen from -20 deg: the surface the photo sees at a slant
    is stretched in the view, the mirror image sees it face on. ``"squarest"`` carries those pixels from the mirror
    image, and there they are closer to the truth; what is carried at all is the same as with the fill."""
    fv, ft, image, cams, target, truth = _symmetric_scene(-20.0)
    truth = truth[0]
    w0, v0 = reproject(image, cams, fv, ft, target.batched(1))
    w1, v1 = reproject(image, cams, fv, ft, target.batched(1), mirror=True)
    w2, v2 = reproject(image, cams, fv, ft, target.batched(1), mirror="squarest")
    assert torch.equal(v1, v2)
    switched = ((w1 - w2).abs().amax(2) > 1e-6)[0, 0]
    assert switched.sum() > 200 and bool(v0[0, 0, 0][switched].all())  # pixels the photo itself sees
    err_fill = (w1[0, 0] - truth).abs().amax(0)[switched].mean()
    err_squarest = (w2[0, 0] - truth).abs().amax(0)[switched].mean()
    assert err_squarest < 0.5 * err_fill, (float(err_squarest), float(err_fill))
    with pytest.raises(ValueError):
        reproject(image, cams, fv, ft, target.batched(1), mirror="nearest")


def test_squarest_leaves_a_near_frontal_photo_its_own_pixels(monkeypatch):
    """Photographed from 3 deg, the photo and its mirror image see each surface about as squarely; without
    ``SQUAREST_MARGIN`` the choice would flip between them over most of the face (seams wherever a real face is not
    symmetric), with it the photo keeps its pixels."""
    import gen3dface.volume.reprojection as reprojection

    fv, ft, image, cams, target, _ = _symmetric_scene(-20.0, photo_azimuth=3.0)
    w0, v0 = reproject(image, cams, fv, ft, target.batched(1))
    own = v0[:, :, 0] > 0  # the pixels the photo itself sees: the ones squarest may switch
    w2, _ = reproject(image, cams, fv, ft, target.batched(1), mirror="squarest")
    kept = float(((w0 - w2).abs().amax(2) <= 1e-6)[own].float().mean())
    monkeypatch.setattr(reprojection, "SQUAREST_MARGIN", 0.0)
    w3, _ = reproject(image, cams, fv, ft, target.batched(1), mirror="squarest")
    flipped = float(((w0 - w3).abs().amax(2) > 1e-6)[own].float().mean())
    assert own.sum() > 1000 and kept > 0.98 and flipped > 0.3, (int(own.sum()), kept, flipped)


def test_squarest_switches_whole_regions_not_specks(monkeypatch):
    """An estimated face mesh is slightly bumpy and not symmetric, so the flat normals of a triangle and of its
    mirror image differ from triangle to triangle. The squarest rule reads the smooth surface's normals
    (:data:`SQUAREST_SMOOTH`): the pixels it takes from the mirror image form a few connected regions, where flat
    normals scatter them in specks (on a real photo, dots of the other cheek's colour along the mesh's edges)."""
    from scipy.ndimage import convolve, label

    import gen3dface.volume.reprojection as reprojection

    g = torch.Generator().manual_seed(0)
    fv = torch.as_tensor(face_template(), dtype=torch.float32)[None]
    fv = fv + 0.003 * torch.randn(
        fv.shape, generator=g
    )  # an estimate's bumps (median crease ~9 deg, real ~6.5)
    ft = torch.as_tensor(tesselation_triangles())
    image = torch.rand(1, 3, S, S, generator=g) * 1.6 - 0.8  # photo and mirror image differ at every pixel
    cam_in = orbit_cameras(torch.tensor([10.0]), 0.0, image_size=S)
    cams = crop_cameras(cam_in, np.array([[[1.0, 0, 0], [0, 1.0, 0]]]), S)
    targets = orbit_cameras(torch.tensor([-30.0, 0.0]), 0.0, image_size=S).batched(1)
    w_fill, _ = reproject(image, cams, fv, ft, targets, mirror=True)

    def switched(smooth: bool) -> list[tuple[int, int, int]]:
        monkeypatch.setattr(reprojection, "SQUAREST_SMOOTH", smooth)
        w, _ = reproject(image, cams, fv, ft, targets, mirror="squarest")
        out = []
        for k in range(2):
            sw = ((w_fill - w).abs().amax(2) > 1e-6)[0, k].numpy()
            neighbours = convolve(sw.astype(int), np.ones((3, 3), int), mode="constant") - sw
            out.append((int(sw.sum()), int((sw & (neighbours <= 2)).sum()), label(sw)[1]))
        return out

    smooth, flat = switched(True), switched(False)
    for (n_s, iso_s, parts_s), (n_f, iso_f, parts_f) in zip(smooth, flat):
        assert n_s > 500 and abs(n_s - n_f) < 0.1 * n_f, (smooth, flat)  # about as much is switched ...
        assert parts_s <= 6 and iso_s <= 15, smooth  # ... in a few regions
        assert parts_f >= 2 * parts_s and iso_f >= 2 * iso_s, (smooth, flat)


def test_a_mirror_model_reads_the_mirror_filled_reprojection():
    from gen3dface.core.cameras import target_ring
    from gen3dface.generation.model import Gen3DFaceModel, add_reprojection

    wide = add_reprojection(Gen3DFaceModel.from_profile("smoke")).eval()
    mirror = Gen3DFaceModel(**{**dict(wide.config), "reprojection_mirror": True}).eval()
    S_ = wide.image_size
    fv = torch.as_tensor(face_template(), dtype=torch.float32)[None]
    ft = torch.as_tensor(tesselation_triangles())
    img = torch.rand(1, 3, S_, S_) * 1.6 - 0.8
    ring = target_ring(4, image_size=S_).batched(1)
    cin = orbit_cameras(torch.tensor([40.0]), 0.0, image_size=S_)
    plain = wide.condition(img, fv, ft, cameras=ring, input_cameras=cin)["reprojection"][:, :, -1]
    filled = mirror.condition(img, fv, ft, cameras=ring, input_cameras=cin)["reprojection"][:, :, -1]
    assert bool((filled >= plain - 1e-6).all()) and filled.sum() > 1.3 * plain.sum()


def test_a_photo_is_also_cropped_at_source_scale_with_a_camera_that_agrees():
    """``photo_condition`` gives the same framing at SOURCE_SCALE times the size, and a camera that puts every mesh
    vertex where the larger crop shows it: SOURCE_SCALE times where the view-sized crop's camera puts it."""
    from gen3dface.core.samples import sample_photo
    from gen3dface.generation.inputs import photo_condition
    from gen3dface.volume.reprojection import SOURCE_SCALE

    k = SOURCE_SCALE
    p = photo_condition(sample_photo(), 64)
    assert k > 1 and p["source"].shape == (1, 3, 64 * k, 64 * k)
    small = torch.nn.functional.interpolate(p["source"], scale_factor=1 / k, mode="area")
    assert (small - p["input"]).abs().mean() < 0.05  # the same framing, finer
    pts = torch.as_tensor(p["mesh"].vertices, dtype=torch.float32)[None, None]
    uv, _ = p["camera"].project(pts)
    uv_k, _ = p["source_camera"].project(pts)
    assert p["source_camera"].height == 64 * k
    assert (uv_k - k * uv).abs().max() < 0.75  # pixel-centre conventions aside
    plain = photo_condition(sample_photo(), 64, source=False)  # a model that does not reproject
    assert "source" not in plain and "source_camera" not in plain
    assert torch.equal(plain["input"], p["input"]) and torch.equal(plain["camera"].K, p["camera"].K)
    from gen3dface.core.errors import InputError
    from gen3dface.generation.model import Gen3DFaceModel, add_reprojection
    from gen3dface.generation.pipeline import Gen3DFacePipeline

    pipe = Gen3DFacePipeline.from_model(add_reprojection(Gen3DFaceModel.from_profile("smoke")).eval())
    with pytest.raises(InputError, match="larger crop"):  # not silently carried from the small crop
        pipe.generate_batch([plain], steps=1)


def test_training_inputs_are_reprojected_from_larger_crops_to_the_same_pixels():
    """``load_train_data(reprojection=True)`` carries each input from its SOURCE_SCALE crop; the colours land where
    the view-sized crop would put them (a wrong crop transform or camera would shift them)."""
    from gen3dface.training.data import build_training_inputs, load_train_data, reproject_inputs

    src = {
        "kind": "procedural",
        "input_res": 192,
        "synth": {"views": 24, "res": 64, "seed": 3, "ssaa": 1, "style": "photo", "mesh_resolution": 48},
    }
    prep = build_training_inputs(src, [0, 1], per_identity=1, crop_size=64, progress=False)
    data = load_train_data(prep, 64, 8, progress=False, reprojection=True)
    w_big, v_big = data.warped.float(), data.visible.bool()
    w_own, v_own = (t.float() for t in reproject_inputs(data, progress=False))
    both = (v_big & v_own.bool()).expand_as(w_big)
    assert both.float().mean() > 0.05
    assert (v_big != v_own.bool()).float().mean() < 0.02  # the same surfaces are seen
    # the larger crop is sharper, so the colours differ a little, but not by a shift of the pattern
    assert (w_big - w_own)[both].abs().median() < 6, float((w_big - w_own)[both].abs().median())


def test_close_holes_fills_the_eyes_and_mouth_and_keeps_the_outline():
    """mediapipe's tesselation has four boundary loops: the outline, two eyes and the mouth. Closed, only the
    outline is left open, and every inner edge is run once each way (the fans are wound like the mesh), also for
    the mirrored mesh (x -> -x, winding reversed)."""
    from gen3dface.volume.reprojection import close_holes

    fv = torch.as_tensor(face_template(), dtype=torch.float32)[None].repeat(2, 1, 1)
    ft = torch.as_tensor(tesselation_triangles())
    for verts, tris in (
        close_holes(fv, ft),
        close_holes(fv * torch.tensor([-1.0, 1.0, 1.0]), ft[:, [0, 2, 1]]),
    ):
        assert verts.shape == (2, fv.shape[1] + 3, 3)
        f = tris.numpy()
        directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        assert len(np.unique(directed, axis=0)) == len(directed)  # no edge run twice the same way
        undirected, counts = np.unique(np.sort(directed, 1), axis=0, return_counts=True)
        open_vertices = np.unique(undirected[counts == 1])
        outline = face_template()[open_vertices]
        # what is left open is the outline: round the whole face, not the eyes (x +-0.19) or the mouth
        assert outline[:, 0].min() < -0.4 and outline[:, 0].max() > 0.4
        # each hole's new vertex sits inside the face, between its rims
        centres = verts[0, fv.shape[1] :]
        assert (centres[:, 0].abs() < 0.3).all() and (centres[:, 2] > 0.3).all()
