"""Rotations and the perspective camera shared by fitting, rendering and retargeting.

The camera sits at the origin looking down -z (the face model's +z points at it); image y
grows downwards. A model point X maps to camera space as R X + t.
"""

from __future__ import annotations

import math

import torch


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, (..., 3) → (..., 3, 3); smooth at zero."""
    angle = axis_angle.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    axis = axis_angle / angle
    cross = skew(axis)
    sin, cos = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(cross)
    return eye + sin * cross + (1 - cos) * cross @ cross


def skew(vectors: torch.Tensor) -> torch.Tensor:
    """(..., 3) → (..., 3, 3) [v]×, with [v]× u = v × u."""
    x, y, z = vectors.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*vectors.shape[:-1], 3, 3)


def rotation_left_jacobian(axis_angle: torch.Tensor) -> torch.Tensor:
    """(3,) → (3, 3) J with R(ω + δ) ≈ exp(J δ) R(ω), so that d(R(ω) p)/dω = -[R(ω) p]× J."""
    angle = float(axis_angle.norm())
    cross = skew(axis_angle)
    if angle < 1e-4:     # the series' first terms: the closed forms lose all precision near zero
        first, second = 0.5 - angle ** 2 / 24, 1 / 6 - angle ** 2 / 120
    else:
        first, second = (1 - math.cos(angle)) / angle ** 2, (angle - math.sin(angle)) / angle ** 3
    return torch.eye(3, dtype=axis_angle.dtype) + first * cross + second * cross @ cross


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    cos = ((matrix.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1 + 1e-7, 1 - 1e-7)
    angle = torch.acos(cos)
    vector = torch.stack([matrix[..., 2, 1] - matrix[..., 1, 2], matrix[..., 0, 2] - matrix[..., 2, 0],
                          matrix[..., 1, 0] - matrix[..., 0, 1]], dim=-1)
    return vector / (2 * torch.sin(angle)[..., None]).clamp_min(1e-8) * angle[..., None]


def matrix_to_euler_degrees(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3) pitch (about x), yaw (about y), roll (about z) in degrees, for R = Rz Ry Rx."""
    yaw = torch.asin((-matrix[..., 2, 0]).clamp(-1, 1))
    pitch = torch.atan2(matrix[..., 2, 1], matrix[..., 2, 2])
    roll = torch.atan2(matrix[..., 1, 0], matrix[..., 0, 0])
    return torch.stack([pitch, yaw, roll], dim=-1) * (180 / math.pi)


def project(points: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor, focal: torch.Tensor,
            center: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., N, 3) model points → (..., N, 2) pixels and (..., N) depth in front of the camera."""
    camera = points @ rotation.transpose(-1, -2) + translation[..., None, :]
    depth = (-camera[..., 2]).clamp_min(1e-3)
    pixels = torch.stack([center[0] + focal * camera[..., 0] / depth, center[1] - focal * camera[..., 1] / depth], dim=-1)
    return pixels, depth
