"""Views -> 3D head: an SDF + colour fit to posed views, mesh export, turntables."""
