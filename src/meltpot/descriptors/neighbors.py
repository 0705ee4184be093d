"""Periodic neighbour search in PyTorch: any triclinic cell, cells smaller than 2 r_c.

Returns pairs ``(i, j, shift)`` with ``r_ij = x_j − x_i + shift · cell`` (shift: integer
image offsets), for every ordered pair within the cutoff, an atom's own periodic images
included (small cells). Vectorised over atoms — no Python loop over atoms:

1. wrap atoms into the cell (fractional coordinates mod 1 along periodic axes);
2. make the periodic images that lie within r_c of the cell (enough images along each
   axis for the cell's perpendicular width, so cells thinner than r_c work);
3. bin images on a grid whose bins are at least r_c wide perpendicular to each face, so
   that every neighbour of an atom lies in the 27 bins around it;
4. compute distances to the candidates in those bins, in chunks of centres to bound memory.

Index work runs without autograd; differentiable pair vectors come from
:func:`pair_vectors`, so energies built on them give forces and stress by autograd.
Runs on any device and dtype of the inputs.
"""

from __future__ import annotations

import itertools

import torch


def cell_heights(cell: torch.Tensor) -> torch.Tensor:
    """Perpendicular widths of a cell along a, b, c (volume / area of the opposite face)."""
    volume = torch.linalg.det(cell).abs()
    areas = torch.linalg.cross(cell[[1, 2, 0]], cell[[2, 0, 1]], dim=-1).norm(dim=-1)
    return volume / areas


def complete_cell(cell: torch.Tensor, pbc) -> torch.Tensor:
    """``cell`` with the zero vectors of open (non-periodic) axes replaced by unit vectors
    perpendicular to the others, so that a cluster or molecule without a cell (all zeros, pbc
    False) or a slab without a vacuum vector gets a searchable frame. Open axes never carry an
    image shift, so the replacement does not change any pair or shift. Raises ValueError when
    a periodic axis has no length or the cell stays flat."""
    cell = cell.clone()
    norms = cell.norm(dim=-1)
    for ax in range(3):
        if norms[ax] < 1e-12 and pbc[ax]:
            raise ValueError(f"cell vector {'abc'[ax]} is zero but the axis is periodic: a periodic cell needs "
                             "non-zero volume")
    open_zero = [ax for ax in range(3) if norms[ax] < 1e-12]
    if len(open_zero) == 3:
        return torch.eye(3, dtype=cell.dtype, device=cell.device)
    for ax in open_zero:
        others = [cell[b] for b in range(3) if b != ax and cell[b].norm() > 1e-12]
        if len(others) == 2:
            v = torch.linalg.cross(others[0], others[1])
        else:                      # one vector left: any unit vector perpendicular to it
            u = others[0] / others[0].norm()
            trial = torch.eye(3, dtype=cell.dtype, device=cell.device)[int(torch.argmin(u.abs()))]
            v = trial - (trial @ u) * u
        cell[ax] = v / v.norm()
    if torch.linalg.det(cell).abs() < 1e-12:
        raise ValueError("neighbour search needs a cell with non-zero volume (or zero vectors along open axes)")
    return cell


@torch.no_grad()
def neighbor_pairs(positions: torch.Tensor, cell: torch.Tensor, pbc, cutoff: float,
                   chunk: int = 128, allow_images: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All ordered pairs within ``cutoff`` (see module docstring).

    Parameters
    ----------
    positions: (N, 3) Cartesian positions (any float dtype, any device).
    cell: (3, 3) cell vectors as rows; non-zero volume, except zero vectors along open axes
        (a cluster without a cell: :func:`complete_cell`).
    pbc: three booleans.
    cutoff: pair cutoff (same length unit).
    allow_images: if False, a cutoff above half a periodic cell width (where an atom would
        meet its own or another atom's image twice) raises ValueError naming the axis.

    Returns ``center`` (P,), ``neighbor`` (P,) and ``shift`` (P, 3) int64 tensors, sorted
    by centre then neighbour.
    """
    device = positions.device
    pos = positions.detach().to(torch.float64)
    cell = cell.detach().to(device=device, dtype=torch.float64)
    n = pos.shape[0]
    empty = (torch.zeros(0, dtype=torch.long, device=device),) * 2 + (torch.zeros(0, 3, dtype=torch.long, device=device),)
    if n == 0:
        return empty
    periodic = torch.as_tensor([bool(p) for p in pbc], device=device)
    cell = complete_cell(cell, [bool(p) for p in pbc])
    heights = cell_heights(cell)
    if not allow_images:
        for ax in range(3):
            if periodic[ax] and cutoff > 0.5 * float(heights[ax]):
                raise ValueError(f"cutoff {cutoff:g} exceeds half the cell width along {'abc'[ax]} "
                                 f"({float(heights[ax]):.4g}): pairs would need several periodic images; "
                                 "allow images or use a supercell")
    frac = pos @ torch.linalg.inv(cell)
    wrap = torch.where(periodic, torch.floor(frac), torch.zeros_like(frac))
    frac = frac - wrap
    reach = cutoff / heights                                  # cutoff in fractional units per axis
    n_img = torch.where(periodic, torch.ceil(reach), torch.zeros_like(reach)).long().tolist()
    shifts = torch.tensor(list(itertools.product(*(range(-k, k + 1) for k in n_img))),
                          dtype=torch.float64, device=device)  # (S, 3)

    # images within reach of the cell (periodic axes); everything along open axes
    img = frac[None, :, :] + shifts[:, None, :]               # (S, N, 3)
    inside = torch.ones(img.shape[:2], dtype=torch.bool, device=device)
    for ax in range(3):
        if periodic[ax]:
            inside &= (img[..., ax] >= -reach[ax]) & (img[..., ax] < 1 + reach[ax])
    s_idx, a_idx = torch.nonzero(inside, as_tuple=True)
    g_frac = img[s_idx, a_idx]                                # (G, 3) image fractional coords
    g_atom = a_idx
    g_shift = shifts[s_idx]

    # bins at least `cutoff` wide perpendicular to each face
    lo = g_frac.min(dim=0).values
    hi = g_frac.max(dim=0).values
    extent = (hi - lo).clamp_min(1e-12)
    nbins = torch.clamp(torch.floor(extent * heights / cutoff), min=1).long()
    width = extent / nbins
    g_bin3 = torch.minimum(((g_frac - lo) / width).floor().long(), nbins - 1)
    strides = torch.tensor([nbins[1] * nbins[2], nbins[2], 1], device=device)
    g_bin = (g_bin3 * strides).sum(-1)
    order = torch.argsort(g_bin, stable=True)
    g_bin_sorted = g_bin[order]
    n_total_bins = int(nbins.prod())
    counts = torch.bincount(g_bin_sorted, minlength=n_total_bins)
    starts = torch.cumsum(counts, 0) - counts
    max_occ = int(counts.max())
    table = torch.full((n_total_bins, max_occ), -1, dtype=torch.long, device=device)
    slot = torch.arange(len(order), device=device) - starts[g_bin_sorted]
    table[g_bin_sorted, slot] = order

    g_cart = g_frac @ cell                                    # (G, 3) Cartesian image positions
    g_orig = (g_shift == 0).all(-1)                           # (G,) the image is the atom itself
    cart = frac @ cell
    # centres: the original atoms (zero image shift)
    c_bin3 = torch.minimum(((frac - lo) / width).floor().long(), nbins - 1)
    offsets = torch.tensor(list(itertools.product((-1, 0, 1), repeat=3)), device=device)
    cut2 = cutoff * cutoff
    out_i, out_j, out_s = [], [], []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        nb3 = c_bin3[start:stop, None, :] + offsets[None]      # (C, 27, 3)
        ok = ((nb3 >= 0) & (nb3 < nbins)).all(-1)
        nb = (nb3.clamp(min=0) * strides).sum(-1).clamp(max=n_total_bins - 1)
        cand = table[nb]                                       # (C, 27, max_occ)
        cand = torch.where(ok[..., None], cand, torch.full_like(cand, -1)).reshape(stop - start, -1)
        valid = cand >= 0
        cg = cand.clamp(min=0)
        d = g_cart[cg] - cart[start:stop, None, :]             # (C, K, 3)
        r2 = (d * d).sum(-1)
        centre = torch.arange(start, stop, device=device)[:, None]
        is_self = (g_atom[cg] == centre) & g_orig[cg]
        keep = valid & (r2 < cut2) & ~is_self
        ci, k = torch.nonzero(keep, as_tuple=True)
        gi = cg[ci, k]
        i = ci + start
        j = g_atom[gi]
        out_i.append(i)
        out_j.append(j)
        out_s.append((g_shift[gi] - wrap[j] + wrap[i]).round().long())
    i = torch.cat(out_i)
    j = torch.cat(out_j)
    s = torch.cat(out_s)
    key = torch.argsort(i * n + j, stable=True)
    return i[key], j[key], s[key]


def pair_vectors(positions: torch.Tensor, cell: torch.Tensor, center: torch.Tensor, neighbor: torch.Tensor,
                 shift: torch.Tensor) -> torch.Tensor:
    """Differentiable ``r_ij = x_j − x_i + shift · cell`` (P, 3), in the dtype of ``positions``."""
    return positions[neighbor] - positions[center] + shift.to(positions.dtype) @ cell.to(positions.dtype)
