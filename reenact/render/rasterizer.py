"""A vectorised triangle rasterizer in torch (CPU or GPU): z-buffer and per-pixel interpolation.

Each triangle's pixel candidates are the pixel centres in its bounding box. Triangles are
grouped by box width and height so each group enumerates a small fixed grid; the z-buffer is a
scatter-min over all candidates, and ties go to the highest candidate index, so the result is
deterministic. A batch of meshes is drawn in one pass, which amortises the per-call overhead.
"""

from __future__ import annotations

import torch

# Bounding-box widths and heights (pixels) of the triangle groups; larger triangles are skipped,
# which only happens for meshes far bigger than the image.
BOX_SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)


def rasterize(vertices: torch.Tensor, triangles: torch.Tensor, attributes: torch.Tensor,
              size: tuple[int, int], cull_backfaces: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw a batch of meshes that share triangles and per-vertex attributes.

    vertices: (B, V, 3) x, y in pixels (y down) and depth (larger is farther); triangles: (F, 3);
    attributes: (V, C), interpolated per pixel. Returns (B, H, W, C) images (zeros outside the
    mesh) and (B, H, W) masks.
    """
    width, height = size
    batch = vertices.shape[0]
    corners = vertices[:, triangles].reshape(-1, 3, 3)                 # (B·F, 3, 3)
    face_of = torch.arange(len(triangles), device=vertices.device).repeat(batch)
    frame_of = torch.arange(batch, device=vertices.device).repeat_interleave(len(triangles))
    signed_area = _edge(corners[:, 0, :2], corners[:, 1, :2], corners[:, 2, :2])
    keep = signed_area.abs() > 1e-9
    if cull_backfaces:
        keep &= signed_area < 0                          # counter-clockwise on screen faces the camera
    corners, face_of, frame_of = corners[keep], face_of[keep], frame_of[keep]
    pixel, depth, weights, candidate_triangle = _candidates(corners, width, height)
    pixel = pixel + frame_of[candidate_triangle] * (height * width)
    images = attributes.new_zeros(batch * height * width, attributes.shape[1])
    masks = torch.zeros(batch * height * width, dtype=torch.bool, device=vertices.device)
    if len(pixel):
        winner = _depth_test(pixel, depth, batch * height * width)
        pixel, weights = pixel[winner], weights[winner]
        face = face_of[candidate_triangle[winner]]
        images[pixel] = (attributes[triangles[face]] * weights[..., None]).sum(dim=1)
        masks[pixel] = True
    return images.view(batch, height, width, -1), masks.view(batch, height, width)


def _edge(a: torch.Tensor, b: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return (b[..., 0] - a[..., 0]) * (p[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (p[..., 0] - a[..., 0])


def _candidates(corners: torch.Tensor, width: int, height: int):
    """Pixel index, depth, barycentric weights and triangle index of every covered pixel centre."""
    low = torch.floor(corners[..., :2].amin(dim=1) - 0.5).clamp_min(0)
    high = torch.ceil(corners[..., :2].amax(dim=1) - 0.5)
    high = torch.minimum(high, torch.tensor([width - 1, height - 1], device=corners.device, dtype=corners.dtype))
    extent = high - low + 1
    # Each triangle goes to the smallest (box width, box height) class that holds it.
    sizes = torch.tensor(BOX_SIZES, device=corners.device, dtype=corners.dtype)
    size_class = torch.searchsorted(sizes, extent.contiguous())
    visible = (extent > 0).all(dim=1) & (size_class < len(BOX_SIZES)).all(dim=1)
    keys = size_class[:, 0] * len(BOX_SIZES) + size_class[:, 1]
    pieces = []
    for key in torch.unique(keys[visible]).tolist():
        group = torch.nonzero(visible & (keys == key)).flatten()
        box = (BOX_SIZES[key // len(BOX_SIZES)], BOX_SIZES[key % len(BOX_SIZES)])
        pieces.append(_group_candidates(corners[group], low[group], group, box, width, height))
    if not pieces:
        empty = corners.new_zeros(0)
        return empty.long(), empty, corners.new_zeros(0, 3), empty.long()
    return tuple(torch.cat(parts) for parts in zip(*pieces))


def _edge_coefficients(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Edge function a→b as c_x·x + c_y·y + c_0, divided by the triangle's doubled area."""
    c_x = -(b[:, 1] - a[:, 1]) / scale
    c_y = (b[:, 0] - a[:, 0]) / scale
    c_0 = -(c_x * a[:, 0] + c_y * a[:, 1])
    return c_x[:, None], c_y[:, None], c_0[:, None]


def _group_candidates(corners: torch.Tensor, low: torch.Tensor, triangle: torch.Tensor, box: tuple[int, int],
                      width: int, height: int):
    columns = torch.arange(box[0], device=corners.device, dtype=corners.dtype)
    rows = torch.arange(box[1], device=corners.device, dtype=corners.dtype)
    xs = low[:, :1] + columns.repeat(box[1])[None]               # (G, box_w·box_h) pixel columns
    ys = low[:, 1:] + rows.repeat_interleave(box[0])[None]
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    area = _edge(a[:, :2], b[:, :2], c[:, :2])
    weights = []
    for start, end in ((b, c), (c, a), (a, b)):
        c_x, c_y, c_0 = _edge_coefficients(start, end, area)
        weights.append(c_x * (xs + 0.5) + c_y * (ys + 0.5) + c_0)
    inside = (weights[0] >= -1e-6) & (weights[1] >= -1e-6) & (weights[2] >= -1e-6) & (xs < width) & (ys < height)
    # One flat index is much cheaper than (row, column) pairs for the gathers below.
    flat = torch.nonzero(inside.view(-1)).squeeze(1)
    rows = torch.div(flat, xs.shape[1], rounding_mode="floor")
    chosen = torch.stack([w.view(-1)[flat] for w in weights], dim=-1)
    depth = (chosen * corners[:, :, 2][rows]).sum(-1)
    pixel = (ys.view(-1)[flat] * width + xs.view(-1)[flat]).long()
    return pixel, depth, chosen, triangle[rows]


def _depth_test(pixel: torch.Tensor, depth: torch.Tensor, pixels: int) -> torch.Tensor:
    nearest = torch.full((pixels,), float("inf"), device=depth.device, dtype=depth.dtype)
    nearest.scatter_reduce_(0, pixel, depth, reduce="amin")
    front = depth <= nearest[pixel]
    order = torch.arange(len(pixel), device=pixel.device)
    last = torch.full((pixels,), -1, device=pixel.device, dtype=torch.long)
    last.scatter_reduce_(0, pixel[front], order[front], reduce="amax")
    return front & (last[pixel] == order)
