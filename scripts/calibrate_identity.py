"""Calibrate the identity embedder on real faces that the installed packages ship.

Prints, for the ArcFace-class model (and dlib beside it), the cosine similarity of face embeddings between
different people (every pair of photos, then every pair of their variants) and within one person (a photo
against its mirror image, a 60 % copy and an off-centre 85 % crop): mean, 95th percentile, max and min, and
how many pairs reach the match threshold. The figures documented in gen3dface/faces/arcface.py come from here.

    python scripts/calibrate_identity.py [--backend auto|arcface|dlib ...] [--pairs]
"""

from __future__ import annotations

import argparse

from gen3dface.evaluation.identity import EMBED_BACKENDS
from gen3dface.evaluation.identity_calibration import calibration_table, identity_calibration
from gen3dface.faces.arcface import MATCH_THRESHOLD


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", nargs="+", default=["arcface", "dlib"], choices=EMBED_BACKENDS)
    ap.add_argument("--pairs", action="store_true", help="also list every different-people pair")
    args = ap.parse_args()
    for backend in args.backend:
        r = identity_calibration(backend)
        print(f"\n## {r['note']}\n")
        print(f"{len(r['people'])} people: {', '.join(r['people'])}")
        if r["missing"]:
            print(f"no face found in: {', '.join(r['missing'])}")
        threshold = MATCH_THRESHOLD if r["backend"] == "arcface" else None
        if threshold is not None:
            print(f"same-person threshold: cosine >= {threshold}")
        print()
        print(calibration_table(r, threshold))
        if args.pairs:
            for (a, b), c in sorted(r["impostor"].items(), key=lambda t: -t[1]):
                print(f"  {a:>14} vs {b:<14} {c:+.3f}")


if __name__ == "__main__":
    main()
