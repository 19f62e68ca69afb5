"""Run profiles: ``smoke`` (CPU, minutes), ``small`` (one GPU, <= 30 min training), ``paper`` (the paper's settings).

Every notebook's ``parameters`` cell sets ``profile = "smoke"``; papermill's ``-p profile paper`` switches
all of a notebook's sizes at once. Later modules read the fields they need from here and nowhere else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from .errors import InputError


@dataclass(frozen=True)
class Profile:
    """Sizes of one run profile.

    Attributes:
        name: profile name.
        image_size: side of generated views and of the input crop, pixels.
        n_views: number of target views N generated per input (the paper: 16).
        n_synth_views: views rendered per synthetic identity (the paper: 48).
        n_identities: synthetic identities a notebook makes by default.
        volume_size: V, voxels per side of the feature volume (the paper profile: 32).
        frustum_depth: D, samples per ray of the frustum volumes (the paper profile: 48).
        ddim_steps: DDIM sampling steps (the paper: 50).
        batch_size: training batch (the paper: 8).
        train_steps: training iterations (the paper: 48k).
        device: preferred device, "cpu" or "cuda" ("cuda" falls back to CPU when absent).
    """

    name: str
    image_size: int
    n_views: int
    n_synth_views: int
    n_identities: int
    volume_size: int
    frustum_depth: int
    ddim_steps: int
    batch_size: int
    train_steps: int
    device: str

    def to_dict(self) -> dict:
        return asdict(self)

    def with_(self, **changes) -> "Profile":
        return replace(self, **changes)


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", image_size=64, n_views=8, n_synth_views=16, n_identities=4, volume_size=16,
                     frustum_depth=16, ddim_steps=10, batch_size=2, train_steps=60, device="cpu"),
    "small": Profile("small", image_size=128, n_views=16, n_synth_views=48, n_identities=512, volume_size=32,
                     frustum_depth=32, ddim_steps=50, batch_size=8, train_steps=6000, device="cuda"),
    "paper": Profile("paper", image_size=256, n_views=16, n_synth_views=48, n_identities=25000, volume_size=32,
                     frustum_depth=48, ddim_steps=50, batch_size=8, train_steps=48000, device="cuda"),
}


def get_profile(name: str | Profile) -> Profile:
    """The named profile; raises :class:`InputError` for an unknown name."""
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        raise InputError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None


def pick_device(profile: Profile | str = "smoke") -> str:
    """The profile's device if present, else CPU."""
    import torch

    want = get_profile(profile).device
    return "cuda" if want == "cuda" and torch.cuda.is_available() else "cpu"
