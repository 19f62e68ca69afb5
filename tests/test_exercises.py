import numpy as np

from gen3dface.teaching import exercises
from gen3dface.core.cameras import Cameras, orbit_position


def test_checkers_pass_reference_answers(capsys):
    assert exercises.check_orbit_position(lambda a, e, r: orbit_position(a, e, r).numpy())

    def project(K, w2c, X):
        cam = X @ w2c[:3, :3].T + w2c[:3, 3]
        uvw = cam @ K.T
        return uvw[:, :2] / uvw[:, 2:]
    assert exercises.check_project(project)

    def ray(K, c2w, col, row):
        d = np.linalg.inv(K) @ np.array([col + 0.5, row + 0.5, 1.0])
        d = c2w[:3, :3] @ d
        return d / np.linalg.norm(d)
    assert exercises.check_pixel_ray(ray)
    assert capsys.readouterr().out.count("PASS") == 3


def test_checkers_fail_wrong_answers(capsys):
    # classic mistakes: degrees as radians, forgetting the perspective divide, pixel corner not centre
    assert not exercises.check_orbit_position(
        lambda a, e, r: r * np.array([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)]))
    assert not exercises.check_project(lambda K, w2c, X: (X @ w2c[:3, :3].T + w2c[:3, 3]) @ K.T[:, :2])

    def corner_ray(K, c2w, col, row):
        d = c2w[:3, :3] @ np.linalg.inv(K) @ np.array([col, row, 1.0])
        return d / np.linalg.norm(d)
    assert not exercises.check_pixel_ray(corner_ray)

    def unfinished(*args):
        raise NotImplementedError
    assert not exercises.check_orbit_position(unfinished)
    out = capsys.readouterr().out
    assert out.count("FAIL") == 4 and "not implemented" in out
    assert Cameras  # the module under test is importable alongside


def test_notebook01_checkers(capsys):
    import torch

    def q(ab, x0, t, noise):
        a = ab[t].reshape(-1, 1, 1, 1, 1)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise
    assert exercises.check_q_sample(q)
    assert not exercises.check_q_sample(lambda ab, x0, t, n: ab[t].reshape(-1, 1, 1, 1, 1) * x0 + n)

    def ddim(ab, eps, t, t_prev, x):
        a_t, a_p = ab[t], (ab[t_prev] if t_prev >= 0 else ab[0])
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        return a_p.sqrt() * x0 + (1 - a_p).sqrt() * eps
    assert exercises.check_ddim_step(ddim)
    assert not exercises.check_ddim_step(lambda ab, eps, t, tp, x: x - eps)

    def loss(model, ab, x0, y, cams, t, noise):
        a = ab[t].reshape(-1, 1, 1, 1, 1)
        return ((model(a.sqrt() * x0 + (1 - a).sqrt() * noise, t, y, cams) - noise) ** 2).mean()
    assert exercises.check_multiview_loss(loss)
    # a classic mistake: predicting x0 instead of the noise
    assert not exercises.check_multiview_loss(
        lambda m, ab, x0, y, c, t, n: ((m(x0, t, y, c) - n) ** 2).mean())
    out = capsys.readouterr().out
    assert out.count("PASS") == 3 and out.count("FAIL") == 3
    assert torch.is_tensor(torch.zeros(1))


def test_notebook02_checkers(capsys):
    assert exercises.check_grid_angles(lambda: [(-180 + 22.5 * a, e) for e in (-40, 0, 40) for a in range(16)])
    assert not exercises.check_grid_angles(lambda: [(22.5 * a, e) for e in (-40, 0, 40) for a in range(16)])

    def score(E):
        E = E / np.linalg.norm(E, axis=1, keepdims=True)
        S = E @ E.T
        return (S.sum() - len(E)) / (len(E) * (len(E) - 1))
    assert exercises.check_consistency_score(score)
    assert not exercises.check_consistency_score(lambda E: float(np.mean(E @ E.T)))  # unnormalised, diagonal in
    out = capsys.readouterr().out
    assert out.count("PASS") == 2 and out.count("FAIL") == 2


def test_notebook04_checkers(capsys):
    assert exercises.check_voxel_index(lambda p, V: tuple(np.floor((p + 1) / 2 * V).astype(int)[::-1]))
    assert not exercises.check_voxel_index(lambda p, V: tuple(np.floor((p + 1) / 2 * V).astype(int)))  # x, y, z
    assert exercises.check_grid_coords(lambda uv, h, w: uv / [w, h] * 2 - 1)
    assert not exercises.check_grid_coords(lambda uv, h, w: (uv - 0.5) / [w - 1, h - 1] * 2 - 1)  # align_corners=True
    out = capsys.readouterr().out
    assert out.count("PASS") == 2 and out.count("FAIL") == 2
