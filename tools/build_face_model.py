"""Build reenact/assets/face_model.npz from ../shared/face_model (ICT Face Model Light + MediaPipe).

    python tools/build_face_model.py [--source ../shared/face_model] [--out reenact/assets/face_model.npz]

1. A similarity transform takes MediaPipe's canonical face onto the ICT neutral mesh, from
   corresponding features (eye corners, lids, brows, nose, mouth, chin; the ICT side uses its
   68 iBUG landmark vertices).
2. A thin-plate spline through the same correspondences bends the remaining points into place.
3. Each of the 468 points is projected to the closest point of the ICT face surface; its
   triangle and barycentric weights define the embedded landmark.
The asset stores the embedded landmarks' mean and bases (for fitting), the same for the 68 iBUG
vertices (for the optional face-alignment backend), and a decimated face mesh with its bases
(for rendering).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# (MediaPipe indices averaged, iBUG-68 indices averaged on the ICT side)
CORRESPONDENCES: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = (
    ((33,), (36,)), ((133,), (39,)), ((362,), (42,)), ((263,), (45,)),          # eye corners
    ((159,), (37, 38)), ((145,), (40, 41)), ((386,), (43, 44)), ((374,), (46, 47)),  # lid centres
    ((105, 52), (19,)), ((334, 282), (24,)),                                      # brow centres
    ((168,), (27,)), ((1,), (30,)), ((2,), (33,)),                                # nose bridge, tip, base
    ((61,), (48,)), ((291,), (54,)), ((0,), (51,)), ((17,), (57,)),               # mouth outline
    ((13,), (62,)), ((14,), (66,)), ((152,), (8,)),                               # inner lips, chin
)
FACE_REGIONS = (0, 1)           # ICT narrow face area and the rest of the face area
DECIMATION_CELL_CM = 0.45       # vertex-clustering cell for the rendering mesh


def read_obj_vertices(path: Path) -> np.ndarray:
    return np.array([[float(v) for v in line.split()[1:4]] for line in path.read_text().splitlines() if line.startswith("v ")])


def similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama's least-squares scale, rotation and translation with target ≈ s R source + t."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    covariance = (target - mu_t).T @ (source - mu_s) / len(source)
    u, d, vt = np.linalg.svd(covariance)
    sign = np.diag([1, 1, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(d) @ sign) / (source - mu_s).var(0).sum()
    return scale, rotation, mu_t - scale * rotation @ mu_s


def thin_plate_spline(control: np.ndarray, displacement: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Displacements at ``points`` of the 3D thin-plate spline (kernel r) through the control points."""
    n = len(control)
    kernel = np.linalg.norm(control[:, None] - control[None], axis=-1)
    affine = np.hstack([np.ones((n, 1)), control])
    system = np.block([[kernel, affine], [affine.T, np.zeros((4, 4))]])
    coefficients = np.linalg.solve(system, np.vstack([displacement, np.zeros((4, 3))]))
    at_points = np.hstack([np.linalg.norm(points[:, None] - control[None], axis=-1), np.ones((len(points), 1)), points])
    return at_points @ coefficients


def closest_points_on_triangles(points: np.ndarray, vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each point: the index of the closest triangle, barycentric weights, and the distance."""
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    best = (np.full(len(points), np.inf), np.zeros(len(points), int), np.zeros((len(points), 3)))
    for i, p in enumerate(points):
        weights = _closest_barycentric(p, a, b, c)
        closest = weights[:, :1] * a + weights[:, 1:2] * b + weights[:, 2:] * c
        distances = np.linalg.norm(closest - p, axis=1)
        j = int(np.argmin(distances))
        best[0][i], best[1][i], best[2][i] = distances[j], j, weights[j]
    return best[1], best[2], best[0]


def _closest_barycentric(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric weights of the closest point on each triangle, by projecting to the plane and
    clamping to the edges when the projection falls outside."""
    ab, ac, ap = b - a, c - a, p - a
    d00, d01, d11 = (ab * ab).sum(1), (ab * ac).sum(1), (ac * ac).sum(1)
    d20, d21 = (ap * ab).sum(1), (ap * ac).sum(1)
    denominator = np.maximum(d00 * d11 - d01 * d01, 1e-12)
    v = (d11 * d20 - d01 * d21) / denominator
    w = (d00 * d21 - d01 * d20) / denominator
    weights = np.stack([1 - v - w, v, w], axis=1)
    outside = (weights < 0).any(axis=1)
    if outside.any():
        weights[outside] = _closest_on_edges(p, a[outside], b[outside], c[outside])
    return weights


def _closest_on_edges(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    candidates = []
    for (start, end, i, j) in ((a, b, 0, 1), (b, c, 1, 2), (a, c, 0, 2)):
        edge = end - start
        t = np.clip(((p - start) * edge).sum(1) / np.maximum((edge * edge).sum(1), 1e-12), 0, 1)
        weights = np.zeros((len(a), 3))
        weights[:, i], weights[:, j] = 1 - t, t
        point = start + t[:, None] * edge
        candidates.append((np.linalg.norm(point - p, axis=1), weights))
    distances = np.stack([d for d, _ in candidates])
    choice = np.argmin(distances, axis=0)
    return np.stack([w for _, w in candidates])[choice, np.arange(len(a))]


def register_canonical_face(mediapipe: np.ndarray, ict: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Triangle indices, barycentric weights, the pre-projection points and the face triangles."""
    neutral, landmarks68 = ict["neutral"], ict["landmarks68"]
    source = np.array([mediapipe[list(mp)].mean(0) for mp, _ in CORRESPONDENCES])
    target = np.array([neutral[landmarks68[list(ib)]].mean(0) for _, ib in CORRESPONDENCES])
    scale, rotation, translation = similarity(source, target)
    aligned = scale * mediapipe @ rotation.T + translation
    aligned_source = scale * source @ rotation.T + translation
    warped = aligned + thin_plate_spline(aligned_source, target - aligned_source, aligned)
    in_face = np.isin(ict["region"], FACE_REGIONS)
    face_triangles = ict["triangles"][in_face[ict["triangles"]].all(axis=1)]
    triangle, weights, _ = closest_points_on_triangles(warped, neutral, face_triangles)
    return face_triangles[triangle], weights, warped, face_triangles


def embed(basis: np.ndarray, corners: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Values at embedded points: barycentric blends of ``basis[..., vertex, :]`` over triangle corners."""
    return np.einsum("...pkc,pk->...pc", basis[..., corners, :], weights)


def decimate(vertices: np.ndarray, triangles: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertex clustering: the first vertex in each grid cell stands for the cell.

    Returns the kept original vertex indices and the triangles re-indexed over them, without
    degenerate or repeated triangles.
    """
    used = np.unique(triangles)
    _, cluster_of_used = np.unique(np.floor(vertices[used] / cell).astype(np.int64), axis=0, return_inverse=True)
    cluster_of_used = cluster_of_used.reshape(-1)
    _, first = np.unique(cluster_of_used, return_index=True)
    kept = used[first]
    cluster = np.full(len(vertices), -1)
    cluster[used] = cluster_of_used
    clustered = cluster[triangles]
    distinct = (clustered[:, 0] != clustered[:, 1]) & (clustered[:, 1] != clustered[:, 2]) & (clustered[:, 0] != clustered[:, 2])
    clustered = clustered[distinct]
    _, first_copy = np.unique(np.sort(clustered, axis=1), axis=0, return_index=True)
    return kept, clustered[np.sort(first_copy)]


def build(source: Path) -> dict[str, np.ndarray]:
    ict = dict(np.load(source / "ict_face_model_light.npz"))
    mediapipe = read_obj_vertices(source / "mediapipe" / "canonical_face_model.obj")
    corners, weights, warped, face_triangles = register_canonical_face(mediapipe, ict)
    kept, render_triangles = decimate(ict["neutral"], face_triangles, DECIMATION_CELL_CM)
    return {
        "format_version": np.int32(1),
        "expression_names": ict["expression_names"],
        "landmark_triangles": corners.astype(np.int32), "landmark_barycentric": weights.astype(np.float32),
        "landmark_mean": embed(ict["neutral"], corners, weights).astype(np.float32),
        "landmark_identity_basis": embed(ict["identity_basis"], corners, weights).astype(np.float32),
        "landmark_expression_basis": embed(ict["expression_basis"], corners, weights).astype(np.float32),
        "landmark_registration_residual": np.linalg.norm(embed(ict["neutral"], corners, weights) - warped, axis=1).astype(np.float32),
        "mesh_vertices": ict["neutral"][kept].astype(np.float32),
        "mesh_identity_basis": ict["identity_basis"][:, kept].astype(np.float16),
        "mesh_expression_basis": ict["expression_basis"][:, kept].astype(np.float16),
        "mesh_triangles": render_triangles.astype(np.int32),
        "mesh_source_vertices": kept.astype(np.int32),
        # The 68 iBUG points as ICT vertices, for fitting the optional face-alignment backend's detections.
        "ibug68_mean": ict["neutral"][ict["landmarks68"]].astype(np.float32),
        "ibug68_identity_basis": ict["identity_basis"][:, ict["landmarks68"]].astype(np.float32),
        "ibug68_expression_basis": ict["expression_basis"][:, ict["landmarks68"]].astype(np.float32),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "face_model")
    parser.add_argument("--out", type=Path, default=REPO / "reenact" / "assets" / "face_model.npz")
    args = parser.parse_args()
    asset = build(args.source)
    np.savez_compressed(args.out, **asset)
    print(f"wrote {args.out}: {args.out.stat().st_size / 1e6:.2f} MB, {len(asset['mesh_vertices'])} mesh vertices, "
          f"{len(asset['mesh_triangles'])} triangles, landmark residual median "
          f"{np.median(asset['landmark_registration_residual']):.3f} cm, max {asset['landmark_registration_residual'].max():.3f} cm")


if __name__ == "__main__":
    main()
