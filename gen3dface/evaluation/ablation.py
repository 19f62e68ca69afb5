"""The paper's ablations (Sec. 4.2) at small scale: joint vs sequential generation, estimated vs ground-truth
mesh prior, with vs without data pruning.

Every arm is the ``small`` model trained from scratch for the same number of steps on the same procedural
dataset, one design choice changed (:data:`ARMS`). The dataset carries PanoHead-like defects (30 % of its
identities: Janus back views or identity drift, :mod:`gen3dface.synth.synthesis`); the pruned arms train on the
identities :func:`gen3dface.synth.pruning.prune` keeps, the ``no_pruning`` arm on all of them.

Each trained arm generates 16 views for two evaluation sets (:func:`build_eval_sets`):

* ``indomain``: held-out procedural identities (photo style) with their ground-truth ring views; the mesh is
  the one the arm was trained with (estimated from the input, or ground truth for ``gt_mesh``);
* ``ood``: procedural identities in the three styles no arm saw in training (toon, clay, sketch), with the
  mesh estimated from the input (there is no other at test time);
* ``swapped``: the in-domain inputs, each given another identity's mesh (the paper's Fig. 5 study: a model
  that leans on the mesh prior follows the mesh, not the input).

Generation runs on a GPU (``scripts/run_ablation.py``); :func:`arm_metrics` scores the views on any machine
with :func:`gen3dface.evaluation.outputs.evaluate_outputs`, and :func:`ablation_markdown` lays the results out as the
paper's Tables 3 and 4, with the paper's numbers beside them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from gen3dface.core.errors import InputError
from gen3dface.evaluation.outputs import OUT_OF_DOMAIN
from gen3dface.evaluation.tables import PAPER_TABLES

#: One design choice per arm; ``joint`` is the paper's model (joint attention, estimated mesh, pruned data).
ARMS: dict[str, dict] = {
    "joint": {"attention": "joint", "meshes": "estimated", "pruned": True},
    "sequential": {"attention": "sequential", "meshes": "estimated", "pruned": True},
    "no_pruning": {"attention": "joint", "meshes": "estimated", "pruned": False},
    "gt_mesh": {"attention": "joint", "meshes": "ground_truth", "pruned": True},
}
EVAL_SETS = ("indomain", "ood", "swapped")
MESH_ARMS = ("joint", "gt_mesh")
OOD_STYLES = ("toon", "clay", "sketch")

#: The paper's ablation rows of :data:`gen3dface.evaluation.tables.PAPER_TABLES` (FID, output-to-output ID, CLIP,
#: input-to-output ID) as this report labels them: heading -> (table, {label: the paper's row}).
PAPER_ROWS = {
    "Table 3: data pruning": (
        "table3",
        {"w/o data pruning": "w/o Data Pruning", "w/ data pruning": "w/ Data Pruning"},
    ),
    "Table 4: multi-view joint generation": ("table4", {"no (sequential)": "No", "yes (joint)": "Yes"}),
}
#: Where the results measured on the lent H100 ship (``scripts/score_ablation.py -o``).
SHIPPED = Path(__file__).resolve().parents[2] / "data" / "ablation"
PROTOCOLS = ("finetune", "scratch")


def ablation_report(data: dict) -> str:
    """``ablation.md`` of an ``ablation.json`` (``{"runs": ..., protocol: {arm: arm_metrics(...)}}``): the
    dataset, then per training protocol its note and :func:`ablation_markdown`."""
    runs = data.get("runs", {})
    out = ["# Small-scale ablations\n\n" + (f"{runs['dataset']}\n\n" if "dataset" in runs else "")]
    for p in PROTOCOLS:
        if p in data:
            note = runs.get(p, {}).get("note", "")
            out.append(f"## {p}\n\n" + (f"{note}\n\n" if note else "") + ablation_markdown(data[p]) + "\n")
    return "".join(out)


def shipped_results() -> dict:
    """The shipped ablation results: ``{"runs": training records, "finetune": {arm: arm_metrics(...)},
    "scratch": {arm: arm_metrics(...)}}`` (the two training protocols, see notebook 06)."""
    f = SHIPPED / "ablation.json"
    if not f.is_file():
        raise InputError(
            f"{f} is missing: run scripts/prepare_ablation.py, run_ablation.py and score_ablation.py"
        )
    return json.loads(f.read_text())


def build_eval_sets(heldout_est, heldout_gt, ood: list, image_size: int = 128, n_views: int = 16) -> dict:
    """The evaluation inputs of every arm, as arrays (one input per identity: prepare with ``per_identity=1``).

    Args:
        heldout_est, heldout_gt: :class:`gen3dface.training.data.PreparedInputs` of the same held-out identities
            and views, with estimated and ground-truth meshes; ood: those of the out-of-domain identities
            (one per style).
    Returns:
        ``{"faces": (T, 3), "indomain_inputs": (B, S, S, 3) uint8, "indomain_gt": (B, N, S, S, 3) uint8,
        "indomain_vertices": (B, P, 3), "indomain_vertices_gt": (B, P, 3), "ood_inputs", "ood_vertices",
        "ood_style": (B',) str}``.
    """
    from gen3dface.training.data import load_train_data

    for p in (heldout_est, heldout_gt, *ood):
        if len(np.unique(p.identity)) != len(p.identity):
            raise InputError("evaluation sets take one input per identity (prepare them with per_identity=1)")
    if not (
        np.array_equal(heldout_est.identity, heldout_gt.identity)
        and np.array_equal(heldout_est.view, heldout_gt.view)
    ):
        raise InputError(
            "the estimated and ground-truth held-out inputs must be the same identities and views"
        )
    hwc = lambda t: t.movedim(-3, -1).numpy()  # noqa: E731 uint8 (..., 3, S, S) -> (..., S, S, 3)
    d_in = load_train_data(heldout_est, image_size, n_views, progress=False)
    d_ood = [load_train_data(p, image_size, n_views, progress=False) for p in ood]
    return {
        "faces": heldout_est.faces,
        "indomain_inputs": hwc(d_in.inputs),
        "indomain_gt": hwc(d_in.targets[d_in.input_identity]),
        "indomain_vertices": heldout_est.vertices,
        "indomain_vertices_gt": heldout_gt.vertices,
        "ood_inputs": np.concatenate([hwc(d.inputs) for d in d_ood]),
        "ood_vertices": np.concatenate([p.vertices for p in ood]),
        "ood_style": np.concatenate([[p.source["synth"]["style"]] * len(p.identity) for p in ood]),
    }


def make_ablation_data(
    out: str | Path,
    identities: int = 320,
    defects: float = 0.3,
    seed: int = 5,
    heldout: int = 24,
    ood_per_style: int = 10,
    per_identity: int = 4,
    image_size: int = 128,
    n_views: int = 16,
    log=print,
) -> Path:
    """Everything the arms train and are tested on, in ``out`` (CPU work; each step skipped when its file is
    there, so a killed run resumes):

    * ``ds/``: ``identities`` procedural identities (48-view grid, 128 px, ``seed``) of which ``defects`` carry
      PanoHead-like defects; ``kept.json``: those :func:`gen3dface.synth.pruning.prune` keeps (the top 85 %);
    * ``prep_estimated.npz`` / ``prep_ground_truth.npz``: ``per_identity`` training inputs per identity with
      meshes estimated from the input, or snapped to the true surface
      (:func:`gen3dface.training.data.build_training_inputs`);
    * ``eval_sets.npz``: ``heldout`` photo-style identities of seed 2 and ``ood_per_style`` identities of seed 7
      in each unseen style (:func:`build_eval_sets`), at the model's ``image_size`` and ``n_views``.
    """
    import math
    import time

    from gen3dface.synth.pruning import kept_identities, prune
    from gen3dface.core.storage import atomic_path, atomic_write_text
    from gen3dface.synth.synthesis import SynthConfig, synthesize
    from gen3dface.training.data import build_training_inputs, procedural_source

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ids = list(range(identities))
    cfg = SynthConfig(views=48, res=128, seed=seed, ssaa=2, defect_rate=defects)

    def step(path: Path, what: str, make) -> None:
        if path.exists():
            return
        t = time.perf_counter()
        make()
        log(f"{path.name}: {what} in {time.perf_counter() - t:.0f} s")

    def pruned() -> None:
        synthesize(out / "ds", identities, cfg, progress=False)
        r = prune(out / "ds", top_k=math.ceil(0.85 * identities), janus_backend="face", progress=False)
        log(pruning_summary(r))
        atomic_write_text(out / "kept.json", json.dumps(kept_identities(out / "ds")))

    step(out / "kept.json", "synthesised and pruned", pruned)
    for meshes in ("estimated", "ground_truth"):
        f = out / f"prep_{meshes}.npz"
        step(
            f,
            f"{meshes} meshes",
            lambda f=f, meshes=meshes: build_training_inputs(
                procedural_source(seed, defect_rate=defects),
                ids,
                per_identity=per_identity,
                meshes=meshes,
                progress=False,
            ).save(f),
        )

    def eval_sets() -> None:
        held = [
            build_training_inputs(
                procedural_source(2), list(range(heldout)), per_identity=1, meshes=m, progress=False
            )
            for m in ("estimated", "ground_truth")
        ]
        ood = [
            build_training_inputs(
                procedural_source(7, st), list(range(ood_per_style)), per_identity=1, progress=False
            )
            for st in OOD_STYLES
        ]
        sets = build_eval_sets(*held, ood, image_size=image_size, n_views=n_views)
        with atomic_path(out / "eval_sets.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **sets)

    step(out / "eval_sets.npz", "evaluation sets", eval_sets)
    return out


def load_eval_sets(data: str | Path, indomain: int | None = None) -> dict:
    """``eval_sets.npz`` of :func:`make_ablation_data`, keeping the first ``indomain`` held-out identities."""
    f = Path(data) / "eval_sets.npz"
    if not f.is_file():
        raise InputError(
            f"{f} is missing: prepare the data first (gen3dface.evaluation.ablation.make_ablation_data)"
        )
    sets = dict(np.load(f))
    return {k: v[:indomain] if k.startswith("indomain") else v for k, v in sets.items()}


def train_arm(
    arm: str,
    data: str | Path,
    run_dir: str | Path,
    steps: int = 600,
    batch: int = 16,
    init: str | Path | None = None,
    lr: float | None = None,
    profile: str = "small",
    device: str | None = None,
    max_seconds: float | None = None,
    log=print,
):
    """Train one arm on :func:`make_ablation_data`'s ``data`` (resuming from ``run_dir`` when it holds a checkpoint).

    ``init``: start from these weights (e.g. the shipped model: the fine-tuned protocol), else the ``profile``
    model from scratch; ``lr``: one learning rate for every module (default 2e-4 backbone / 5e-4 new modules).
    Returns ``(model on device, in eval mode; record: settings, sizes, seconds, loss log)``.
    """
    import time

    from gen3dface.generation.model import Gen3DFaceModel
    from gen3dface.training.loop import TrainConfig, train
    from gen3dface.training.data import PreparedInputs, load_train_data

    if arm not in ARMS:
        raise InputError(f"unknown arm {arm!r}; choose one of {', '.join(ARMS)}")
    spec = ARMS[arm]
    data = Path(data)
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    prep = PreparedInputs.load(data / f"prep_{spec['meshes']}.npz")
    if spec["pruned"]:
        prep = prep.subset(json.loads((data / "kept.json").read_text()))
    torch.manual_seed(0)
    if init is not None:
        from gen3dface.generation.pipeline import load_model

        model = load_model(init, torch_dtype=torch.float32, attention=spec["attention"])
    else:
        model = Gen3DFaceModel.from_profile(profile, attention=spec["attention"])
    t = time.perf_counter()
    td = load_train_data(prep, model.image_size, model.config.n_views, device=dev, progress=False)
    t_data = time.perf_counter() - t
    log(f"[{arm}] {len(td.identities)} identities, {len(td)} inputs, rendered in {t_data:.0f} s")
    cfg = TrainConfig(
        steps=steps,
        batch_size=batch,
        lr_backbone=lr or 2e-4,
        lr_new=lr or 5e-4,
        mixed_precision="bf16" if torch.device(dev).type == "cuda" else "no",
        checkpoint_every=steps,
        log_every=max(1, min(25, steps // 4)),
    )
    t = time.perf_counter()
    losses = train(model, td, run_dir, cfg, max_seconds=max_seconds, progress=False)
    t_train = time.perf_counter() - t
    done = losses[-1]["step"] if losses else 0
    log(f"[{arm}] trained {done} steps in {t_train:.0f} s")
    record = {
        "arm": arm,
        **spec,
        "init": str(init) if init else None,
        "lr": cfg.lr_backbone,
        "identities": len(td.identities),
        "inputs": len(td),
        "steps": done,
        "batch": batch,
        "seconds": {"data": round(t_data, 1), "train": round(t_train, 1)},
        "device": torch.cuda.get_device_name() if torch.device(dev).type == "cuda" else "cpu",
        "losses": losses,
    }
    return model.to(dev).eval(), record


def generate_set(
    model,
    inputs: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    sampler: str = "joint",
    steps: int = 50,
    guidance: float = 2.0,
    seed: int = 0,
    batch: int = 8,
) -> np.ndarray:
    """Views ``(B, N, S, S, 3)`` uint8 of one evaluation set: inputs ``(B, S, S, 3)`` uint8 with meshes
    ``vertices (B, P, 3)`` sharing ``faces (T, 3)``, generated ``batch`` inputs at a time by
    :meth:`gen3dface.generation.pipeline.Gen3DFacePipeline.generate_views` (its seeding: every input starts from
    the noise of ``seed``), in bfloat16 autocast on a GPU."""
    from gen3dface.generation.pipeline import Gen3DFacePipeline

    pipe = Gen3DFacePipeline.from_model(model)
    S, N = model.image_size, model.config.n_views
    out = [np.zeros((0, N, S, S, 3), np.uint8)]
    for i in range(0, len(inputs), batch):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=pipe.device.type == "cuda"):
            out.append(
                pipe.generate_views(
                    inputs[i : i + batch],
                    vertices[i : i + batch],
                    faces,
                    num_views=N,
                    steps=steps,
                    guidance=guidance,
                    sampler=sampler,
                    seed=seed,
                )
            )
    return np.concatenate(out)


def arm_sets(arm: str) -> tuple[str, ...]:
    """The evaluation sets an arm is scored on: ``swapped`` only for the mesh-prior arms."""
    return EVAL_SETS if arm in MESH_ARMS else ("indomain", "ood")


def arm_views(model, arm: str, sets: dict, **kw) -> dict[str, np.ndarray]:
    """The generated views of each of :func:`arm_sets` for one trained arm (see the module docstring)."""
    spec = ARMS[arm]
    sampler = "sequential" if spec["attention"] == "sequential" else "joint"
    own = sets["indomain_vertices_gt"] if spec["meshes"] == "ground_truth" else sets["indomain_vertices"]
    out = {
        "indomain": generate_set(model, sets["indomain_inputs"], own, sets["faces"], sampler, **kw),
        "ood": generate_set(model, sets["ood_inputs"], sets["ood_vertices"], sets["faces"], sampler, **kw),
    }
    if "swapped" in arm_sets(arm):
        out["swapped"] = generate_set(
            model, sets["indomain_inputs"], np.roll(own, 1, axis=0), sets["faces"], sampler, **kw
        )
    return out


def save_mosaic(stem: str | Path, views: np.ndarray, max_rows: int = 24) -> list[Path]:
    """``(B, N, S, S, 3)`` uint8 as lossless WebP mosaics (rows of N views): ``STEM.webp``, or
    ``STEM.part0.webp``, ``STEM.part1.webp``, ... of at most ``max_rows`` inputs each (files must stay small
    to travel back from a lent GPU). Returns the files written."""
    from PIL import Image

    stem = Path(stem)
    B, N, S = views.shape[:3]
    parts = [views[i : i + max_rows] for i in range(0, B, max_rows)]
    names = (
        [stem.with_name(stem.name + ".webp")]
        if len(parts) == 1
        else [stem.with_name(f"{stem.name}.part{k}.webp") for k in range(len(parts))]
    )
    for name, part in zip(names, parts):
        Image.fromarray(part.transpose(0, 2, 1, 3, 4).reshape(-1, N * S, 3)).save(
            name, "WEBP", lossless=True, quality=100, method=4
        )
    return names


def load_mosaic(stem: str | Path, n_views: int) -> np.ndarray:
    """The inverse of :func:`save_mosaic`: ``(B, N, S, S, 3)``."""
    from PIL import Image

    stem = Path(stem)
    files = [stem.with_name(stem.name + ".webp")]
    if not files[0].is_file():
        files = sorted(stem.parent.glob(f"{stem.name}.part*.webp"), key=lambda p: int(p.suffixes[-2][5:]))
    if not files:
        raise InputError(f"no mosaic {stem}.webp (or its parts)")
    out = []
    for f in files:
        m = np.asarray(Image.open(f).convert("RGB"))
        S = m.shape[1] // n_views
        out.append(m.reshape(m.shape[0] // S, S, n_views, S, 3).transpose(0, 2, 1, 3, 4))
    return np.concatenate(out)


def arm_metrics(views: dict[str, np.ndarray], sets: dict, progress: bool = False) -> dict:
    """Every metric of each evaluation set of one arm (:func:`gen3dface.evaluation.outputs.evaluate_outputs`);
    ``swapped`` is scored against the ground truth of the *input's* identity."""
    from gen3dface.evaluation.outputs import evaluate_outputs

    gt = sets["indomain_gt"]
    out = {
        "indomain": evaluate_outputs(sets["indomain_inputs"], views["indomain"], gt, progress=progress),
        "ood": evaluate_outputs(sets["ood_inputs"], views["ood"], None, progress=progress),
    }
    if "swapped" in views:
        out["swapped"] = evaluate_outputs(sets["indomain_inputs"], views["swapped"], gt, progress=progress)
    return out


def metric_value(res: dict, key: str) -> float | None:
    """The value of metric ``key`` in an :func:`gen3dface.evaluation.outputs.evaluate_outputs` result, or ``None``."""
    m = res.get("metrics", res).get(key)
    return None if not m or m.get("value") is None else float(m["value"])


def ablation_markdown(results: dict[str, dict]) -> str:
    """Tables in the paper's layout (FID, output-to-output ID, CLIP, input-to-output ID; out-of-domain set),
    the in-domain figures, the mesh-prior study and the paper's numbers. ``results``: arm -> :func:`arm_metrics`
    (plus an optional ``"steps"`` entry)."""
    fmt = lambda v: "—" if v is None else f"{v:.4f}"  # noqa: E731

    def row(name, arm, split="ood", cols=OUT_OF_DOMAIN):
        r = results.get(arm, {}).get(split, {})
        return f"| {name} | " + " | ".join(fmt(metric_value(r, c)) for c in cols) + " |"

    head = "| arm | FID ↓ | output-to-output ID ↑ | CLIP ↑ | input-to-output ID ↑ |\n| --- | --- | --- | --- | --- |"
    out = [
        "**Data pruning** (Table 3; out-of-domain set)",
        head,
        row("w/o data pruning", "no_pruning"),
        row("w/ data pruning", "joint"),
        "",
        "**Multi-view joint generation** (Table 4; out-of-domain set)",
        head,
        row("no (sequential)", "sequential"),
        row("yes (joint)", "joint"),
        "",
    ]
    ind = ("psnr", "ssim", "fid", "reid_match", "reid_dist")
    out += [
        "**In-domain set** (held-out identities, ground-truth views)",
        "| arm | PSNR ↑ | SSIM ↑ | FID ↓ | Re-ID match ↑ | Re-ID distance ↓ |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    out += [row(a, a, "indomain", ind) for a in ARMS if a in results] + [""]
    out += [
        "**Mesh prior** (in-domain inputs; `swapped` = each input given another identity's mesh)",
        "| arm | PSNR own mesh | PSNR swapped mesh | SSIM own mesh | SSIM swapped mesh |",
        "| --- | --- | --- | --- | --- |",
    ]
    for a in MESH_ARMS:
        if a in results and "swapped" in results[a]:
            r = results[a]
            cells = [
                fmt(metric_value(r[split], k)) for k in ("psnr", "ssim") for split in ("indomain", "swapped")
            ]
            out.append(f"| {a} | " + " | ".join(cells) + " |")
    out += ["", "**The paper's numbers** (its full-scale model, real + PanoHead data)", head]
    for heading, (table, labels) in PAPER_ROWS.items():
        rows = PAPER_TABLES[table]["rows"]
        out += [f"| *{heading}* | | | | |"] + [
            f"| {k} | " + " | ".join(f"{x:.4f}" for x in rows[row]) + " |" for k, row in labels.items()
        ]
    return "\n".join(out) + "\n"


#: The columns of :func:`arm_table`: metric -> (heading, decimals shown). Display only: the scores themselves
#: (``arm_metrics``, the JSON files) keep every digit.
ARM_TABLE_COLUMNS: dict[str, tuple[str, int]] = {
    "fid": ("FID ↓", 1),
    "id_consistency_output": ("output-to-output ID ↑", 3),
    "id_consistency_input": ("input-to-output ID ↑", 3),
    "psnr": ("PSNR (dB) ↑", 2),
    "ssim": ("SSIM ↑", 3),
    "reid_match": ("Re-ID match ↑", 2),
    "reid_dist": ("Re-ID distance ↓", 3),
}


def arm_table(metrics: dict) -> str:
    """One arm's :func:`arm_metrics` as a markdown table: a row per evaluation set, the metrics it has, each
    rounded as :data:`ARM_TABLE_COLUMNS` says (FID to 0.1, PSNR to 0.01 dB, the others to 2 or 3 decimals;
    ``—`` where a set has no such metric)."""
    fmt = lambda v, d: "—" if v is None else f"{v:.{d}f}"  # noqa: E731
    head = (
        "| set | "
        + " | ".join(label for label, _ in ARM_TABLE_COLUMNS.values())
        + " |\n|"
        + " --- |" * (len(ARM_TABLE_COLUMNS) + 1)
    )
    rows = [
        f"| {split} | "
        + " | ".join(fmt(metric_value(r, c), d) for c, (_, d) in ARM_TABLE_COLUMNS.items())
        + " |"
        for split, r in metrics.items()
    ]
    return "\n".join([head, *rows]) + "\n"


def pruning_summary(result: dict) -> str:
    """One readable line of :func:`gen3dface.synth.pruning.prune`'s result: what each filter removed, its
    precision and recall against the injected defects (2 decimals, ``n/a`` where undefined), and how many
    identities the identity filter keeps. Display only: ``pruning.json`` keeps every digit."""

    def rate(x) -> str:
        return "n/a" if x is None or x != x else f"{x:.2f}"

    def count(k: int, one: str, many: str) -> str:
        return f"{k} {one if k == 1 else many}"

    j, i = result["janus_filter"], result["identity_filter"]
    n = len(result.get("identities", ())) or "?"
    return (
        f"pruning: the Janus filter rejected {count(j['flagged'], 'back view', 'back views')} (precision "
        f"{rate(j['precision'])}, recall {rate(j['recall'])} of the {j['actual']} Janus views); the identity "
        f"filter removed {count(i['flagged'], 'identity', 'identities')} (precision {rate(i['precision'])}, "
        f"recall {rate(i['recall'])} of the {i['actual']} drifting ones) and keeps {result['kept']} of {n}"
    )


def save_arm_run(
    out: str | Path, arm: str, views: dict[str, np.ndarray], metrics: dict, record: dict, tag: str = ""
) -> Path:
    """Write one arm's views (:func:`save_mosaic`), and its metrics and run record as ``OUT/TAG+ARM.json``
    (what :func:`collect_arm_runs` reads back). Returns the JSON file."""
    from gen3dface.core.storage import atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, v in views.items():
        save_mosaic(out / f"{tag}{arm}_{name}", v, max_rows=16 if name != "ood" else 15)
    f = out / f"{tag}{arm}.json"
    atomic_write_text(f, json.dumps({"record": record, "metrics": metrics}, indent=1))
    return f


def collect_arm_runs(folder: str | Path, tag: str = "", arms=None) -> tuple[dict, list[dict]]:
    """``({arm: metrics}, [records])`` of the runs :func:`save_arm_run` wrote into ``folder`` (e.g. by notebook
    08 under papermill, one arm each), in :data:`ARMS` order; arms without a run are left out."""
    results, records = {}, []
    for arm in arms or ARMS:
        f = Path(folder) / f"{tag}{arm}.json"
        if f.is_file():
            d = json.loads(f.read_text())
            results[arm] = d["metrics"]
            records.append(d["record"])
    return results, records
