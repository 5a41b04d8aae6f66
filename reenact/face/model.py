"""The shipped face model: ICT Face Model Light embedded at MediaPipe's 468 landmarks and at the
68 iBUG points, plus a decimated ICT face mesh for rendering. Built by tools/build_face_model.py.

Shapes are in centimetres; +y is up and +z points out of the face. A shape is
``mean + identity @ identity_basis + expression @ expression_basis`` with identity ~ N(0, 1)
(100,) and expression weights in [0, 1] (53,), named as ARKit blendshapes.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ASSET = Path(__file__).resolve().parents[1] / "assets" / "face_model.npz"
NUM_LANDMARKS = 468
# MediaPipe FaceMesh indices used throughout the face path.
RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER, LEFT_EYE_OUTER = 33, 133, 362, 263
RIGHT_UPPER_LID, RIGHT_LOWER_LID, LEFT_UPPER_LID, LEFT_LOWER_LID = 159, 145, 386, 374
UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
FOREHEAD, CHIN = 10, 152
RIGHT_IRIS, LEFT_IRIS = tuple(range(468, 473)), tuple(range(473, 478))   # centre first, then 4 rim points


@dataclass(frozen=True)
class FaceModel:
    expression_names: tuple[str, ...]
    landmark_mean: torch.Tensor               # (468, 3)
    landmark_identity_basis: torch.Tensor     # (100, 468, 3)
    landmark_expression_basis: torch.Tensor   # (53, 468, 3)
    mesh_vertices: torch.Tensor               # (V, 3)
    mesh_identity_basis: torch.Tensor         # (100, V, 3)
    mesh_expression_basis: torch.Tensor       # (53, V, 3)
    mesh_triangles: torch.Tensor              # (F, 3) long
    ibug68_mean: torch.Tensor                 # (68, 3)
    ibug68_identity_basis: torch.Tensor       # (100, 68, 3)
    ibug68_expression_basis: torch.Tensor     # (53, 68, 3)

    def landmarks(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """(..., 468, 3) landmark positions for identity (100,) and expression (..., 53)."""
        return _blend(self.landmark_mean, self.landmark_identity_basis, self.landmark_expression_basis, identity, expression)

    def ibug68(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """(..., 68, 3) positions of the iBUG points (face-alignment's layout)."""
        return _blend(self.ibug68_mean, self.ibug68_identity_basis, self.ibug68_expression_basis, identity, expression)

    def mesh(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """(..., V, 3) rendering-mesh vertices."""
        return _blend(self.mesh_vertices, self.mesh_identity_basis, self.mesh_expression_basis, identity, expression)

    def expression_index(self, name: str) -> int:
        return self.expression_names.index(name)

    def to(self, device: torch.device) -> "FaceModel":
        return dataclasses.replace(self, **{field.name: getattr(self, field.name).to(device)
                                            for field in dataclasses.fields(self) if field.name != "expression_names"})


def _blend(mean: torch.Tensor, identity_basis: torch.Tensor, expression_basis: torch.Tensor, identity: torch.Tensor,
           expression: torch.Tensor) -> torch.Tensor:
    shape = mean + torch.einsum("k,kpc->pc", identity, identity_basis)
    return shape + torch.einsum("...k,kpc->...pc", expression, expression_basis)


@functools.cache
def load_face_model(path: Path = ASSET) -> FaceModel:
    with np.load(path) as data:
        tensors = {key: torch.from_numpy(data[key].astype(np.float32)) for key in (
            "landmark_mean", "landmark_identity_basis", "landmark_expression_basis",
            "mesh_vertices", "mesh_identity_basis", "mesh_expression_basis", "ibug68_mean", "ibug68_identity_basis",
            "ibug68_expression_basis")}
        return FaceModel(tuple(str(n) for n in data["expression_names"]), mesh_triangles=torch.from_numpy(
            data["mesh_triangles"].astype(np.int64)), **tensors)
