"""Training data for the multi-view model (paper Sec. 3.2 "Model training"): target views, input views
and the meshes estimated from the input views.

Every training example is one identity of a synthetic dataset (:mod:`gen3dface.synth.synthesis`):

* targets: its N views on the ring at elevation 0 (the 48-view grid's middle row = :func:`target_ring`);
* input view: one of its front-hemisphere views, cropped exactly as a user's photo is
  (:func:`gen3dface.faces.detect.align_crop`: FFHQ rule, head scale 1.6) — never a ground-truth camera;
* mesh: estimated from that input view (:func:`gen3dface.mesh.estimate.estimate_mesh`), never ground truth.

Preparing inputs needs the face backends (mediapipe) and runs once on a CPU; it stores, per input view,
only the crop transform and the estimated mesh (:func:`build_training_inputs` -> ``inputs.npz``). The views
themselves come either from a dataset folder written by ``gen3dface synth`` (honouring its
``pruning.json``) or are re-rendered from the dataset's seeds on any device (:func:`load_train_data`);
a GPU thus rebuilds thousands of identities in seconds from a file of a few MB.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from gen3dface.core.progress import progress_bar

from gen3dface.core.cameras import Cameras, target_ring
from gen3dface.core.errors import InputError, NoFaceError
from gen3dface.core.images import load_image, to_uint8_tensor
from gen3dface.core.storage import atomic_path
from gen3dface.synth.pruning import kept_identities
from gen3dface.volume.reprojection import SOURCE_SCALE, crop_cameras

#: A procedural dataset seed no shipped model was trained on (the shipped models: seeds 1 and 2): the notebooks'
#: held-out identities.
HELDOUT_SEED = 5
MAX_INPUT_AZIMUTH = 67.5  # front-hemisphere input views: |azimuth| <= this (mediapipe loses faces beyond ~70)
#: The data filters a prepared file's source may record (``scripts/prepare_training.py --janus / --sides``): the
#: setting each was run at, and what concatenated files must agree on.
_FILTERS = {"janus": ("tau", "Janus threshold"), "sides": ("azimuth", "side azimuth")}


def ring_views(n_grid_views: int = 48) -> list[int]:
    """Indices of the elevation-0 ring in a synthesis grid of ``n_grid_views`` (= A azimuths x 3 rows)."""
    if n_grid_views % 3:
        raise InputError(f"training needs a synthesis grid (views a multiple of 3), got {n_grid_views} views")
    a = n_grid_views // 3
    return list(range(a, 2 * a))


def target_views(n_grid_views: int, n_views: int) -> list[int]:
    """Grid indices of the ``n_views`` target views: every k-th view of the elevation-0 ring
    (= :func:`gen3dface.core.cameras.target_ring` ``(n_views)``)."""
    ring = ring_views(n_grid_views)
    if n_views < 1 or len(ring) % n_views:
        raise InputError(f"the dataset's ring has {len(ring)} views; {n_views} target views must divide it")
    return ring[:: len(ring) // n_views]


def input_candidates(cameras: Cameras, max_azimuth: float = MAX_INPUT_AZIMUTH) -> list[int]:
    """Front-hemisphere views of a grid: |azimuth| <= ``max_azimuth``."""
    return [int(i) for i in torch.nonzero(cameras.azimuth_deg.abs() <= max_azimuth + 1e-3).flatten()]


def crop_from_render(rgb: np.ndarray, crop_size: int) -> tuple[np.ndarray, np.ndarray, object]:
    """Detect the face in an ``(H, W, 3)`` uint8 view, crop it like a photo and estimate its mesh.

    Returns ``(M (2, 3) float32 photo px -> crop px, crop (S, S, 3) uint8, FaceMesh)``; raises
    :class:`NoFaceError` when mediapipe finds no face.
    """
    import warnings

    from gen3dface.faces.detect import align_crop, find_face
    from gen3dface.mesh.facemesh import mediapipe_mesh

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        face = find_face(rgb)
        crop = align_crop(rgb, face, size=crop_size, mask=False)
        mesh = mediapipe_mesh(rgb)
    return crop.transform.astype(np.float32), crop.image, mesh


def warp_crop(images: torch.Tensor, M: torch.Tensor, size: int) -> torch.Tensor:
    """The torch twin of :func:`gen3dface.faces.detect.align_crop`'s warp: ``images (B, 3, H, W)`` in [-1, 1],
    ``M (B, 2, 3)`` (photo px -> crop px, OpenCV pixel-index convention) -> ``(B, 3, size, size)``,
    white outside the photo, bicubic."""
    B, _, H, W = images.shape
    A = torch.zeros(B, 3, 3, dtype=torch.float64, device=images.device)
    A[:, :2] = M.to(A)
    A[:, 2, 2] = 1
    inv = torch.linalg.inv(A)[:, :2].to(images.dtype)  # crop px -> photo px
    j, i = torch.meshgrid(
        torch.arange(size, device=images.device, dtype=images.dtype),
        torch.arange(size, device=images.device, dtype=images.dtype),
        indexing="ij",
    )
    pix = torch.stack([i, j, torch.ones_like(i)], -1).reshape(-1, 3)  # (P, 3) x, y, 1
    src = pix @ inv.transpose(1, 2)  # (B, P, 2)
    grid = torch.stack([(src[..., 0] + 0.5) / W * 2 - 1, (src[..., 1] + 0.5) / H * 2 - 1], -1)
    out = F.grid_sample(
        images - 1, grid.reshape(B, size, size, 2), mode="bicubic", padding_mode="zeros", align_corners=False
    )
    return (out + 1).clamp(-1, 1)


@dataclass
class PreparedInputs:
    """What :func:`build_training_inputs` found: one row per usable input view.

    Attributes:
        identity: ``(M,)`` identity index in the dataset; view: ``(M,)`` view index in its grid.
        crop_M: ``(M, 2, 3)`` crop transforms at ``input_res``; vertices: ``(M, P, 3)`` estimated meshes.
        faces: ``(T, 3)`` the meshes' triangles; source: how to get the views back (JSON-able dict).
        camera_K, camera_c2w: ``(M, 3, 3)``, ``(M, 4, 4)`` each input view's camera as estimated with its mesh
            (``FaceMesh.camera``, in the rendered view's pixels), or ``None`` in files written before they were
            kept (a ``reprojection`` model cannot train on those).
    """

    identity: np.ndarray
    view: np.ndarray
    crop_M: np.ndarray
    vertices: np.ndarray
    faces: np.ndarray
    source: dict
    camera_K: np.ndarray | None = None
    camera_c2w: np.ndarray | None = None

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(
                    f,
                    identity=self.identity,
                    view=self.view,
                    crop_M=self.crop_M,
                    vertices=self.vertices.astype(np.float16),
                    faces=self.faces,
                    source=np.array(json.dumps(self.source)),
                    **(
                        {}
                        if self.camera_K is None
                        else {"camera_K": self.camera_K, "camera_c2w": self.camera_c2w}
                    ),
                )

    def subset(self, identities) -> "PreparedInputs":
        """The rows of these identities only (e.g. the ones pruning kept)."""
        rows = np.isin(self.identity, np.asarray(list(identities)))
        if not rows.any():
            raise InputError("none of these identities has a prepared input")
        return dataclasses.replace(
            self,
            identity=self.identity[rows],
            view=self.view[rows],
            crop_M=self.crop_M[rows],
            vertices=self.vertices[rows],
            camera_K=None if self.camera_K is None else self.camera_K[rows],
            camera_c2w=None if self.camera_c2w is None else self.camera_c2w[rows],
        )

    @classmethod
    def concat(cls, parts: list["PreparedInputs"]) -> "PreparedInputs":
        """Several prepared files of one source (e.g. identities 0-799 and 800-1999 of one procedural dataset,
        prepared on different days) as one. Their sources must agree (the records of the Janus and side filters
        aside: the filtered counts are added up when every part was filtered alike), their identities must not
        overlap, and they must all keep their input cameras or all not."""
        if not parts:
            raise InputError("nothing to concatenate")
        first = parts[0]

        def plain(src: dict) -> dict:  # files written before a SynthConfig field existed hold its default
            from gen3dface.synth.synthesis import SynthConfig

            out = json.loads(json.dumps({k: v for k, v in src.items() if k not in _FILTERS}))
            if "synth" in out:
                out["synth"] = {**json.loads(json.dumps(dataclasses.asdict(SynthConfig()))), **out["synth"]}
            return out

        for p in parts[1:]:
            if plain(p.source) != plain(first.source):
                raise InputError("prepared files of different sources cannot be concatenated")
            if not np.array_equal(p.faces, first.faces):
                raise InputError("prepared files with different mesh topologies cannot be concatenated")
            if (p.camera_K is None) != (first.camera_K is None):
                raise InputError("some prepared files keep their input cameras and some do not")
        ids = [set(p.identity.tolist()) for p in parts]
        if sum(map(len, ids)) != len(set().union(*ids)):
            raise InputError("the prepared files share identities")
        source = {k: v for k, v in first.source.items() if k not in _FILTERS}
        for name, (setting, what) in _FILTERS.items():
            records = [p.source.get(name) for p in parts]
            if any(r is not None for r in records):
                values = {None if r is None else r[setting] for r in records}
                if len(values) != 1:
                    raise InputError(f"concatenate prepared files filtered at the same {what}, or none")
                source[name] = {
                    setting: values.pop(),
                    "scored": sum(r["scored"] for r in records),
                    "left_out": sum(r["left_out"] for r in records),
                }

        def cat(name: str):
            return None if first.camera_K is None else np.concatenate([getattr(p, name) for p in parts])

        return cls(
            np.concatenate([p.identity for p in parts]),
            np.concatenate([p.view for p in parts]),
            np.concatenate([p.crop_M for p in parts]),
            np.concatenate([p.vertices for p in parts]),
            first.faces,
            source,
            cat("camera_K"),
            cat("camera_c2w"),
        )

    @classmethod
    def load(cls, path: str | Path) -> "PreparedInputs":
        try:
            z = np.load(path)
            return cls(
                z["identity"],
                z["view"],
                z["crop_M"],
                z["vertices"].astype(np.float32),
                z["faces"],
                json.loads(str(z["source"])),
                z["camera_K"] if "camera_K" in z else None,
                z["camera_c2w"] if "camera_c2w" in z else None,
            )
        except (OSError, KeyError, ValueError) as e:
            raise InputError(f"{path} is not a prepared-inputs file ({e})") from None


def procedural_source(
    seed: int,
    style: str = "photo",
    defect_rate: float = 0.0,
    input_res: int = 256,
    varied_appearance: float = 0.0,
    symmetric_appearance: float = 0.0,
    squircle: float | None = None,
    hair_side: float | None = None,
    plain_back: bool = False,
    decal_rate: float | None = None,
) -> dict:
    """A procedural source for :func:`build_training_inputs`: identities of ``SynthConfig(seed=seed, style=style,
    defect_rate=defect_rate, varied_appearance=varied_appearance, symmetric_appearance=symmetric_appearance)``
    (48-view grid at 128 px, ssaa 2: the shipped model's data), input views rendered at ``input_res``;
    ``squircle``: the heads' skull exponent, ``hair_side``: where long hair falls beside the face (``None``:
    SynthConfig's defaults, and the keys left out); ``plain_back``: SynthConfig's (its key only when set);
    ``decal_rate``: how often a repainted face gets patterns over its features (``None``: the default, key left out)."""
    synth = {
        "views": 48,
        "res": 128,
        "seed": seed,
        "ssaa": 2,
        "style": style,
        "defect_rate": defect_rate,
        "varied_appearance": varied_appearance,
        "symmetric_appearance": symmetric_appearance,
    }
    extra = dict(squircle=squircle, hair_side=hair_side, plain_back=plain_back or None, decal_rate=decal_rate)
    synth.update({k: v for k, v in extra.items() if v is not None})
    return {"kind": "procedural", "input_res": input_res, "synth": synth}


def identity_surface(folder: Path):
    """The true head surface a ``synth`` identity folder holds (``mesh.ply``), as a
    :class:`gen3dface.mesh.surface.MeshSurface` for closest-point queries."""
    import trimesh

    from gen3dface.mesh.surface import MeshSurface

    path = folder / "mesh.ply"
    if not path.is_file():
        raise InputError(
            f"{folder} has no mesh.ply: ground-truth meshes need a dataset written with its meshes"
        )
    tm = trimesh.load(path, process=False)
    return MeshSurface(np.asarray(tm.vertices, np.float64), np.asarray(tm.faces, np.int64))


def build_training_inputs(
    source: str | Path | dict,
    identities: list[int] | None = None,
    per_identity: int = 4,
    crop_size: int = 128,
    seed: int = 0,
    progress: bool = True,
    meshes: str = "estimated",
) -> PreparedInputs:
    """Pick ``per_identity`` front-hemisphere input views per identity, crop them and estimate their meshes.

    Args:
        source: a ``synth`` dataset folder, or ``{"kind": "procedural", "synth": SynthConfig fields,
            "input_res": px}`` to render the input views here (CPU) from seeds.
        identities: identity indices (default: all kept ones of the folder; required for procedural).
        crop_size: side of the crops (the model's image size); seed: picks the views.
        meshes: ``"estimated"`` (the paper: each input view's mesh estimated from that view) or
            ``"ground_truth"`` (the ablation: the estimate snapped onto the identity's true surface,
            :func:`gen3dface.mesh.surface.snap_to_surface`; needs the identity's mesh: procedural, or a folder
            whose identities hold ``mesh.ply``).
    """
    from gen3dface.mesh.surface import MeshSurface, head_surface, snap_to_surface
    from gen3dface.synth.synthesis import SynthConfig, render_identity

    if isinstance(source, dict):
        src = dict(source)
        cfg = SynthConfig(**{**src["synth"], "res": int(src.get("input_res", 256))})
        if identities is None:
            raise InputError("build_training_inputs: give the identities of a procedural source")
        root = None
    else:
        root = Path(source)
        ids_all = kept_identities(root)
        identities = ids_all if identities is None else identities
        meta = json.loads((root / f"id_{identities[0]:06d}" / "meta.json").read_text())
        cfg = SynthConfig(views=meta["views"], res=meta["res"], style=meta["style"])
        src = {"kind": "folder", "root": str(root.resolve())}
    if meshes not in ("estimated", "ground_truth"):
        raise InputError(f"meshes must be 'estimated' or 'ground_truth', got {meshes!r}")
    cams = cfg.cameras()
    cands = input_candidates(cams)
    rows = {k: [] for k in ("identity", "view", "crop_M", "vertices", "K", "c2w")}
    faces = None
    for index in progress_bar(identities, desc="input views + meshes", disable=not progress):
        rng = np.random.default_rng([seed, index, 11])
        order = [cands[i] for i in rng.permutation(len(cands))]
        got = 0
        truth = None  # the identity's true surface (MeshSurface), for meshes="ground_truth"
        while order and got < per_identity:
            batch, order = order[: per_identity - got + 1], order[per_identity - got + 1 :]
            if root is None:
                rendered = render_identity(cfg, index, views=batch)
                rgbs = rendered["rgb"]
                if meshes == "ground_truth" and truth is None:
                    truth = MeshSurface(*head_surface(rendered["mesh"]))
            else:
                rgbs = [load_image(root / f"id_{index:06d}" / f"view_{v:02d}.png").rgb for v in batch]
                if meshes == "ground_truth" and truth is None:
                    truth = identity_surface(root / f"id_{index:06d}")
            for v, rgb in zip(batch, rgbs):
                if got >= per_identity:
                    break
                try:
                    M, _, mesh = crop_from_render(np.ascontiguousarray(rgb), crop_size)
                except NoFaceError:
                    continue
                if truth is not None:
                    mesh = snap_to_surface(mesh, truth)
                rows["identity"].append(index)
                rows["view"].append(v)
                rows["crop_M"].append(M)
                rows["vertices"].append(mesh.vertices)
                rows["K"].append(mesh.camera.K.reshape(3, 3).numpy())
                rows["c2w"].append(mesh.camera.c2w.reshape(4, 4).numpy())
                faces = mesh.faces
                got += 1
    if not rows["identity"]:
        raise NoFaceError("no face was found in any candidate input view of these identities")
    src.update(crop_size=crop_size, input_res=cfg.res, grid_views=cfg.views, meshes=meshes)
    if root is None:
        src["synth"] = {**dataclasses.asdict(cfg), "res": int(source.get("synth", {}).get("res", cfg.res))}
    return PreparedInputs(
        np.array(rows["identity"]),
        np.array(rows["view"]),
        np.stack(rows["crop_M"]),
        np.stack(rows["vertices"]),
        np.asarray(faces),
        src,
        np.stack(rows["K"]).astype(np.float32),
        np.stack(rows["c2w"]).astype(np.float32),
    )


@dataclass
class TrainData:
    """Training tensors in memory (on the training device).

    Attributes:
        targets: ``(I, N, 3, S, S)`` uint8 ring views per identity; inputs: ``(M, 3, S, S)`` uint8 crops;
        input_identity: ``(M,)`` row of ``targets`` each input belongs to; vertices: ``(M, P, 3)``;
        faces: ``(T, 3)``; cameras: the N target cameras at S; identities: ``(I,)`` dataset indices.
        input_cameras: ``(M,)`` each input's estimated camera in its crop's pixels (None for prepared files
            without cameras); warped, visible: ``(M, N, 3, S, S)`` and ``(M, N, 1, S, S)`` uint8, each input
            reprojected into the target views (:func:`gen3dface.volume.reprojection.reproject`), when loaded
            for a ``reprojection`` model.
    """

    targets: torch.Tensor
    inputs: torch.Tensor
    input_identity: torch.Tensor
    vertices: torch.Tensor
    faces: torch.Tensor
    cameras: Cameras
    identities: list[int]
    input_cameras: Cameras | None = None
    warped: torch.Tensor | None = None
    visible: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def image_size(self) -> int:
        return int(self.targets.shape[-1])

    def batch(self, rows: torch.Tensor) -> dict:
        """Examples ``rows (B,)``: ``targets (B, N, 3, S, S)`` and ``input (B, 3, S, S)`` in [-1, 1],
        ``vertices (B, P, 3)``, ``cameras (B, N)``, ``input_cameras (B,)`` (or None) and ``reprojected``
        (``(warped, visible)`` in [-1, 1] and {0, 1}, or None)."""
        rows = rows.to(self.inputs.device)
        to_float = lambda u: u.float() / 127.5 - 1  # noqa: E731
        B = len(rows)
        cams = self.cameras.batched(B)
        ic = self.input_cameras
        return {
            "targets": to_float(self.targets[self.input_identity[rows]]),
            "input": to_float(self.inputs[rows]),
            "vertices": self.vertices[rows],
            "cameras": cams,
            "input_cameras": None if ic is None else Cameras(ic.K[rows], ic.c2w[rows], ic.height, ic.width),
            "reprojected": None
            if self.warped is None
            else (to_float(self.warped[rows]) * self.visible[rows], self.visible[rows].float()),
        }


def _folder_views(
    folder: Path, ring: list[int], views: list[int], device
) -> tuple[torch.Tensor, torch.Tensor]:
    """An identity's ring and input views read from its dataset folder: ``(N, 3, H, W)`` and ``(m, 3, H, W)``
    in [-1, 1] on ``device``."""

    def read(ks: list[int]) -> torch.Tensor:
        rgb = [
            torch.from_numpy(load_image(folder / f"view_{k:02d}.png").rgb.copy()).permute(2, 0, 1) for k in ks
        ]
        return torch.stack(rgb).float().to(device) / 127.5 - 1

    return read(ring), read(views)


def load_train_data(
    prepared: PreparedInputs,
    image_size: int,
    n_views: int = 16,
    device="cpu",
    progress: bool = True,
    reprojection: bool = False,
    mirror: bool | str = False,
    workers: int | None = None,
) -> TrainData:
    """Build :class:`TrainData` at ``image_size`` on ``device`` from :func:`build_training_inputs`' output:
    re-rendered from seeds (procedural source, :func:`gen3dface.training.rerender.procedural_views`: many
    identities per pass, heads built by ``workers`` CPU processes) or read from the dataset folder.
    ``reprojection``: also carry every input into its target views (for a ``reprojection`` model; needs a
    prepared file with cameras), ``mirror``: using the input's mirror image as ``reproject``'s ``mirror`` does
    (``reprojection_mirror`` models)."""
    from gen3dface.synth.synthesis import SynthConfig
    from gen3dface.training.rerender import procedural_views

    src = prepared.source
    ring = target_views(src["grid_views"], n_views)
    ids = sorted(set(int(i) for i in prepared.identity))
    row_of = {i: r for r, i in enumerate(ids)}
    targets, inputs, sources = [], [None] * len(prepared.identity), [None] * len(prepared.identity)
    big_size = image_size * SOURCE_SCALE  # reprojection models carry each input from a crop of this size
    by_id: dict[int, list[int]] = {}
    for m, i in enumerate(prepared.identity):
        by_id.setdefault(int(i), []).append(m)
    views_of = {i: [int(prepared.view[m]) for m in ms] for i, ms in by_id.items()}
    if src["kind"] == "procedural":
        base = SynthConfig(**{**src["synth"]})
        cfg_t, cfg_in = (
            dataclasses.replace(base, res=image_size),
            dataclasses.replace(base, res=src["input_res"]),
        )
        rendered = procedural_views(cfg_t, cfg_in, ids, ring, views_of, device=device, workers=workers)
    elif src["kind"] == "folder":
        root = Path(src["root"])
        rendered = ((i, *_folder_views(root / f"id_{i:06d}", ring, views_of[i], device)) for i in ids)
    else:
        raise InputError(f"unknown training-data source {src['kind']!r}")
    for i, tgt, raw in progress_bar(rendered, total=len(ids), desc="training views", disable=not progress):
        ms = by_id[i]
        tgt = tgt.to(device)
        if tgt.shape[-1] != image_size:
            tgt = F.interpolate(
                tgt, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False
            )
        M = torch.as_tensor(prepared.crop_M[ms], device=device)
        scale = image_size / src["crop_size"]
        crops = warp_crop(raw.to(device), M * scale, image_size)
        big = [None] * len(ms)
        if reprojection:
            big = to_uint8_tensor(warp_crop(raw.to(device), M * (big_size / src["crop_size"]), big_size))
        targets.append(to_uint8_tensor(tgt))
        for m, c, b in zip(ms, to_uint8_tensor(crops), big):
            inputs[m], sources[m] = c, b
    cams = target_ring(n_views, image_size=image_size).to(device)
    data = TrainData(
        torch.stack(targets),
        torch.stack(inputs),
        torch.tensor([row_of[int(i)] for i in prepared.identity], device=device),
        torch.as_tensor(prepared.vertices, dtype=torch.float32, device=device),
        torch.as_tensor(prepared.faces, dtype=torch.long, device=device),
        cams,
        ids,
    )
    if prepared.camera_K is not None:
        res = int(src["input_res"])
        photo = Cameras(torch.as_tensor(prepared.camera_K), torch.as_tensor(prepared.camera_c2w), res, res)

        def crop_cams(size: int) -> Cameras:
            """The input renders' cameras as the cameras of their ``size`` px crops."""
            M = torch.as_tensor(prepared.crop_M, dtype=torch.float32) * (size / src["crop_size"])
            return crop_cameras(photo, M, size).to(device)

        data.input_cameras = crop_cams(image_size)
    if reprojection:
        if data.input_cameras is None:
            raise InputError(
                "this prepared file has no input cameras: prepare it again (build_training_inputs) to train a "
                "reprojection model"
            )
        source = (torch.stack(sources), crop_cams(big_size))
        data.warped, data.visible = reproject_inputs(data, progress=progress, mirror=mirror, source=source)
    return data


def reproject_inputs(
    data: TrainData, chunk: int = 32, progress: bool = True, mirror: bool | str = False, source=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every input of ``data`` carried into its target views: ``warped (M, N, 3, S, S)`` and ``visible
    (M, N, 1, S, S)``, uint8 on the data's device (``mirror``: as ``reproject(mirror=True)``). ``source``:
    ``(uint8 crops (M, 3, kS, kS), their cameras (M,))`` to carry from instead of the inputs (larger crops,
    :data:`gen3dface.volume.reprojection.SOURCE_SCALE`)."""
    from gen3dface.volume.reprojection import reproject

    warped, visible = [], []
    images, ic = source if source is not None else (data.inputs, data.input_cameras)
    for lo in progress_bar(range(0, len(data), chunk), desc="reprojecting inputs", disable=not progress):
        rows = torch.arange(lo, min(lo + chunk, len(data)), device=data.inputs.device)
        w, v = reproject(
            images[rows].float() / 127.5 - 1,
            Cameras(ic.K[rows], ic.c2w[rows], ic.height, ic.width),
            data.vertices[rows],
            data.faces,
            data.cameras.batched(len(rows)),
            mirror=mirror,
        )
        warped.append(to_uint8_tensor(w))
        visible.append(v.to(torch.uint8))
    return torch.cat(warped), torch.cat(visible)
