"""Multi-view face synthesis into a dataset on disk (paper Sec. 3.2, "Multi-view face synthesis").

Offline, identities are procedural heads (:mod:`gen3dface.synth.heads`) rendered by :mod:`gen3dface.synth.render`
from the paper's 48-view grid (azimuth -180..180, elevation -40..40). Like PanoHead's output, some
identities can carry labelled defects for pruning to find:

* ``janus``: the back views show a face (the head is rendered turned round for |azimuth| >= 135);
* ``drift``: the identity changes across views (views on one side, azimuth > 15, show another person).

Layout (one folder per identity, written to ``.id_XXXXXX.part`` and renamed when complete, so a folder
that exists is complete; a killed run resumes by skipping them)::

    ROOT/id_000000/view_00.png .. view_47.png   RGB uint8, white background
                   mask_00.png .. mask_47.png   alpha uint8
                   cameras.json                 gen3dface.core.cameras format
                   mesh.ply                     ground-truth mesh (head frame)
                   meta.json                    seed, style, params, defect labels per view
    ROOT/manifest.json                          every complete identity, rebuilt after each run

Identity ``i`` uses seed ``seed * 1_000_003 + i`` whatever the sharding, so ``--shard k/n`` runs on
several processes or machines produce together exactly the files of one unsharded run.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from gen3dface.core.progress import progress_bar

from gen3dface.core.cameras import Cameras, orbit_cameras, ring_azimuths, synthesis_grid
from gen3dface.core.errors import InputError, OutputError
from gen3dface.synth.appearance import DECAL_RATE, vary_appearance
from gen3dface.synth.heads import HeadMesh, build_head
from gen3dface.synth.head_params import HeadParams, sample_head_params
from gen3dface.core.images import save_png, to_uint8
from gen3dface.synth.shading import STYLES
from gen3dface.synth.render import render
from gen3dface.core.storage import atomic_dir, atomic_write_text, exclusive_lock
from gen3dface.synth.dataset import read_meta

JANUS_AZIMUTH = 135.0  # |azimuth| from which a Janus identity shows a face on the back
DRIFT_AZIMUTH = 15.0  # azimuth above which a drifting identity turns into another person
DEFECTS = ("janus", "drift")


@dataclass(frozen=True)
class SynthConfig:
    """What ``gen3dface synth`` makes.

    Attributes:
        views: views per identity: 48 = the paper's grid (16 azimuths x elevations -40, 0, 40); any
            multiple of 3 gives ``views / 3`` azimuths x those elevations; other counts a ring at elevation 0.
        res: image side in pixels.
        style: one of :data:`gen3dface.synth.shading.STYLES`.
        defect_rate: probability that an identity carries a defect (half Janus, half drift).
        seed: base seed of the whole dataset.
        ssaa: supersampling factor of the renderer (2 = anti-aliased).
        mesh_resolution: :func:`gen3dface.synth.heads.build_head` resolution.
        varied_appearance: fraction of identities whose skin, hair and clothing are repainted with random
            patterns (:func:`gen3dface.synth.appearance.vary_appearance`; training data a model cannot
            memorise the colours of).
        symmetric_appearance: fraction of the repainted identities whose painting is mirror-symmetric about
            the face's plane, as real faces' colours nearly are (``vary_appearance(symmetric=True)``).
        squircle: every head's skull cross-section exponent (:class:`HeadParams`; 2.5 the shipped model's data,
            2 rounder).
        hair_side: the longitude (degrees from the front) from which every long-haired head's hair falls
            beside the face (:class:`HeadParams`; 56 the shipped model's data: the curtain then hides the cheek
            from views 67.5 degrees round, where a face is found on fewer heads).
        plain_back: repainted heads keep their patterns on the face's side only, and each part is one flat
            colour from the ears back (``vary_appearance(plain_back=True)``): patterned backs read as faces.
        decal_rate: the probability that a repainted head's face also gets patterns pasted over its eyes, brows
            or mouth (``vary_appearance(decal_rate=...)``; 0.6 the shipped model's data). Patterns over an eye
            cost face finds in the views 67.5 degrees round: of the first 48 heads the Janus filter keeps with
            ``squircle`` 1.6 and ``hair_side`` 90, 81 % / 83 % show a face there with decals, 83 % / 96 % without
            (README).
    """

    views: int = 48
    res: int = 128
    style: str = "photo"
    defect_rate: float = 0.0
    seed: int = 0
    ssaa: int = 2
    mesh_resolution: int = 96
    varied_appearance: float = 0.0
    symmetric_appearance: float = 0.0
    squircle: float = 2.5
    hair_side: float = 56.0
    plain_back: bool = False
    decal_rate: float = DECAL_RATE

    def __post_init__(self):
        if self.views < 1 or self.views > 512:
            raise InputError(f"--views must be between 1 and 512, got {self.views}")
        if self.res < 16 or self.res > 1024:
            raise InputError(f"--res must be between 16 and 1024 pixels, got {self.res}")
        if self.style not in STYLES:
            raise InputError(f"unknown style {self.style!r}; choose one of {', '.join(STYLES)}")
        if not 0.0 <= self.defect_rate <= 1.0:
            raise InputError(f"--defects is a rate in [0, 1], got {self.defect_rate}")
        if not 0.0 <= self.varied_appearance <= 1.0:
            raise InputError(f"varied_appearance is a rate in [0, 1], got {self.varied_appearance}")
        if not 0.0 <= self.symmetric_appearance <= 1.0:
            raise InputError(f"symmetric_appearance is a rate in [0, 1], got {self.symmetric_appearance}")
        if not 0.0 <= self.decal_rate <= 1.0:
            raise InputError(f"decal_rate is a rate in [0, 1], got {self.decal_rate}")
        if not 1.5 <= self.squircle <= 4.0:
            raise InputError(f"squircle must be between 1.5 and 4, got {self.squircle}")
        if not 30.0 <= self.hair_side <= 120.0:
            raise InputError(f"hair_side must be between 30 and 120 degrees, got {self.hair_side}")
        if self.ssaa not in (1, 2, 3, 4):
            raise InputError(f"ssaa must be 1..4, got {self.ssaa}")

    def cameras(self) -> Cameras:
        """The views' cameras ``(views,)``."""
        if self.views % 3 == 0:
            return synthesis_grid(n_azimuth=self.views // 3, image_size=self.res)
        return orbit_cameras(ring_azimuths(self.views), 0.0, image_size=self.res)


def parse_shard(spec: str | None) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``; ``None`` -> ``(0, 1)``."""
    if spec is None:
        return 0, 1
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise InputError(f"--shard must look like i/n (e.g. 0/4), got {spec!r}") from None
    if n < 1 or not 0 <= i < n:
        raise InputError(f"--shard {spec}: need 0 <= i < n")
    return i, n


def identity_seed(cfg: SynthConfig, index: int) -> int:
    return cfg.seed * 1_000_003 + index


def identity_defect(cfg: SynthConfig, index: int) -> str | None:
    """The defect identity ``index`` carries (deterministic per dataset seed and index), or ``None``."""
    rng = np.random.default_rng([cfg.seed, index, 7])
    if rng.random() >= cfg.defect_rate:
        return None
    return DEFECTS[int(rng.integers(len(DEFECTS)))]


def _drawn(cfg: SynthConfig, index: int, rate: float, stream: int) -> bool:
    """A draw at ``rate`` for identity ``index``, deterministic per dataset seed, index and ``stream``."""
    return rate > 0 and np.random.default_rng([cfg.seed, index, stream]).random() < rate


def identity_varied(cfg: SynthConfig, index: int) -> bool:
    """Whether identity ``index`` is repainted with random patterns (deterministic per dataset seed and index)."""
    return _drawn(cfg, index, cfg.varied_appearance, 13)


def identity_symmetric(cfg: SynthConfig, index: int) -> bool:
    """Whether repainted identity ``index`` is painted symmetrically (deterministic per dataset seed and index)."""
    return _drawn(cfg, index, cfg.symmetric_appearance, 17)


def turned(mesh: HeadMesh, degrees: float) -> HeadMesh:
    """The same head turned by ``degrees`` about +Y (a Janus head shows its face at the back)."""
    a = np.radians(degrees)
    R = torch.tensor(
        [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]], dtype=mesh.vertices.dtype
    )
    fields = {f.name: getattr(mesh, f.name) for f in dataclasses.fields(mesh)}
    fields["vertices"] = mesh.vertices @ R.T
    fields["normals"] = mesh.normals @ R.T
    return type(mesh)(**fields)


@dataclass
class IdentityHeads:
    """What identity ``index`` of a :class:`SynthConfig` is drawn from (:func:`identity_heads`).

    Attributes:
        mesh: its head; other: the head its defect views show (``None`` without a defect);
        affected: ``(views,)`` bool, the config's views the defect replaces; params, varied, symmetric,
        defect: as in its ``meta.json``.
    """

    index: int
    seed: int
    params: HeadParams
    mesh: HeadMesh
    other: HeadMesh | None
    affected: torch.Tensor
    defect: str | None
    varied: bool
    symmetric: bool


def identity_heads(cfg: SynthConfig, index: int) -> IdentityHeads:
    """Build identity ``index``'s head (and its defect's head): the CPU half of rendering an identity."""
    seed = identity_seed(cfg, index)
    params = replace(sample_head_params(seed, cfg.style), squircle=cfg.squircle, hair_side=cfg.hair_side)
    mesh = build_head(params, cfg.mesh_resolution)
    varied = identity_varied(cfg, index)
    symmetric = varied and identity_symmetric(cfg, index)
    if varied:
        mesh = vary_appearance(mesh, seed, symmetric, cfg.plain_back, cfg.decal_rate)
    defect = identity_defect(cfg, index)
    az = cfg.cameras().azimuth_deg
    affected = torch.zeros(len(az), dtype=torch.bool)
    other = None
    if defect == "janus":
        affected = az.abs() >= JANUS_AZIMUTH
        other = turned(mesh, 180.0)
    elif defect == "drift":
        affected = az > DRIFT_AZIMUTH
        other_params = replace(
            sample_head_params(seed + 500_000_009, cfg.style), squircle=cfg.squircle, hair_side=cfg.hair_side
        )
        other = build_head(other_params, cfg.mesh_resolution)
        other = (
            vary_appearance(other, seed + 500_000_009, symmetric, cfg.plain_back, cfg.decal_rate)
            if varied
            else other
        )
    return IdentityHeads(index, seed, params, mesh, other, affected, defect, varied, symmetric)


def render_heads(
    cfg: SynthConfig, heads: list[IdentityHeads], views, device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render several identities in one pass of the rasteriser (:func:`gen3dface.synth.render.render` of their
    meshes).

    Args:
        heads: ``B`` identities from :func:`identity_heads`.
        views: ``(V,)`` indices into ``cfg.cameras()`` shared by all, or ``(B, V)`` per identity.
    Returns:
        ``rgb (B, V, 3, H, W)`` in [-1, 1] and ``alpha (B, V, 1, H, W)`` on ``device`` (default the CPU),
        defect views included; the same pixels as :func:`render_identity` of each.
    """
    sel = torch.as_tensor(views, dtype=torch.long)
    sel = sel.expand(len(heads), -1) if sel.dim() == 1 else sel
    cams = cfg.cameras()[sel]
    out = render([h.mesh for h in heads], cams, ssaa=cfg.ssaa, device=device)
    rgb, alpha = out["rgb"], out["alpha"]
    hit = torch.stack([h.affected[s] for h, s in zip(heads, sel)]).to(rgb.device)
    bad = [b for b, h in enumerate(heads) if h.other is not None and bool(hit[b].any())]
    # pixels are per view, so rendering all V views of a defect head and keeping the hit ones is exact
    if bad:
        sub = render([heads[b].other for b in bad], cams[bad], ssaa=cfg.ssaa, device=device)
        for j, b in enumerate(bad):
            rgb[b, hit[b]], alpha[b, hit[b]] = sub["rgb"][j, hit[b]], sub["alpha"][j, hit[b]]
    return rgb, alpha


def render_identity(cfg: SynthConfig, index: int, views=None, device=None) -> dict:
    """Render identity ``index``: ``rgb (V, H, W, 3)`` uint8, ``mask (V, H, W)`` uint8, cameras, mesh, meta.

    ``views`` (indices into ``cfg.cameras()``) renders only those views, defects included, e.g. to rebuild a
    training set on a GPU from seeds; ``device`` is where to render (default: the CPU). Many identities at
    once: :func:`identity_heads` and :func:`render_heads`.
    """
    heads = identity_heads(cfg, index)
    all_cams = cfg.cameras()
    sel = torch.arange(len(all_cams)) if views is None else torch.as_tensor(list(views), dtype=torch.long)
    rgb, alpha = (x[0] for x in render_heads(cfg, [heads], sel, device=device))
    meta = {
        "index": index,
        "seed": heads.seed,
        "style": cfg.style,
        "res": cfg.res,
        "views": len(all_cams),
        "defect": heads.defect,
        "varied_appearance": heads.varied,
        "symmetric_appearance": heads.symmetric,
        "defect_views": [int(i) for i in torch.nonzero(heads.affected).flatten()],
        "azimuth_deg": [round(float(a), 4) for a in all_cams.azimuth_deg],
        "elevation_deg": [round(float(e), 4) for e in all_cams.elevation_deg],
        "params": {k: v for k, v in dataclasses.asdict(heads.params).items()},
    }
    cams, mesh = all_cams[sel], heads.mesh
    if device is not None and torch.device(device).type != "cpu":
        return {"rgb_tensor": rgb, "alpha_tensor": alpha, "cameras": cams, "mesh": mesh, "meta": meta}
    return {
        "rgb": to_uint8(rgb),
        "mask": (alpha[:, 0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy(),
        "cameras": cams,
        "mesh": mesh,
        "meta": meta,
    }


def write_identity(root: Path, item: dict) -> Path:
    """Write one identity's folder atomically (staging folder renamed into place)."""

    def write(stage: Path) -> None:
        for k, (img, m) in enumerate(zip(item["rgb"], item["mask"])):
            save_png(stage / f"view_{k:02d}.png", img)
            save_png(stage / f"mask_{k:02d}.png", m)
        item["cameras"].save(stage / "cameras.json")
        if item.get("mesh") is not None:
            export_mesh(item["mesh"], stage / "mesh.ply")
        (stage / "meta.json").write_text(json.dumps(item["meta"], indent=1))

    return atomic_dir(root / f"id_{item['meta']['index']:06d}", write)


def export_mesh(mesh, path: Path) -> None:
    """A coloured mesh file (format by extension: .ply, .obj, .glb) via trimesh."""
    import trimesh

    colors = (mesh.colors.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    tm = trimesh.Trimesh(mesh.vertices.numpy(), mesh.faces.numpy(), vertex_colors=colors, process=False)
    tm.export(path)


def build_manifest(root: str | Path) -> dict:
    """Scan ``root`` for complete identity folders and write ``manifest.json`` atomically."""
    root = Path(root)
    ids = []
    for d in sorted(root.glob("id_[0-9]*")):
        if not (d / "meta.json").is_file():
            continue
        meta = read_meta(d)
        ids.append(
            {
                "folder": d.name,
                "index": meta["index"],
                "seed": meta["seed"],
                "style": meta["style"],
                "views": meta["views"],
                "res": meta["res"],
                "defect": meta["defect"],
                "defect_views": meta["defect_views"],
            }
        )
    manifest = {"format": "gen3dface-synth-1", "identities": ids, "count": len(ids)}
    atomic_write_text(root / "manifest.json", json.dumps(manifest, indent=1))
    return manifest


def panohead_maker(G, truncation: float = 0.7):
    """An identity maker for :func:`synthesize` that renders PanoHead identities (see :mod:`gen3dface.synth.panohead`)
    from the same grid, at PanoHead's radius and focal; no ground-truth mesh, no injected defects."""
    from gen3dface.synth.panohead import panohead_grid, render_panohead_identity

    def make(cfg: SynthConfig, index: int) -> dict:
        seed = identity_seed(cfg, index)
        cams = panohead_grid(cfg.res, n_azimuth=cfg.views // 3) if cfg.views % 3 == 0 else None
        if cams is None:
            raise InputError("PanoHead synthesis needs --views divisible by 3 (azimuths x 3 elevations)")
        item = render_panohead_identity(G, seed, cams, truncation)
        item["mesh"] = None
        item["meta"] = {
            "index": index,
            "seed": seed,
            "style": "panohead",
            "res": cfg.res,
            "views": len(cams),
            "defect": None,
            "defect_views": [],
            "generator": "panohead",
            "truncation": truncation,
            "azimuth_deg": [round(float(a), 4) for a in cams.azimuth_deg],
            "elevation_deg": [round(float(e), 4) for e in cams.elevation_deg],
        }
        return item

    make.name = "panohead"
    return make


def _same_settings(recorded: str, new: dict) -> bool:
    """Whether a dataset folder's recorded settings (``synth_config.json``'s text) are ``new``'s; a setting added
    to :class:`SynthConfig` since the folder was begun counts as its default there."""
    try:
        old = json.loads(recorded)
    except ValueError:
        return False
    defaults = {f.name: f.default for f in dataclasses.fields(SynthConfig)}
    return (
        isinstance(old, dict)
        and old.keys() <= new.keys()
        and all(old.get(k, defaults.get(k, object())) == v for k, v in new.items())
    )


def synthesize(
    root: str | Path,
    n_identities: int,
    cfg: SynthConfig,
    shard: str | None = None,
    progress: bool = True,
    make_item=None,
) -> dict:
    """Make (or finish) a dataset of ``n_identities`` identities in ``root``; this process does shard ``i/n``.

    Identities whose folder exists are skipped (resume); stale staging folders are removed. ``make_item``
    renders one identity (default: procedural heads, :func:`render_identity`; :func:`panohead_maker` for
    PanoHead). Returns counts.
    """
    make_item = make_item or render_identity
    if n_identities < 1:
        raise InputError(f"--identities must be at least 1, got {n_identities}")
    i, n = parse_shard(shard)
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise InputError(f"{root} exists and is not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the dataset folder {root}: {e.strerror or e}") from None
    config_file = root / "synth_config.json"
    settings = {
        "identities": n_identities,
        "generator": getattr(make_item, "name", "procedural"),
        **dataclasses.asdict(cfg),
    }
    cfg_json = json.dumps(settings, indent=1, sort_keys=True)
    if config_file.exists() and not _same_settings(config_file.read_text(), settings):
        raise InputError(f"{root} holds a dataset made with other settings ({config_file}); use a new folder")
    if not config_file.exists():
        atomic_write_text(config_file, cfg_json)
    # one process per shard: a second run of the same shard is refused (its stale-folder sweep would remove the
    # first one's staging folders)
    with exclusive_lock(root / f".synth.shard-{i}-of-{n}.lock", f"shard {i}/{n} of {root}"):
        for stale in root.glob(".id_[0-9][0-9][0-9][0-9][0-9][0-9].part"):
            if int(stale.name[4:10]) % n == i:
                shutil.rmtree(stale, ignore_errors=True)
        mine = [k for k in range(n_identities) if k % n == i]
        todo = [k for k in mine if not (root / f"id_{k:06d}").is_dir()]
        for k in progress_bar(todo, desc=f"synth shard {i}/{n}", disable=not progress, unit="id"):
            write_identity(root, make_item(cfg, k))
    manifest = build_manifest(root)
    return {"made": len(todo), "skipped": len(mine) - len(todo), "total": manifest["count"]}
