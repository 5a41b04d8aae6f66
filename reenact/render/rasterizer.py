"""A vectorised triangle rasterizer in torch (CPU or GPU): z-buffer and per-pixel interpolation.

It works as a visibility buffer. Each triangle's depth and attributes become plane equations
in screen space (value = a·x + b·y + c), which is linear interpolation with barycentric
weights. A triangle's pixel candidates are the pixel centres in its bounding box; triangles are
sorted into classes by box width and height so each class enumerates a small fixed grid. A
candidate's key packs its depth (order-preserving integer bits of the float) above its triangle
number, so one scatter-min over all candidates is both the z-test and a deterministic
tie-break (the triangle sorted first wins). Attributes are evaluated only at the pixels each
triangle won. A batch of meshes is drawn in one pass, which amortises the per-call overhead.
"""

from __future__ import annotations

import torch

# Bounding-box widths and heights (pixels) of the triangle classes; larger triangles are skipped,
# which only happens for meshes far bigger than the image.
BOX_SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 24, 32, 48, 64, 96, 128)
EMPTY = torch.iinfo(torch.int64).max
INSIDE_TOLERANCE = -1e-6
# Pixels whose centre is this close outside a triangle's bounds are still tested, so centres on an
# edge, which the inside test's tolerance accepts, are never missed.
BOX_MARGIN = 1e-3


def rasterize(vertices: torch.Tensor, triangles: torch.Tensor, attributes: torch.Tensor,
              size: tuple[int, int], cull_backfaces: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw a batch of meshes that share triangles and per-vertex attributes.

    vertices: (B, V, 3) x, y in pixels (y down) and depth (larger is farther); triangles: (F, 3);
    attributes: (V, C), or (B, V, C) for each frame its own, interpolated per pixel. Returns (B, H, W, C) images (zeros outside the
    mesh) and (B, H, W) masks.
    """
    width, height = size
    batch, channels = vertices.shape[0], attributes.shape[-1]
    corners = vertices.float().index_select(1, triangles.view(-1)).view(-1, 3, 3)   # (B·F, 3, 3)
    face_of = torch.arange(len(triangles), device=vertices.device).repeat(batch)
    frame_of = torch.arange(batch, device=vertices.device).repeat_interleave(len(triangles))
    signed_area = _edge(corners[:, 0, :2], corners[:, 1, :2], corners[:, 2, :2])
    keep = signed_area.abs() > 1e-9
    if cull_backfaces:
        keep &= signed_area < 0                          # counter-clockwise on screen faces the camera
    corners, face_of, frame_of = corners[keep], face_of[keep], frame_of[keep]
    # Sorted by box class, each class's triangles are one contiguous slice.
    corners, face_of, frame_of, low, classes = _sort_by_box_class(corners, face_of, frame_of, width, height)
    edges = _edge_planes(corners)
    depth_planes = torch.einsum("nep,ne->np", edges, corners[:, :, 2])
    nearest = torch.full((batch * height * width,), EMPTY, dtype=torch.int64, device=vertices.device)
    for box, first, count in classes:
        part = slice(first, first + count)
        pixel, key = _class_candidates(low[part], edges[part], depth_planes[part], frame_of[part], first, box, size)
        nearest.scatter_reduce_(0, pixel, key, reduce="amin")
    covered = torch.nonzero(nearest != EMPTY).squeeze(1)
    winner = nearest[covered] & 0xFFFFFFFF
    if attributes.dim() == 3:      # each frame's own
        corner_values = attributes.float()[frame_of[:, None], triangles.index_select(0, face_of)]
    else:
        corner_values = attributes.float().index_select(0, triangles.view(-1)).view(len(triangles), 3, channels)
        corner_values = corner_values.index_select(0, face_of)
    value_planes = torch.einsum("nep,nec->npc", edges, corner_values).reshape(-1, 3 * channels)
    images = attributes.new_zeros(batch * height * width, channels)
    images[covered] = _evaluate(value_planes.index_select(0, winner).view(-1, 3, channels), covered, size).to(attributes.dtype)
    masks = torch.zeros(batch * height * width, dtype=torch.bool, device=vertices.device)
    masks[covered] = True
    return images.view(batch, height, width, channels), masks.view(batch, height, width)


def _edge(a: torch.Tensor, b: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return (b[..., 0] - a[..., 0]) * (p[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (p[..., 0] - a[..., 0])


def _edge_planes(corners: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3): for each corner, its barycentric weight as the plane (a, b, c) of w = a·x + b·y + c."""
    a, b, c = corners[:, 0, :2], corners[:, 1, :2], corners[:, 2, :2]
    area = _edge(a, b, c)
    planes = []
    for start, end in ((b, c), (c, a), (a, b)):            # the edge opposite each corner
        c_x = -(end[:, 1] - start[:, 1]) / area
        c_y = (end[:, 0] - start[:, 0]) / area
        planes.append(torch.stack([c_x, c_y, -(c_x * start[:, 0] + c_y * start[:, 1])], dim=-1))
    return torch.stack(planes, dim=1)


def _evaluate(planes: torch.Tensor, pixel: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Planes (P, 3, C) at the centres of flat pixel indices (P,) → (P, C)."""
    width, height = size
    x = (pixel % width).to(planes.dtype)[:, None] + 0.5
    y = ((pixel // width) % height).to(planes.dtype)[:, None] + 0.5
    return planes[:, 0] * x + planes[:, 1] * y + planes[:, 2]


def _pixel_box(corners: torch.Tensor, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First and last pixel column and row whose centres (i + 0.5) can fall inside each triangle."""
    low = torch.ceil(corners[..., :2].amin(dim=1) - 0.5 - BOX_MARGIN).clamp_min(0)
    high = torch.floor(corners[..., :2].amax(dim=1) - 0.5 + BOX_MARGIN)
    return low, torch.minimum(high, torch.tensor([width - 1, height - 1], device=corners.device, dtype=corners.dtype))


def _sort_by_box_class(corners: torch.Tensor, face_of: torch.Tensor, frame_of: torch.Tensor, width: int, height: int):
    """Order triangles by the smallest (box width, box height) class that holds their pixel box;
    returns the reordered inputs, each triangle's first pixel column and row, and (box, first,
    count) per class. Off-screen triangles are dropped."""
    low, high = _pixel_box(corners, width, height)
    extent = high - low + 1
    sizes = torch.tensor(BOX_SIZES, device=corners.device, dtype=corners.dtype)
    size_class = torch.searchsorted(sizes, extent.contiguous())
    visible = (extent > 0).all(dim=1) & (size_class < len(BOX_SIZES)).all(dim=1)
    keys = (size_class[:, 0] * len(BOX_SIZES) + size_class[:, 1])[visible]
    # A stable sort keeps each class in face order, so a frame draws the same alone or in a batch.
    sorted_keys, by_class = torch.sort(keys, stable=True)
    order = torch.nonzero(visible).squeeze(1).index_select(0, by_class)
    classes, counts = torch.unique_consecutive(sorted_keys, return_counts=True)
    firsts = torch.cumsum(counts, 0) - counts
    slices = [((BOX_SIZES[key // len(BOX_SIZES)], BOX_SIZES[key % len(BOX_SIZES)]), first, count)
              for key, first, count in zip(classes.tolist(), firsts.tolist(), counts.tolist())]
    return (corners.index_select(0, order), face_of.index_select(0, order), frame_of.index_select(0, order),
            low.index_select(0, order), slices)


def _class_candidates(low: torch.Tensor, edges: torch.Tensor, depth_planes: torch.Tensor, frame: torch.Tensor,
                      first: int, box: tuple[int, int], size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixel index, depth-and-triangle key) of every box candidate of one class, triangles numbered from ``first``."""
    width, height = size
    columns = torch.arange(box[0], device=low.device, dtype=low.dtype)
    rows = torch.arange(box[1], device=low.device, dtype=low.dtype)
    xs = low[:, :1] + columns.repeat(box[1])[None]               # (G, box_w·box_h) pixel columns
    ys = low[:, 1:] + rows.repeat_interleave(box[0])[None]
    centre_x, centre_y = xs + 0.5, ys + 0.5
    inside = (xs < width) & (ys < height)
    for corner in range(3):
        inside &= edges[:, corner, :1] * centre_x + edges[:, corner, 1:2] * centre_y + edges[:, corner, 2:] >= INSIDE_TOLERANCE
    depth = depth_planes[:, :1] * centre_x + depth_planes[:, 1:2] * centre_y + depth_planes[:, 2:]
    # Sorting by the float's bits equals sorting by value once negative floats' magnitude bits are flipped.
    bits = depth.contiguous().view(torch.int32)
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).long()
    triangle = torch.arange(first, first + len(low), device=low.device)
    key = torch.where(inside, (ordered << 32) | triangle[:, None], EMPTY)
    # Outside candidates point at pixel 0, where their key (EMPTY) never wins the minimum.
    pixel = torch.where(inside, frame[:, None] * (height * width) + (ys * width + xs).long(), 0)
    return pixel.view(-1), key.view(-1)
