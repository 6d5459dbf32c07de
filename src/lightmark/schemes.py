"""Landmark schemes: which points a model predicts and a dataset labels, and how they mirror, join and group.

A :class:`LandmarkScheme` is everything the code needs to know about a point layout: its size, the horizontal-flip
permutation, the drawing contours, the inter-ocular pair, named regions, the jaw, and (when it exists) the map to
the iBUG/300-W 68-point layout. The built-in schemes are registered on import:

* ``ibug68`` - the 68-point layout of :mod:`lightmark.constants` (jaw = the projected 3D jaw line, as AFLW2000-3D and
  the challenge label it); built from those constants, so they stay the one source of truth;
* ``ibug68_2d`` - the same indices, with the 17 jaw points on the visible face outline (300-W / dlib);
* ``wflw98`` - WFLW's 98 points (Wu et al., "Look at Boundary", CVPR 2018).

Adding a scheme is one :func:`register_scheme` call in this file (plus a reader when it comes in a new file format).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np

from . import constants as C
from .errors import ConfigError

__all__ = [
    "LandmarkScheme",
    "register_scheme",
    "get_scheme",
    "list_schemes",
    "scheme_for_count",
    "ibug68_points",
    "DEFAULT_SCHEME",
]

DEFAULT_SCHEME = "ibug68"
"""The scheme of every model, dataset and file that names none (all models and files before schemes existed)."""

Contour = tuple[int, int, bool]


def _ints(values: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


@dataclass(frozen=True)
class LandmarkScheme:
    """A landmark layout. Point arrays of the scheme are ``(..., num_points, 2)``.

    Attributes:
        name: registry key (``"ibug68"``, ``"wflw98"``...); also the suffix of its FaceSynthetics-style label files.
        num_points: K, the number of points.
        flip_perm: after mirroring an image, point i of the mirrored face is point ``flip_perm[i]`` of the original
            (an involutive permutation of ``range(K)``).
        contours: drawing segments ``(start, stop, closed)``: the run of points ``start .. stop-1``, looped back to
            ``start`` when ``closed`` (as :data:`lightmark.constants.CONTOURS`).
        eye_corners: the outer eye corners ``(a, b)`` whose distance normalises the inter-ocular NME.
        regions: region name -> point indices (``jaw``, ``brows``, ``nose``, ``eyes``, ``mouth``...), for
            per-region errors; read-only.
        to_ibug68: 68 indices into this scheme giving the iBUG 68 points in order, or None when there is no map.
        jaw: indices of the jaw contour (what per-set jaw loss weights scale).
        description: one paragraph for people.
        from_ibug68: for each point, the 68 iBUG points whose mean approximates it (None: no such prior). A model
            of this scheme fine-tuned from a 68-point model starts with each output built from those points'
            outputs (:func:`lightmark.engine.train.adapt_head`), so that it starts near the 68-point model.
    """

    name: str
    num_points: int
    flip_perm: tuple[int, ...]
    contours: tuple[Contour, ...]
    eye_corners: tuple[int, int]
    regions: Mapping[str, tuple[int, ...]] = field(hash=False)
    to_ibug68: tuple[int, ...] | None
    jaw: tuple[int, ...]
    description: str = ""
    from_ibug68: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self) -> None:
        k = int(self.num_points)
        if not self.name or not isinstance(self.name, str) or not self.name.replace("_", "").isalnum():
            raise ConfigError(f"scheme name must be letters, digits and '_', got {self.name!r}")
        if k < 1:
            raise ConfigError(f"scheme {self.name}: num_points must be positive, got {k}")
        put = object.__setattr__  # frozen: normalise the fields once, here
        put(self, "num_points", k)
        put(self, "flip_perm", _ints(self.flip_perm))
        put(self, "contours", tuple((int(a), int(b), bool(c)) for a, b, c in self.contours))
        put(self, "eye_corners", _ints(self.eye_corners))
        put(self, "regions", MappingProxyType({str(n): _ints(ix) for n, ix in dict(self.regions).items()}))
        put(self, "to_ibug68", None if self.to_ibug68 is None else _ints(self.to_ibug68))
        put(self, "jaw", _ints(self.jaw))
        prior = self.from_ibug68
        put(self, "from_ibug68", None if prior is None else tuple(_ints(p) for p in prior))
        self._validate()
        self._validate_prior()

    def _validate(self) -> None:
        """Raise :class:`ConfigError` unless every index is in range and the flip permutation is an involution."""
        k, perm, where = self.num_points, self.flip_perm, f"scheme {self.name}"
        if len(perm) != k or sorted(perm) != list(range(k)):
            raise ConfigError(f"{where}: flip_perm must be a permutation of range({k}), got {len(perm)} entries")
        bad = [i for i in range(k) if perm[perm[i]] != i]
        if bad:
            raise ConfigError(f"{where}: flip_perm is not an involution (perm[perm[{bad[0]}]] != {bad[0]})")
        for a, b, _ in self.contours:
            if not 0 <= a < b <= k:
                raise ConfigError(f"{where}: contour ({a}, {b}) is not a run inside range({k})")
        corners = self.eye_corners
        mirrored = len(corners) == 2 and all(0 <= i < k for i in corners) and perm[corners[0]] == corners[1]
        if not mirrored or corners[0] == corners[1]:
            raise ConfigError(f"{where}: eye_corners must be two mirrored points, got {self.eye_corners}")
        for name, ix in [*self.regions.items(), ("jaw", self.jaw)]:
            if not ix or not all(0 <= i < k for i in ix):
                raise ConfigError(f"{where}: region {name!r} is empty or has an index outside range({k})")
        m = self.to_ibug68
        if m is not None:
            if len(m) != C.NUM_LANDMARKS or len(set(m)) != len(m) or not all(0 <= i < k for i in m):
                raise ConfigError(f"{where}: to_ibug68 must be {C.NUM_LANDMARKS} distinct indices in range({k})")
            bad = [i for i in range(C.NUM_LANDMARKS) if m[C.FLIP_PERM[i]] != perm[m[i]]]
            if bad:
                raise ConfigError(f"{where}: to_ibug68 does not mirror with the flips (68-point index {bad[0]})")

    def _validate_prior(self) -> None:
        """``from_ibug68``: one non-empty set of 68-point indices per point, mirroring with the two flips."""
        prior, where = self.from_ibug68, f"scheme {self.name}"
        if prior is None:
            return
        if len(prior) != self.num_points or not all(p and all(0 <= i < C.NUM_LANDMARKS for i in p) for p in prior):
            raise ConfigError(f"{where}: from_ibug68 needs, for each of its {self.num_points} points, 68-point indices")
        bad = [
            j
            for j in range(self.num_points)
            if sorted(C.FLIP_PERM[i] for i in prior[j]) != sorted(prior[self.flip_perm[j]])
        ]
        if bad:
            raise ConfigError(f"{where}: from_ibug68 does not mirror with the flips (point {bad[0]})")

    def check_points(self, points: np.ndarray, what: str = "points") -> np.ndarray:
        """``points`` as float64 ``(N, K, 2)`` (a single ``(K, 2)`` face gives N = 1).

        Raises:
            ValueError: not ``(N, K, 2)`` / ``(K, 2)``, or K is not this scheme's ``num_points``.
        """
        a = np.asarray(points, dtype=np.float64)
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3 or a.shape[-1] != 2:
            raise ValueError(f"{what}: expected shape (N, K, 2) or (K, 2), got {np.shape(points)}")
        if a.shape[1] != self.num_points:
            hint = scheme_for_count(a.shape[1])
            also = f" (pass scheme={hint.name!r}?)" if hint is not None else ""
            raise ValueError(
                f"{what}: {a.shape[1]} points per face, but scheme {self.name!r} has {self.num_points}{also}"
            )
        return a

    def as_ibug68(self, points: np.ndarray) -> np.ndarray:
        """The iBUG 68 points ``(..., 68, 2)`` of ``(..., K, 2)`` points of this scheme (a copy).

        Raises:
            ValueError: the scheme has no 68-point map, or the arrays are not ``(..., K, 2)``.
        """
        if self.to_ibug68 is None:
            raise ValueError(f"scheme {self.name!r} has no map to the 68-point layout")
        a = np.asarray(points)
        if a.ndim < 2 or a.shape[-2:] != (self.num_points, 2):
            raise ValueError(f"expected (..., {self.num_points}, 2) points of {self.name}, got {a.shape}")
        return a[..., list(self.to_ibug68), :].copy()


_SCHEMES: dict[str, LandmarkScheme] = {}


def register_scheme(scheme: LandmarkScheme) -> LandmarkScheme:
    """Add ``scheme`` to the registry under its name and return it (registering an equal scheme again is a no-op).

    Raises:
        ConfigError: another scheme already has this name.
    """
    old = _SCHEMES.get(scheme.name)
    if old is not None and old != scheme:
        raise ConfigError(f"a different landmark scheme is already registered as {scheme.name!r}")
    _SCHEMES[scheme.name] = scheme
    return scheme


def get_scheme(name: str | LandmarkScheme) -> LandmarkScheme:
    """The registered scheme called ``name`` (a :class:`LandmarkScheme` is returned as is).

    Raises:
        ConfigError: no scheme has this name (the message lists the valid names).
    """
    if isinstance(name, LandmarkScheme):
        return name
    try:
        return _SCHEMES[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown landmark scheme {name!r}; known: {', '.join(list_schemes())}") from None


def list_schemes() -> list[str]:
    """Names accepted by :func:`get_scheme`, in registration order (built-ins first)."""
    return list(_SCHEMES)


def scheme_for_count(num_points: int) -> LandmarkScheme | None:
    """The first registered scheme with ``num_points`` points (68 -> ``ibug68``, 98 -> ``wflw98``), or None."""
    return next((s for s in _SCHEMES.values() if s.num_points == num_points), None)


def ibug68_points(points: np.ndarray) -> np.ndarray:
    """The 68 iBUG points ``(68, 2)`` of one face's ``(K, 2)`` points: 68 as they are, 70 (68 + pupils) cut to 68,
    any other count through the map of the registered scheme with that many points (:meth:`as_ibug68`).

    Raises:
        ValueError: no registered scheme with K points maps to the 68."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim == 2 and len(pts) in (C.NUM_LANDMARKS, C.NUM_LANDMARKS + 2):
        return pts[: C.NUM_LANDMARKS]
    scheme = scheme_for_count(len(pts)) if pts.ndim == 2 else None
    if scheme is None or scheme.to_ibug68 is None:
        raise ValueError(f"no landmark scheme with {len(pts)} points maps to the 68 iBUG points (shape {pts.shape})")
    return scheme.as_ibug68(pts)


# ---------------------------------------------------------------------------------------------- built-ins


def _span(s: slice) -> tuple[int, ...]:
    return tuple(range(s.start, s.stop))


_IBUG68_REGIONS = {
    "jaw": _span(C.JAW),
    "brows": _span(C.RIGHT_BROW) + _span(C.LEFT_BROW),
    "nose": _span(C.NOSE),
    "eyes": _span(C.RIGHT_EYE) + _span(C.LEFT_EYE),
    "mouth": _span(C.MOUTH),
}

IBUG68 = register_scheme(
    LandmarkScheme(
        name="ibug68",
        num_points=C.NUM_LANDMARKS,
        flip_perm=C.FLIP_PERM,
        contours=C.CONTOURS,
        eye_corners=C.OUTER_EYE_CORNERS,
        regions=_IBUG68_REGIONS,
        to_ibug68=tuple(range(C.NUM_LANDMARKS)),
        from_ibug68=tuple((i,) for i in range(C.NUM_LANDMARKS)),
        jaw=_span(C.JAW),
        description="iBUG/300-W 68 points as AFLW2000-3D and the challenge label them: the 17 jaw points follow "
        "the projected 3D jaw line, also where it is hidden behind the cheek of a turned face. The layout of "
        "lightmark.constants and of every model and file that names no scheme.",
    )
)

IBUG68_2D = register_scheme(
    replace(
        IBUG68,
        name="ibug68_2d",
        description="iBUG/300-W 68 points in the 2D convention of 300-W, dlib and WFLW's 68-point subset: the same "
        "indices as ibug68, but the 17 jaw points follow the visible face outline (the silhouette of a turned "
        "face) rather than the projected 3D jaw.",
    )
)

IBUG68_FS = register_scheme(
    replace(
        IBUG68,
        name="ibug68_fs",
        description="iBUG 68 points in FaceSynthetics' definition, as the synthetic engine measured it on the 100 "
        "samples (docs/synth.md, 'Landmark definitions'): brows on their centre line, the outer upper lip inside "
        "the vermilion, the nose bridge higher, four jaw points moved; 3D jaw as ibug68. Written by "
        "SynthConfig(fs_labels=True).",
    )
)

# WFLW 98 points: 0-32 jaw (image left to right), 33-41 the subject's right brow (33-37 upper contour from the outer
# end, 38-41 lower contour back), 42-50 left brow (42-46 upper from the inner end, 47-50 lower back), 51-54 nose bridge,
# 55-59 nostrils, 60-67 right eye (from the outer corner 60) and 68-75 left eye (from the inner corner 68), 8 points
# each, 76-87 outer lips, 88-95 inner lips (from the right mouth corner), 96-97 pupils.
# Mirror pairs: HRNet-Facial-Landmark-Detection lib/utils/transforms.py MATCHED_PARTS["WFLW"] (identical to mmpose's
# configs/_base_/datasets/wflw.py "swap" entries); unpaired points (16, 51-54, 57, 79, 85, 90, 94) map to themselves.
_WFLW_PAIRS = (
    *((i, 32 - i) for i in range(16)),
    (33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48), (41, 47),
    (55, 59), (56, 58),
    (60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73),
    (76, 82), (77, 81), (78, 80), (83, 87), (84, 86), (88, 92), (89, 91), (93, 95),
    (96, 97),
)  # fmt: skip


def _prior_from_ibug68(
    num_points: int, to_ibug68: Sequence[int], others: Mapping[int, tuple[int, ...]]
) -> tuple[tuple[int, ...], ...]:
    """Each point's 68-point prior: itself where ``to_ibug68`` maps it, else its entry in ``others``."""
    mapped = {j: (i,) for i, j in enumerate(to_ibug68)}
    return tuple(mapped.get(j) or others[j] for j in range(num_points))


def _perm_from_pairs(n: int, pairs: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    perm = list(range(n))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return tuple(perm)


# WFLW -> iBUG 68: the map of wywu/LAB issue #17, used by most WFLW tools (e.g. DSLPT's and PIPNet-era converters'
# WFLW_98_TO_DLIB_68_IDX_MAPPING): every other jaw point, the brows' upper contours, the whole nose, six of each
# eye's eight points (corners and the points beside the top and bottom middles), the 20 lip points unchanged.
_WFLW_TO_68 = (
    *range(0, 33, 2),  # jaw 0-16
    *range(33, 38), *range(42, 47),  # brows 17-26
    *range(51, 60),  # nose 27-35
    60, 61, 63, 64, 65, 67,  # right eye 36-41
    68, 69, 71, 72, 73, 75,  # left eye 42-47
    *range(76, 96),  # mouth 48-67
)  # fmt: skip

# The WFLW points without a 68-point twin, as means of 68 points: odd jaw points halfway between two even ones, the
# brows' lower contours under the upper ones (inner end first on the right brow, outer end first on the left), the
# eyes' top and bottom middles between their two neighbours, the pupils amid each eye's four lid points.
_WFLW_OTHERS = {
    **{2 * i + 1: (i, i + 1) for i in range(16)},
    38: (20, 21), 39: (19, 20), 40: (18, 19), 41: (17, 18),
    47: (25, 26), 48: (24, 25), 49: (23, 24), 50: (22, 23),
    62: (37, 38), 66: (40, 41), 70: (43, 44), 74: (46, 47),
    96: (37, 38, 40, 41), 97: (43, 44, 46, 47),
}  # fmt: skip

WFLW98 = register_scheme(
    LandmarkScheme(
        name="wflw98",
        num_points=98,
        flip_perm=_perm_from_pairs(98, _WFLW_PAIRS),
        contours=(
            (0, 33, False),  # jaw
            (33, 42, True),  # right brow: upper then lower contour
            (42, 51, True),  # left brow
            (51, 55, False),  # nose bridge
            (55, 60, False),  # nostrils
            (60, 68, True),  # right eye
            (68, 76, True),  # left eye
            (76, 88, True),  # outer lips
            (88, 96, True),  # inner lips
        ),
        eye_corners=(60, 72),
        regions={
            "jaw": tuple(range(0, 33)),
            "brows": tuple(range(33, 51)),
            "nose": tuple(range(51, 60)),
            "eyes": tuple(range(60, 76)),
            "mouth": tuple(range(76, 96)),
            "pupils": (96, 97),
        },
        to_ibug68=_WFLW_TO_68,
        from_ibug68=_prior_from_ibug68(98, _WFLW_TO_68, _WFLW_OTHERS),
        jaw=tuple(range(0, 33)),
        description="WFLW's 98 points (Wu et al., Look at Boundary, CVPR 2018): 33 jaw points, brows with upper "
        "and lower contours, 9 nose points, 8 points per eye, 20 lip points and the 2 pupils; inter-ocular NME "
        "divides by the outer eye corners 60 and 72. Here with the jaw on the projected 3D jaw line, as ibug68 "
        "(what the synthetic engine labels, NNNNNN_ldmks_wflw98.txt); WFLW's own files follow the visible "
        "outline: wflw98_2d.",
    )
)

WFLW98_2D = register_scheme(
    replace(
        WFLW98,
        name="wflw98_2d",
        description="WFLW's 98 points as the WFLW release labels them: the 33 jaw points on the visible face "
        "outline (its 68-point subset follows ibug68_2d). The layout, mirror permutation and map to 68 of wflw98.",
    )
)
