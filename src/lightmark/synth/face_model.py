"""The ICT Face Model (Light): a linear morphable head with 100 identity modes and 53 ARKit-style blendshapes.

Two on-disk layouts are read:

- a single ``.npz`` with ``neutral`` (V,3), ``identity`` (K,V,3) and ``expression`` (E,V,3) deltas,
  ``expression_names``, ``triangles`` (T,3), ``uv`` (U,2), ``uv_triangles`` (T,3), ``landmarks68`` (68,) and
  optionally ``jaw_left``/``jaw_right``;
- the ICT-FaceKit release folder ``FaceXModel/``: ``generic_neutral_mesh.obj``, ``identity000.obj``...
  (full meshes), one ``<expression>.obj`` per name listed in ``vertex_indices.json`` (``"expressions"``),
  all sharing one topology. Quads are split into triangles as ``(a, d, c), (a, c, b)``, which is the
  triangulation (and winding) of the ``.npz``.

The model is not shipped with lightmark: users download ICT-FaceKit (MIT licence) and pass its path.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DatasetError

NPZ_NAME = "ict_face_model_light.npz"
DEFAULT_RELATIVE = Path("..") / "shared" / "data" / "ict_face_model" / NPZ_NAME
ENV_VAR = "LIGHTMARK_FACE_MODEL"

# Multi-PIE / iBUG 68-point landmark vertex ids of the ICT topology (ICT-FaceKit README).
ICT_LANDMARKS68: tuple[int, ...] = (
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088, 3443,
    268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509,
    978, 4527, 4942, 4857, 1140, 2075, 1147, 4269, 3360,
    1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732,
    5708, 5695, 2081, 0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841,
    5702, 5711, 5533, 6216, 6207, 6470, 5517, 5966,
)  # fmt: skip
ICT_JAW_RIGHT: tuple[int, ...] = (1278, 1272, 12, 1834, 243, 781, 2199, 1447)
ICT_JAW_LEFT: tuple[int, ...] = (3661, 4390, 3022, 2484, 4036, 2253, 3490, 3496)

# Vertex ranges (inclusive start, exclusive end) of the ICT topology's geometry parts.
ICT_NUM_VERTICES = 26719
PARTS: dict[str, tuple[int, int]] = {
    "face": (0, 9409),
    "head": (9409, 11248),
    "mouth_socket": (11248, 13294),
    "eye_socket_left": (13294, 13678),
    "eye_socket_right": (13678, 14062),
    "gums_tongue": (14062, 17039),
    "teeth": (17039, 21451),
    "eyeball_left": (21451, 23021),
    "eyeball_right": (23021, 24591),
    "lacrimal": (24591, 24999),
    "eye_blend": (24999, 25047),
    "eye_occlusion": (25047, 25351),
    "eyelashes_left": (25351, 26035),
    "eyelashes_right": (26035, 26719),
}
SCLERA: dict[str, tuple[int, int]] = {"left": (21451, 22221), "right": (23021, 23791)}
IRIS: dict[str, tuple[int, int]] = {"left": (22221, 23021), "right": (23791, 24591)}


@dataclass
class FaceModel:
    """A linear face model: ``vertices = neutral + identity_coeffs @ identity + expression_weights @ expression``.

    Coordinates are in centimetres, ``y`` up, ``z`` out of the face (towards a frontal viewer), ``x``
    towards the subject's left (image right in a frontal view).
    """

    neutral: np.ndarray  # (V,3) float32
    identity: np.ndarray  # (K,V,3) float32 deltas
    expression: np.ndarray  # (E,V,3) float32 deltas
    expression_names: tuple[str, ...]
    triangles: np.ndarray  # (T,3) int32
    uv: np.ndarray  # (U,2) float32
    uv_triangles: np.ndarray  # (T,3) int32
    landmarks68: np.ndarray  # (68,) int32 vertex ids
    jaw_left: np.ndarray = field(default_factory=lambda: np.asarray(ICT_JAW_LEFT, np.int32))
    jaw_right: np.ndarray = field(default_factory=lambda: np.asarray(ICT_JAW_RIGHT, np.int32))
    source: str = ""

    def __post_init__(self) -> None:
        self.neutral = np.ascontiguousarray(self.neutral, np.float32)
        v = self.neutral.shape[0]
        self.identity = np.ascontiguousarray(self.identity, np.float32).reshape(-1, v, 3)
        self.expression = np.ascontiguousarray(self.expression, np.float32).reshape(-1, v, 3)
        self.triangles = np.ascontiguousarray(self.triangles, np.int32)
        self.uv = np.ascontiguousarray(self.uv, np.float32)
        self.uv_triangles = np.ascontiguousarray(self.uv_triangles, np.int32)
        self.landmarks68 = np.asarray(self.landmarks68, np.int32)
        self.jaw_left = np.asarray(self.jaw_left, np.int32)
        self.jaw_right = np.asarray(self.jaw_right, np.int32)
        self.expression_names = tuple(str(n) for n in self.expression_names)
        self._id_flat = self.identity.reshape(self.identity.shape[0], -1)
        self._ex_flat = self.expression.reshape(self.expression.shape[0], -1)
        self._check()

    def _check(self) -> None:
        v = self.neutral.shape[0]
        where = self.source or "face model"
        if self.neutral.ndim != 2 or self.neutral.shape[1] != 3 or v == 0:
            raise DatasetError(f"{where}: neutral mesh must be (V,3), got {self.neutral.shape}")
        if len(self.expression_names) != self.expression.shape[0]:
            raise DatasetError(
                f"{where}: {self.expression.shape[0]} expression shapes but {len(self.expression_names)} names"
            )
        if self.triangles.ndim != 2 or self.triangles.shape[1] != 3 or len(self.triangles) == 0:
            raise DatasetError(f"{where}: triangles must be (T,3), got {self.triangles.shape}")
        if self.triangles.min() < 0 or self.triangles.max() >= v:
            raise DatasetError(f"{where}: triangle vertex index out of range")
        if self.uv_triangles.shape != self.triangles.shape:
            raise DatasetError(f"{where}: uv_triangles {self.uv_triangles.shape} != {self.triangles.shape}")
        if len(self.uv) and (self.uv_triangles.min() < 0 or self.uv_triangles.max() >= len(self.uv)):
            raise DatasetError(f"{where}: uv index out of range")
        if self.landmarks68.shape != (68,) or self.landmarks68.min() < 0 or self.landmarks68.max() >= v:
            raise DatasetError(f"{where}: landmarks68 must be 68 vertex ids < {v}")
        if not np.isfinite(self.neutral).all():
            raise DatasetError(f"{where}: non-finite vertex coordinates")

    @property
    def num_vertices(self) -> int:
        return int(self.neutral.shape[0])

    @property
    def num_identity(self) -> int:
        return int(self.identity.shape[0])

    @property
    def num_expression(self) -> int:
        return int(self.expression.shape[0])

    @property
    def is_ict_topology(self) -> bool:
        """True when the mesh has the ICT vertex layout (parts, eyeballs, teeth at the documented ids)."""
        return self.num_vertices == ICT_NUM_VERTICES

    def expression_index(self, name: str) -> int:
        return self.expression_names.index(name)

    def vertices(
        self, identity_coeffs: np.ndarray | None = None, expression_weights: np.ndarray | None = None
    ) -> np.ndarray:
        """Deformed vertices (V,3) float32 for the given coefficients (missing trailing ones are zero)."""
        out = self.neutral.reshape(-1).copy()
        if identity_coeffs is not None:
            c = np.asarray(identity_coeffs, np.float32).reshape(-1)
            if c.size > self.num_identity:
                raise ValueError(f"{c.size} identity coefficients for {self.num_identity} modes")
            if c.size:
                out += c @ self._id_flat[: c.size]
        if expression_weights is not None:
            e = np.asarray(expression_weights, np.float32).reshape(-1)
            if e.size > self.num_expression:
                raise ValueError(f"{e.size} expression weights for {self.num_expression} shapes")
            nz = np.flatnonzero(e)
            if len(nz) > 16:
                out += e @ self._ex_flat[: e.size]
            else:  # expressions are sparse: a few scaled row additions are cheaper than the full product
                for k in nz:
                    out += e[k] * self._ex_flat[k]
        return out.reshape(-1, 3)

    def save_npz(self, path: str | os.PathLike) -> None:
        """Write the model in the single-file ``.npz`` layout (e.g. once after reading a FaceXModel folder)."""
        from ..utils import atomic_write

        with atomic_write(path, "wb") as f:
            np.savez(
                f,
                neutral=self.neutral,
                identity=self.identity.astype(np.float16),
                expression=self.expression.astype(np.float16),
                expression_names=np.asarray(self.expression_names),
                triangles=self.triangles,
                uv=self.uv,
                uv_triangles=self.uv_triangles,
                landmarks68=self.landmarks68,
                jaw_left=self.jaw_left,
                jaw_right=self.jaw_right,
            )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_id_flat", None)
        state.pop("_ex_flat", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._id_flat = self.identity.reshape(self.identity.shape[0], -1)
        self._ex_flat = self.expression.reshape(self.expression.shape[0], -1)


def default_face_model_path() -> Path | None:
    """The face model used when none is given: ``$LIGHTMARK_FACE_MODEL``, else ``../shared/data/...npz``.

    The relative default is looked up from the current directory and from the project root (the folder
    holding ``src/``); returns None when none exists.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    roots = [Path.cwd(), Path(__file__).resolve().parents[3]]
    for root in roots:
        p = root / DEFAULT_RELATIVE
        if p.is_file():
            return p.resolve()
    return None


def load_face_model(path: str | os.PathLike | None = None) -> FaceModel:
    """Load the face model from an ``.npz`` file or an ICT-FaceKit ``FaceXModel`` folder (or its parent).

    Raises:
        DatasetError: no path given and no default present, or the path is missing or not a face model.
    """
    if path is None:
        path = default_face_model_path()
        if path is None:
            raise DatasetError(
                "no face model: pass the ICT-FaceKit FaceXModel folder or an .npz "
                f"(or set ${ENV_VAR}); see docs/synth.md"
            )
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: face model not found")
    if p.is_dir():
        if (p / "generic_neutral_mesh.obj").is_file():
            return _load_facex_folder(p)
        if (p / "FaceXModel" / "generic_neutral_mesh.obj").is_file():
            return _load_facex_folder(p / "FaceXModel")
        if (p / NPZ_NAME).is_file():
            return _load_npz(p / NPZ_NAME)
        raise DatasetError(f"{p}: not a face model folder (no generic_neutral_mesh.obj nor {NPZ_NAME})")
    return _load_npz(p)


def _load_npz(p: Path) -> FaceModel:
    try:
        with np.load(p, allow_pickle=False) as d:
            keys = set(d.files)
            need = {"neutral", "identity", "expression", "expression_names", "triangles", "landmarks68"}
            if not need <= keys:
                raise DatasetError(f"{p}: not a face model .npz (missing {sorted(need - keys)})")
            tris = d["triangles"]
            uv = d["uv"] if "uv" in keys else np.zeros((1, 2), np.float32)
            uvt = d["uv_triangles"] if "uv_triangles" in keys else np.zeros_like(tris)
            return FaceModel(
                neutral=d["neutral"],
                identity=d["identity"],
                expression=d["expression"],
                expression_names=tuple(d["expression_names"].tolist()),
                triangles=tris,
                uv=uv,
                uv_triangles=uvt,
                landmarks68=d["landmarks68"],
                jaw_left=d["jaw_left"] if "jaw_left" in keys else ICT_JAW_LEFT,
                jaw_right=d["jaw_right"] if "jaw_right" in keys else ICT_JAW_RIGHT,
                source=str(p),
            )
    except DatasetError:
        raise
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise DatasetError(f"{p}: cannot read face model ({e})") from None


# ----------------------------------------------------------------------------------------------- OBJ


def read_obj(path: str | os.PathLike, faces: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read a Wavefront OBJ: vertices (V,3), texture coordinates (U,2), triangles (T,3), uv triangles (T,3).

    Polygons are triangulated as ``(a, d, c), (a, c, b)`` for a quad ``a b c d`` (a fan over the reversed
    polygon); faces without texture indices get uv index 0. With ``faces=False`` only vertices are parsed
    (fast path for morph targets).

    Raises:
        DatasetError: unreadable file, malformed numbers, or indices out of range.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise DatasetError(f"{p}: cannot read ({e.strerror or e})") from None
    lines = data.splitlines()
    try:
        vtoks = b" ".join(ln[2:] for ln in lines if ln.startswith(b"v "))
        v = np.array(vtoks.split(), dtype=np.float64)
        if v.size % 3:
            # tolerate "v x y z w" or vertex colours by reading the first three numbers of each line
            v = np.array([ln.split()[1:4] for ln in lines if ln.startswith(b"v ")], dtype=np.float64)
        v = v.reshape(-1, 3)
        if not faces:
            return v, np.zeros((0, 2)), np.zeros((0, 3), np.int32), np.zeros((0, 3), np.int32)
        vt = np.array([ln.split()[1:3] for ln in lines if ln.startswith(b"vt ")], dtype=np.float64).reshape(-1, 2)
    except ValueError as e:
        raise DatasetError(f"{p}: malformed OBJ ({e})") from None
    tri: list[tuple[int, int, int]] = []
    tuv: list[tuple[int, int, int]] = []
    nv, nt = len(v), len(vt)
    for ln in lines:
        if not ln.startswith(b"f "):
            continue
        vi: list[int] = []
        ti: list[int] = []
        for tok in ln.split()[1:]:
            parts = tok.split(b"/")
            try:
                a = int(parts[0])
                b = int(parts[1]) if len(parts) > 1 and parts[1] else 0
            except ValueError:
                raise DatasetError(f"{p}: malformed face {ln[:60]!r}") from None
            vi.append(a - 1 if a > 0 else nv + a)
            ti.append((b - 1 if b > 0 else nt + b) if b else 0)
        if len(vi) < 3:
            raise DatasetError(f"{p}: face with fewer than 3 vertices")
        vi = [vi[0], *vi[:0:-1]]
        ti = [ti[0], *ti[:0:-1]]
        for k in range(1, len(vi) - 1):
            tri.append((vi[0], vi[k], vi[k + 1]))
            tuv.append((ti[0], ti[k], ti[k + 1]))
    t = np.asarray(tri, np.int32).reshape(-1, 3)
    tu = np.asarray(tuv, np.int32).reshape(-1, 3)
    if len(t) and (t.min() < 0 or t.max() >= nv):
        raise DatasetError(f"{p}: face vertex index out of range")
    if len(tu) and nt and (tu.min() < 0 or tu.max() >= nt):
        raise DatasetError(f"{p}: texture index out of range")
    if nt == 0:
        vt = np.zeros((1, 2))
    return v, vt, t, tu


def _load_facex_folder(folder: Path) -> FaceModel:
    cfg_path = folder / "vertex_indices.json"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        names = [str(n) for n in cfg["expressions"]]
    except FileNotFoundError:
        raise DatasetError(f"{cfg_path}: missing (it lists the expression shapes)") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"{cfg_path}: cannot read the expression list ({e})") from None
    neutral, uv, tris, uvt = read_obj(folder / "generic_neutral_mesh.obj")
    nv = len(neutral)

    def deltas(files: list[Path]) -> np.ndarray:
        out = np.empty((len(files), nv, 3), np.float32)
        for i, f in enumerate(files):
            v = read_obj(f, faces=False)[0]
            if v.shape != neutral.shape:
                raise DatasetError(f"{f}: {len(v)} vertices, the neutral mesh has {nv}")
            out[i] = v - neutral
        return out

    id_files = []
    while (folder / f"identity{len(id_files):03d}.obj").is_file():
        id_files.append(folder / f"identity{len(id_files):03d}.obj")
    ex_files = []
    for n in names:
        f = folder / f"{n}.obj"
        if not f.is_file():
            raise DatasetError(f"{f}: missing (listed in vertex_indices.json)")
        ex_files.append(f)
    if nv == ICT_NUM_VERTICES:
        lm = np.asarray(ICT_LANDMARKS68, np.int32)
    else:
        lm_list = cfg.get("landmarks68")
        if lm_list is None:
            raise DatasetError(f"{folder}: not the ICT topology and no 'landmarks68' in vertex_indices.json")
        lm = np.asarray(lm_list, np.int32)
    return FaceModel(
        neutral=neutral,
        identity=deltas(id_files) if id_files else np.zeros((0, nv, 3), np.float32),
        expression=deltas(ex_files) if ex_files else np.zeros((0, nv, 3), np.float32),
        expression_names=tuple(names),
        triangles=tris,
        uv=uv,
        uv_triangles=uvt,
        landmarks68=lm,
        source=str(folder),
    )
