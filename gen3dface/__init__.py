"""gen3dface: a notebook-first reproduction of Gen3D-Face (single image, any face, 3D face generation).

Modules: ``cameras`` (the one camera convention), ``faces`` (detection, landmarks, crop, embeddings),
``images`` (safe photo loading), ``profiles`` (smoke / small / paper sizes), ``cli`` (the ``gen3dface``
command). Heavy dependencies are imported by the modules that need them, not here.
"""

__version__ = "0.1.0"
