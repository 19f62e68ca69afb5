"""Views -> 3D head: an SDF + colour fit to posed views, mesh export, turntables.

The paper hands its 16 generated views to NeuS2. Offline we fit the same kind of representation, an SDF
rendered by NeuS-style volume rendering, but store it in a dense voxel grid (values at grid nodes,
trilinearly interpolated, as in DVGO / Voxurf) so that it fits in seconds on a GPU and in a minute or two on
a laptop CPU. Along the data path:

- :mod:`~gen3dface.recon.config`: :class:`ReconConfig`, how a field is fitted (sizes per profile);
- :mod:`~gen3dface.recon.views`: :class:`ViewSet`, posed views and their masks, from arrays or a folder;
- :mod:`~gen3dface.recon.field`: :class:`SDFGrid`, the voxel-grid SDF + colour, and its visual-hull start;
- :mod:`~gen3dface.recon.rendering`: NeuS-style volume rendering of the field;
- :mod:`~gen3dface.recon.fit`: fitting, and :func:`reconstruct_views`, the whole step in one call;
- :mod:`~gen3dface.recon.export`: marching cubes to a coloured mesh, mesh and turntable files;
- :mod:`~gen3dface.recon.photo`: the input photo at its estimated camera, colouring the vertices it sees;
- :mod:`~gen3dface.recon.quality`: PSNR and Chamfer distance against the truth;
- :mod:`~gen3dface.recon.report`: a 3D figure, comparison strips, a JSON summary.

Tensors: views ``rgb (V, H, W, 3)`` in [0, 1], ``mask (V, H, W)``; points ``(P, 3)`` in the head frame of
:mod:`gen3dface.core.cameras`; grids ``(1, C, R, R, R)`` indexed ``[z, y, x]`` (``grid_sample``'s order).
"""
