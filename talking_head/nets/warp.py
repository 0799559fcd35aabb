"""Landmark-driven dense warp: the shot's own pixels moved to the target's landmarks (DESIGN §7).

A thin-plate spline (TPS) maps every output pixel p of the target frame to a
position f(p) in the shot, fitted so that f sends the target's 68 landmarks
(plus 8 fixed anchors on the crop border: corners and edge midpoints) to the
shot's. Sampling the shot at f(p) (``grid_sample``, bilinear) puts the shot's
face into the target's pose and expression; identity comes from the photo's
own pixels, with no training.

Coordinates are crop pixels with pixel centres at integers (the convention of
``framing.points_to_crop`` and cv2), converted to ``grid_sample``'s
normalized coordinates with ``align_corners=False``.

Speed and exactness: a TPS is smooth, so it is evaluated on a coarse grid
over the crop and a finer one over the landmarks' box, upsampled bilinearly,
and the residual at the landmarks is put back by compact bumps
(:func:`sampling_grid`): the warped landmarks land within 0.5 px of the
targets (tests) at a fraction of the cost of evaluating the 76 radial terms
at all 65,536 pixels of a 256² crop.

K shots: each shot is warped to the target, and the K warps are blended with
weights from how close each shot's landmarks are to the target's
(:func:`shot_weights`: a softmax over the negative mean landmark distance,
in units of the inter-ocular distance, with temperature ``temperature``).
The shot whose expression and pose match the target best dominates; a
uniform mean would ghost K mouths over each other. Inside the lips the shot
of the nearest mouth shape is preferred (:mod:`talking_head.nets.shot_blend`).

:func:`warp_person_crops` is the warp alone on uint8 crops (numpy in and out):
the ``warp`` baseline of ``evaluate`` and a preview of what a warp-guided G starts from.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from talking_head.nets import shot_blend
from talking_head.nets.shot_blend import DEFAULT_TEMPERATURE, blend_warps, inter_ocular, shot_weights
from talking_head.nets.tensors import images_to_tensor, tensor_to_images

__all__ = ["DEFAULT_TEMPERATURE", "inter_ocular", "shot_weights"]  # re-exported: they were defined here

# Smoothing of the TPS fit in normalized units. Keeps the system solvable when two
# target landmarks coincide (inner lips of a closed mouth) at a cost of ≪ 0.1 px.
DEFAULT_REGULARIZATION = 1e-6
# Target landmarks closer than this (pixels) are merged (see merge_coincident).
MERGE_RADIUS = 0.5
# Points per chunk when evaluating a TPS: keeps the (B, chunk, P) kernel block in cache.
_EVAL_CHUNK = 2048


def border_anchors(image_size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The 8 fixed control points on the crop border (corners and edge midpoints), pixels ``(8, 2)``."""
    lo, mid, hi = 0.0, (image_size - 1) / 2.0, float(image_size - 1)
    points = [(lo, lo), (mid, lo), (hi, lo), (lo, mid), (hi, mid), (lo, hi), (mid, hi), (hi, hi)]
    return torch.tensor(points, dtype=torch.float32, device=device)


def pixels_to_normalized(points: torch.Tensor, image_size: int) -> torch.Tensor:
    """Pixel coordinates (centres at integers) → ``grid_sample`` coordinates in [-1, 1] (align_corners=False)."""
    return (2.0 * points + 1.0) / image_size - 1.0


def normalized_to_pixels(points: torch.Tensor, image_size: int) -> torch.Tensor:
    """Inverse of :func:`pixels_to_normalized`."""
    return ((points + 1.0) * image_size - 1.0) / 2.0


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a_i − b_j|² of point sets ``(B, N, 2)`` and ``(B, M, 2)`` → ``(B, N, M)``, per axis (exact at 0, unlike cdist)."""
    dx = a[:, :, None, 0] - b[:, None, :, 0]
    dy = a[:, :, None, 1] - b[:, None, :, 1]
    return dx.square_().add_(dy.square_())


def _solve(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Batched ``matrix⁻¹ · rhs`` for the small (≤ 80²) systems here.

    On the CPU this goes through numpy: torch's LAPACK call right after a
    multi-threaded torch op waited 100–160 ms for its OpenMP threads on a
    busy 2-core machine (numpy: well under 1 ms for these sizes).
    """
    if matrix.device.type != "cpu":
        return torch.linalg.solve(matrix, rhs)
    solution = np.linalg.solve(matrix.detach().numpy(), rhs.detach().numpy())
    return torch.from_numpy(solution)


class ThinPlateSpline:
    """A batch of fitted TPS maps R² → R² (normalized coordinates).

    ``ThinPlateSpline(control, values)`` fits, for each batch entry, the map
    sending ``control[b, i]`` to ``values[b, i]``; both ``(B, P, 2)``.
    :meth:`__call__` evaluates it at any points ``(B, M, 2)``.
    """

    def __init__(
        self, control: torch.Tensor, values: torch.Tensor, regularization: float = DEFAULT_REGULARIZATION
    ) -> None:
        if control.shape != values.shape or control.dim() != 3 or control.shape[-1] != 2:
            raise ValueError(
                f"control and values must both be (B, P, 2), got {control.shape} and {values.shape}"
            )
        count = control.shape[1]
        # Solve in float64: the (P + 3)² system is tiny and its conditioning poor in float32.
        c = control.double()
        sq = _squared_distances(c, c)
        kernel = sq * torch.log(sq.clamp_min(1e-12))  # (B, P, P): U(r) = r² log r², U(0) = 0
        kernel.diagonal(dim1=1, dim2=2).add_(regularization)
        affine = F.pad(c, (1, 0), value=1.0)  # (B, P, 3): 1, x, y
        system = torch.cat(
            [torch.cat([kernel, affine], dim=2), F.pad(affine.transpose(1, 2), (0, 3))], dim=1
        )  # (B, P + 3, P + 3)
        solution = _solve(system, F.pad(values.double(), (0, 0, 0, 3))).float()  # (B, P + 3, 2)
        self.control = control.float()
        self.weights = solution[:, :count]  # (B, P, 2): radial coefficients
        self.affine = solution[:, count:]  # (B, 3, 2): offset, x and y columns

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """Evaluate at ``points`` ``(B, M, 2)`` → ``(B, M, 2)``."""
        control_t = self.control.transpose(1, 2)  # (B, 2, P)
        control_sq = self.control.square().sum(-1)[:, None, :]  # (B, 1, P)
        out = torch.baddbmm(self.affine[:, :1], points, self.affine[:, 1:])  # affine part (B, M, 2)
        for start in range(0, points.shape[1], _EVAL_CHUNK):
            chunk = points[:, start : start + _EVAL_CHUNK]
            # |p − c|² = |p|² − 2 p·c + |c|², one (B, m, P) block.
            sq = torch.baddbmm(chunk.square().sum(-1, keepdim=True), chunk, control_t, alpha=-2.0)
            sq = sq.add_(control_sq).clamp_min_(1e-12)
            out[:, start : start + _EVAL_CHUNK] += torch.bmm(sq.log().mul_(sq), self.weights)
        return out

    def on_grids(self, *axes: tuple[torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
        """Evaluate on grids ``xs × ys`` (``(B, nx)``, ``(B, ny)`` a pair) → a field ``(B, 2, ny, nx)`` each (rows = y).

        On a grid |p − c|² = (x − cx)² + (y − cy)² is a broadcast sum of per-axis tables. On the CPU a
        few entries go at a time (each thread's share of their (P, points) block stays in cache), each
        entry's block 64-byte aligned with its own product: MKL's rounding depends on alignment, and an
        entry must come out the same in any batch. For grids of a few thousand points, not every pixel.
        """
        batch, count, _ = self.control.shape
        cx, cy = self.control[:, :, 0:1], self.control[:, :, 1:2]  # (B, P, 1)
        # The 1e-12 (≪ a float32 ulp of any r² that matters) keeps log finite where a sample is a control point.
        tables = [
            ((ys[:, None] - cy).square_()[..., None], (xs[:, None] - cx).square_().add_(1e-12)[:, :, None])
            for xs, ys in axes
        ]  # (B, P, ny, 1), (B, P, 1, nx)
        sizes = [xs.shape[1] * ys.shape[1] for xs, ys in axes]
        total = sum(sizes)
        weights = self.weights.transpose(1, 2)  # (B, 2, P)
        radial = self.control.new_empty(batch, 2, total)
        cpu = self.control.device.type == "cpu"
        group = min(batch, max(2, torch.get_num_threads())) if cpu else batch
        sq = self.control.new_empty(group, count, -(-total // 16) * 16)  # (g, P, points + pad): r²
        sq[:, :, total:] = 1.0  # finite logs in the padding
        terms = torch.empty_like(sq)  # r² log r²
        for start in range(0, batch, group):
            entries = slice(start, min(start + group, batch))
            size = entries.stop - start
            for (dy2, dx2), into in zip(tables, sq[:size, :, :total].split(sizes, dim=2)):
                torch.add(dy2[entries], dx2[entries], out=into.view(size, count, dy2.shape[2], dx2.shape[3]))
            torch.log(sq[:size], out=terms[:size])
            terms[:size].mul_(sq[:size])
            if cpu:  # into fresh (aligned) tensors, not slices of ``radial``
                for b in range(start, entries.stop):
                    radial[b] = weights[b] @ terms[b - start, :, :total]
            else:
                radial[entries] = torch.bmm(weights[entries], terms[:size, :, :total])
        a = self.affine[..., None, None]  # (B, 3, 2, 1, 1): offset, x and y columns
        return [
            (a[:, 0] + a[:, 1] * xs[:, None, None] + a[:, 2] * ys[:, None, :, None]).add_(
                part.view(batch, 2, ys.shape[1], xs.shape[1])
            )
            for (xs, ys), part in zip(axes, radial.split(sizes, dim=2))
        ]


def merge_coincident(
    target_points: torch.Tensor, shot_points: torch.Tensor, radius: float = MERGE_RADIUS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Make target landmarks that (nearly) coincide consistent: ``(B, P, 2)`` pixels each.

    A closed mouth puts upper and lower inner-lip points on top of each other
    (6 % of our training frames); no map can send one point to two places, and
    a spline asked to would put huge, cancelling coefficients on them. Points
    closer than ``radius`` px are given the mean of their shot positions, and
    each one after the first is moved ``radius`` px aside so the system stays
    regular; with equal values the spline then stays smooth there.
    """
    near = (_squared_distances(target_points, target_points) < radius**2).float()  # (B, P, P)
    group = near.sum(-1, keepdim=True)  # (B, P, 1): how many points each one's group has
    merged_shot = near @ shot_points / group  # mean over each point's group
    has_earlier = near.tril(-1).amax(-1) > 0  # (B, P): not the first of its group
    count = near.shape[-1]
    angle = torch.arange(count, device=near.device, dtype=target_points.dtype) * 2.39996  # golden angle
    aside = torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1) * radius  # (P, 2)
    moved = target_points + has_earlier[..., None] * aside
    return moved, torch.where(group > 1, merged_shot, shot_points)


def _cell_centres(count: int, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """``count`` cell centres evenly spanning [low, high] per batch entry: ``(B,)`` bounds → ``(B, count)``."""
    steps = (torch.arange(count, device=low.device, dtype=torch.float32) + 0.5) / count  # (count,)
    return low[:, None] + (high - low)[:, None] * steps


def sampling_grid(
    target_points: torch.Tensor,
    shot_points: torch.Tensor,
    image_size: int,
    grid_size: int | None = None,
    regularization: float = DEFAULT_REGULARIZATION,
) -> torch.Tensor:
    """Where each target pixel samples its shot: ``grid_sample`` grids ``(B, S, S, 2)``.

    ``target_points`` and ``shot_points``: ``(B, 68, 2)`` pixels of one
    (target, shot) pair per batch entry.

    The TPS is evaluated on two grids and upsampled bilinearly: a coarse one
    over the whole crop (S / 8 + 1 samples a side, where the field is nearly
    affine) and a fine one of ``grid_size``² cells (default 5·S / 32, about
    4 px apart for a 256² face crop) over the box of the target's landmarks,
    where the field bends; the fine field is used inside that box. What
    interpolation loses at the landmarks themselves (up to ~1 px where points
    crowd, at the lips and eyelids) is put back by compact bumps around them
    (:func:`_correct_at_landmarks`), so the warp is exact there.
    ``grid_size = S`` evaluates the TPS at every pixel instead.
    """
    # Coordinates stay float32 under a caller's bf16 autocast: a pixel is 1/128 of the range.
    with torch.autocast(target_points.device.type, enabled=False):
        return _sampling_grid(
            target_points.float(), shot_points.float(), image_size, grid_size, regularization
        )


def _sampling_grid(
    target_points: torch.Tensor,
    shot_points: torch.Tensor,
    image_size: int,
    grid_size: int | None,
    regularization: float,
) -> torch.Tensor:
    batch = target_points.shape[0]
    device = target_points.device
    anchors = border_anchors(image_size, device).expand(batch, -1, -1)  # (B, 8, 2)
    target_points, shot_points = merge_coincident(target_points.float(), shot_points.float())
    control = pixels_to_normalized(torch.cat([target_points, anchors], dim=1), image_size)
    values = pixels_to_normalized(torch.cat([shot_points, anchors], dim=1), image_size)
    tps = ThinPlateSpline(control, values, regularization)
    ones = torch.ones(1, device=device)
    pixels = _cell_centres(image_size, -ones, ones)  # (1, S): normalized pixel centres
    if grid_size == image_size:  # exact: every pixel centre, point by point
        points = torch.stack(torch.meshgrid(pixels[0], pixels[0], indexing="xy"), dim=-1)  # (S, S, 2): x, y
        return tps(points.view(1, -1, 2).expand(batch, -1, -1)).view(batch, image_size, image_size, 2)
    fine_size = grid_size or max(16, image_size // 8)
    coarse_size = max(8, image_size // 8) + 1
    # Coarse samples from the first to the last pixel centre, so that every pixel lies
    # between two samples (a cell-centred grid would hold the edge values over the outer half cell).
    edge = 1.0 - 1.0 / image_size
    coarse_axis = torch.linspace(-edge, edge, coarse_size, device=device).expand(batch, -1)
    # The landmarks' box with a margin of 3 fine cells, in normalized coordinates; x then y: (2·B,).
    target = control[:, :68]
    low, high = target.amin(dim=1).t(), target.amax(dim=1).t()  # (2, B)
    margin = 3 * (high - low).amax(dim=0) / fine_size  # (B,)
    low, high = (low - margin).clamp(-1.0, 1.0).reshape(-1), (high + margin).clamp(-1.0, 1.0).reshape(-1)
    fine_x, fine_y = _cell_centres(fine_size, low, high).chunk(2)  # (B, n) each
    coarse, fine = tps.on_grids((coarse_axis, coarse_axis), (fine_x, fine_y))  # (B, 2, c, c), (B, 2, n, n)
    # The coarse grid is the same for every entry: one interpolation matrix, broadcast over the batch.
    spread, _ = _interpolation_matrix(pixels, -edge * ones, edge * ones, coarse_size, centred=False)
    # The fine grid's, (B, S, n) per axis, and which pixels it covers, (B, S) per axis.
    weights, inside = _interpolation_matrix(pixels, low, high, fine_size, centred=True)
    (cols, rows), (inside_x, inside_y) = weights.chunk(2), inside.chunk(2)
    field = _assemble_field(spread, coarse, (fine, rows, cols, inside_y, inside_x))
    return _correct_at_landmarks(field, target, values[:, :68], radius=image_size / 48)


def _assemble_field(
    spread: torch.Tensor, coarse: torch.Tensor, fine: tuple[torch.Tensor, ...]
) -> torch.Tensor:
    """The upsampled field (B, S, S, 2): the coarse samples everywhere, the fine ones inside each entry's box.

    ``coarse`` (B, 2, c, c) goes through ``spread`` (1, S, c) both ways; ``fine`` is the fine samples
    (B, 2, n, n), their ``rows`` and ``cols`` (B, S, n) and the pixels they cover, (B, S) per axis: a
    range of rows × a range of columns. The first, small products are laid out so that the second
    ones write the field in ``grid_sample``'s layout, one entry at a time.
    """
    samples, rows, cols, inside_y, inside_x = fine
    batch, size = rows.shape[:2]

    def across(samples: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:  # → (B, n, S·2): [b, r, (j, ch)]
        n = samples.shape[-1]
        product = samples.reshape(batch, 2 * n, n) @ cols.transpose(1, 2)  # (B, 2·n, S): [b, (ch, r), j]
        return product.view(batch, 2, n, size).permute(0, 2, 3, 1).reshape(batch, n, 2 * size)

    field = samples.new_empty(batch, size, 2 * size)  # [b, i, (j, ch)]
    first_y, first_x = inside_y.to(torch.uint8).argmax(1), inside_x.to(torch.uint8).argmax(1)
    bounds = torch.stack([first_y, inside_y.sum(1), first_x, inside_x.sum(1)], dim=1).tolist()  # (B, 4)
    parts = zip(field, across(coarse, spread), rows, across(samples, cols), bounds)
    for out, coarse_b, rows_b, fine_b, (y0, height, x0, width) in parts:
        torch.mm(spread[0], coarse_b, out=out)
        if height and width:
            box = slice(2 * x0, 2 * (x0 + width))  # the box's columns, both components
            torch.mm(rows_b[y0 : y0 + height], fine_b[:, box], out=out[y0 : y0 + height, box])
    return field.view(batch, size, size, 2)


def _interpolation_matrix(
    positions: torch.Tensor, low: torch.Tensor, high: torch.Tensor, count: int, centred: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear interpolation from ``count`` samples spanning [low, high] to ``positions``, as a matrix.

    ``positions`` (B or 1, S); ``low``, ``high`` (B,). Samples sit at cell centres (``centred``) or from
    ``low`` to ``high`` inclusive. Returns the weights (B, S, count), two non-zero entries a row, and
    whether each position lies within the samples (B, S); rows outside are clamped to the end samples.
    """
    span = (high - low)[:, None]
    t = (positions - low[:, None]) / span * (count if centred else count - 1) - (0.5 if centred else 0.0)
    inside = (t >= 0) & (t <= count - 1)
    t = t.clamp(0, count - 1)
    index = t.floor().clamp(max=count - 2).long()  # (B, S)
    frac = (t - index).unsqueeze(-1)
    weights = torch.zeros(*t.shape, count, device=t.device, dtype=t.dtype)
    weights.scatter_(2, index.unsqueeze(-1), 1 - frac)
    weights.scatter_add_(2, index.unsqueeze(-1) + 1, frac)
    return weights, inside


def _bump(r: torch.Tensor) -> torch.Tensor:
    """Wendland's compactly supported 1-D bump (1 − |r|)³(3|r| + 1) for |r| < 1, else 0 (positive definite)."""
    r = r.abs().clamp_(max=1.0)
    rest = 1 - r
    return rest.square().mul_(rest).mul_(r.mul_(3).add_(1))


def _correct_at_landmarks(
    field: torch.Tensor, target: torch.Tensor, values: torch.Tensor, radius: float
) -> torch.Tensor:
    """Make an interpolated field exact at the control points with compact bumps around them.

    ``field`` (B, S, S, 2) is the upsampled TPS (changed in place and returned); ``target`` and
    ``values`` (B, P, 2) normalized: where the field must send each target landmark. The residuals
    there are spread by bumps φ(dx / r)·φ(dy / r) of radius r = ``radius`` pixels (a product of
    positive-definite Wendland functions, so positive definite, and separable: cheap to evaluate)
    whose amplitudes solve the P × P interpolation system; the correction is exact at every
    landmark, smooth, and zero farther than ``radius`` (per axis) from all of them.
    """
    batch, size = field.shape[:2]
    # The field at the landmarks, bilinearly between pixel centres (clamped to the image).
    at_landmarks = F.grid_sample(
        field.permute(0, 3, 1, 2), target[:, :, None], padding_mode="border", align_corners=False
    )[..., 0]  # (B, 2, P)
    residual = values - at_landmarks.transpose(1, 2)  # (B, P, 2)
    # Per axis (x, then y): the centres in pixels, the bumps' overlaps.
    centres = normalized_to_pixels(target, size).transpose(1, 2).contiguous()  # (B, 2, P)
    overlap = _bump((centres[..., :, None] - centres[..., None, :]) / radius)  # (B, 2, P, P)
    gram = overlap[:, 0] * overlap[:, 1]  # (B, P, P)
    gram.diagonal(dim1=1, dim2=2).add_(1e-6)  # regular even for twins
    amplitude = _solve(gram.double(), residual.double()).to(field.dtype)  # (B, P, 2)
    # Each bump touches the pixels strictly within ``radius`` of its centre: W per axis, from the first one on.
    steps = torch.arange(int(2 * radius) + 1, device=field.device, dtype=field.dtype)  # (W,)
    first = (centres - radius).floor_().add_(1)  # (B, 2, P): each window's first column, first row
    along = first[..., None] + steps  # (B, 2, P, W): the window's columns, then its rows
    weight = _bump((along - centres[..., None]) / radius) * ((along >= 0) & (along < size))
    index = along.clamp(0, size - 1).long()
    index[:, 1] += (torch.arange(batch, device=field.device) * size)[:, None, None]  # rows of all B·S
    flat = index[:, 1, :, :, None] * size + index[:, 0, :, None, :]  # (B, P, W, W): of the B·S·S pixels
    delta_x = weight[:, 0, :, :, None] * amplitude[:, :, None]  # (B, P, W, 2): along x, times the amplitude
    delta = weight[:, 1, :, :, None, None] * delta_x[:, :, None]  # (B, P, W, W, 2)
    # A pixel's (x, y) as one complex number: one index per pixel, and torch's CPU scatter_add_
    # is ~10x faster on complex pixels than on twice as many floats.
    pixels = torch.view_as_complex(field).view(-1)  # (B·S·S,), a view of the field
    pixels.scatter_add_(0, flat.view(-1), torch.view_as_complex(delta).view(-1))
    return field


def warp_images(
    images: torch.Tensor,
    image_points: torch.Tensor,
    target_points: torch.Tensor,
    grid_size: int | None = None,
) -> torch.Tensor:
    """Warp each image to its target landmarks: ``(B, C, S, S)`` with points ``(B, 68, 2)`` → ``(B, C, S, S)``.

    Pixels mapped outside the image repeat its border (``padding_mode="border"``).
    """
    size = images.shape[-1]
    grid = sampling_grid(target_points, image_points, size, grid_size).to(images.dtype)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def warp_shots(
    shots: torch.Tensor,
    shot_points: torch.Tensor,
    target_points: torch.Tensor,
    grid_size: int | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    mouth_aware: bool | None = None,
) -> torch.Tensor:
    """The K shots of one person warped to B targets and blended: ``(K, C, S, S)`` → ``(B, C, S, S)``.

    ``shot_points`` ``(K, 68, 2)`` and ``target_points`` ``(B, 68, 2)`` are
    crop pixels. With one shot this is :func:`warp_images` of that shot. The
    blend (:func:`talking_head.nets.shot_blend.blend_warps`) prefers, inside
    the lips, the shot of the nearest mouth shape when ``mouth_aware``
    (``None``: :data:`~talking_head.nets.shot_blend.MOUTH_AWARE`).
    """
    num_shots, batch = shots.shape[0], target_points.shape[0]
    if shot_points.shape[0] != num_shots:
        raise ValueError(f"{num_shots} shots but {shot_points.shape[0]} landmark sets")
    # All K·B grids at once, shot-major: entry k·B + b sends target b to shot k.
    targets, sources = target_points.repeat(num_shots, 1, 1), shot_points.repeat_interleave(batch, dim=0)
    grids = sampling_grid(targets, sources, shots.shape[-1], grid_size).to(shots.dtype).split(batch)
    # Each shot is read by its B grids as one stride-0 batch, not copied B times, in the channels-last
    # layout (a pixel's channels side by side): grid_sample's fastest input.
    shots = shots.contiguous(memory_format=torch.channels_last)
    warped = [
        F.grid_sample(shot[None].expand(batch, -1, -1, -1), grid, padding_mode="border", align_corners=False)
        for shot, grid in zip(shots, grids)
    ]  # K × (B, C, S, S)
    mouth_aware = shot_blend.MOUTH_AWARE if mouth_aware is None else mouth_aware
    return blend_warps(warped, shot_points, target_points, temperature, mouth_aware)


def warp_episodes(
    shots: torch.Tensor,
    shot_points: torch.Tensor,
    target_points: torch.Tensor,
    grid_size: int | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    mouth_aware: bool | None = None,
) -> torch.Tensor:
    """The K shots of each of B episodes warped to its one target and blended as :func:`warp_shots` blends.

    ``shots`` ``(B, K, C, S, S)``, ``shot_points`` ``(B, K, 68, 2)``,
    ``target_points`` ``(B, 68, 2)`` → ``(B, C, S, S)``. Every (target, shot)
    pair goes through one batched :func:`warp_images` call.
    """
    num_shots = shots.shape[1]
    warped = warp_images(
        shots.flatten(0, 1),
        shot_points.flatten(0, 1),
        target_points.repeat_interleave(num_shots, dim=0),
        grid_size,
    ).reshape(shots.shape)  # (B, K, C, S, S)
    mouth_aware = shot_blend.MOUTH_AWARE if mouth_aware is None else mouth_aware
    return blend_warps(list(warped.unbind(1)), shot_points, target_points, temperature, mouth_aware)


def warp_person_crops(
    shots: np.ndarray,
    shot_points: np.ndarray,
    target_points: np.ndarray,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """The warp alone (no network): a person's shot crops warped to every target, as uint8 crops.

    ``shots`` ``(K, S, S, 3)`` uint8 and ``shot_points`` ``(K, 68, 2)`` crop
    pixels (a :class:`~talking_head.animation.person.Person`'s ``shots`` and
    ``shot_landmarks``); ``target_points`` ``(B, 68, 2)`` crop pixels →
    ``(B, S, S, 3)`` uint8 (:func:`warp_shots`, ``batch_size`` targets at a time).
    """
    shots = np.array(shots, dtype=np.uint8)  # a copy: torch wants writable memory, the K crops are small
    targets = np.asarray(target_points, dtype=np.float32).reshape(-1, 68, 2)
    if len(shots) != len(shot_points):
        raise ValueError(f"{len(shots)} shots but {len(shot_points)} landmark sets")
    size = shots.shape[1]
    out = np.empty((len(targets), size, size, 3), dtype=np.uint8)
    with torch.no_grad():
        source = images_to_tensor(shots, device)  # (K, 3, S, S)
        source_points = torch.from_numpy(np.asarray(shot_points, dtype=np.float32)).to(device)  # (K, 68, 2)
        for start in range(0, len(targets), batch_size):
            batch = torch.from_numpy(targets[start : start + batch_size]).to(device)  # (b, 68, 2)
            out[start : start + len(batch)] = tensor_to_images(warp_shots(source, source_points, batch))
    return out
