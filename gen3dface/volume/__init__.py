"""The 3D feature volume: unprojection of views into a V^3 grid, mesh voxels, the sparse ConvNet fusion and frustum features (paper Sec. 3.2)."""
