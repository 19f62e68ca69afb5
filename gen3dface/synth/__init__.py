"""Training data: procedural heads, the rasteriser, multi-view synthesis, the PanoHead adapter and pruning (paper Sec. 3.2)."""
