"""Shared foundations: errors, cameras, images, storage, profiles, the worker pool, sample photos, figures."""
