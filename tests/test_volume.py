import torch

from gen3dface.core.cameras import orbit_cameras, synthesis_grid, target_ring
from gen3dface.volume.grid import frustum_points, near_far, sample_volume, unproject_features, voxel_centers


def test_voxel_centres_match_grid_sample_convention():
    V = 8
    vol = voxel_centers(V).permute(3, 0, 1, 2)[None]  # the volume holds its own centre coordinates
    pts = voxel_centers(V).reshape(1, -1, 3)
    assert torch.allclose(sample_volume(vol, pts).reshape(3, -1).T, pts[0], atol=1e-6)


def test_a_point_seen_by_several_cameras_lands_in_one_voxel():
    V, h = 16, 64
    p = torch.tensor([0.31, -0.22, 0.4])
    cams = synthesis_grid(image_size=h)[torch.tensor([16, 19, 21, 24, 27, 30, 40])]  # several views around
    uv, _ = cams.project(p.expand(len(cams), 1, 3))
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(h) + 0.5, indexing="ij")
    blobs = torch.exp(-((xx - uv[:, :, 0, None]) ** 2 + (yy - uv[:, :, 1, None]) ** 2) / 2.0)  # (N, h, h)
    vol, count = unproject_features(blobs[None, :, None], cams, V)
    z_i, y_i, x_i = (int(i) for i in torch.unravel_index(vol[0, 0].argmax(), (V, V, V)))
    want = ((p + 1) / 2 * V).floor().long().tolist()  # x, y, z indices of the voxel holding p
    assert [x_i, y_i, z_i] == want
    assert float(count.max()) == len(cams)


def test_frustum_sampling_reproduces_an_analytic_volume():
    V = 32
    a = torch.tensor([0.7, -1.3, 0.4])
    centres = voxel_centers(V)
    vol = (centres @ a + 0.25)[None, None]  # a linear field: trilinear interpolation is exact inside
    cams = orbit_cameras([20.0, -135.0], [10.0, -30.0], image_size=128)
    pts = frustum_points(cams, 16, 16, 24)  # (2, 24, 16, 16, 3)
    assert pts.shape == (2, 24, 16, 16, 3)
    inside = (pts.abs() <= 1 - 1.0 / V).all(-1)
    got = sample_volume(vol.expand(2, 1, V, V, V), pts)[:, 0]
    want = pts @ a + 0.25
    assert inside.sum() > 1000
    assert torch.allclose(got[inside], want[inside], atol=1e-5)
    # the samples of one pixel lie on its ray, in depth order between near and far
    near, far = near_far(cams)
    d = (pts - cams.centers[:, None, None, None]).norm(dim=-1)
    assert bool((d[:, 1:] > d[:, :-1]).all())
    assert bool((d.amin((1, 2, 3)) >= near - 1e-4).all())


def test_gradients_reach_the_features():
    cams = target_ring(4, image_size=32)
    feats = torch.randn(2, 4, 5, 16, 16, requires_grad=True)
    vol, _ = unproject_features(feats, cams, 8)
    pts = frustum_points(cams, 8, 8, 6)
    out = sample_volume(vol, pts[None].expand(2, -1, -1, -1, -1, -1).reshape(2, -1, 8, 8, 3))
    out.square().mean().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0


def test_mesh_voxels_and_sparse_dense_agreement():
    import pytest

    from gen3dface.mesh.estimate import estimate_mesh
    from gen3dface.core.samples import sample_photo
    from gen3dface.volume.grid import SparseMeshNet, mesh_voxel_features, voxelize_mesh

    mesh = estimate_mesh(sample_photo("astronaut"))
    V = 32
    vox = voxelize_mesh(torch.as_tensor(mesh.vertices), torch.as_tensor(mesh.faces), V)
    assert 100 < len(vox) < V**3 // 10  # a surface, not a solid
    assert bool((vox[:, 0] >= V // 2).all())  # the face is in front (+Z half) of the head cube
    cams = target_ring(4, image_size=32)
    feats = torch.randn(1, 4, 8, 16, 16)
    f, idx = mesh_voxel_features(feats, cams, [vox], V)
    assert f.shape == (len(vox), 8) and idx.shape == (len(vox), 4)
    torch.manual_seed(0)
    net = SparseMeshNet(8, 16, 6, layers=3)
    dense = net(f, idx, 1, V, dense=True)
    assert dense.shape == (1, 6, V, V, V)
    off = torch.ones(V, V, V, dtype=torch.bool)
    off[vox[:, 0], vox[:, 1], vox[:, 2]] = False
    assert float(dense[0][:, off].abs().max()) == 0.0  # nothing leaks off the surface
    dense.square().mean().backward()  # the CPU trains through the dense path
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    if not net.sparse_available:
        pytest.skip("spconv not importable here: the dense path is all there is")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    with torch.no_grad():
        for _ in range(3):  # repeated: spconv's multi-threaded CPU path used to race
            sparse = net(f, idx, 1, V, dense=False)
            assert torch.allclose(sparse, dense, atol=1e-5), float((sparse - dense).abs().max())
    assert torch.get_num_threads() == 2
    torch.set_num_threads(threads)
