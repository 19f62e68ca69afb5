import numpy as np

from gen3dface import exercises
from gen3dface.cameras import Cameras, orbit_position


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
