"""A simulated, stained blood smear: the toolkit's built-in dataset.

Each image shows one white blood cell (leukocyte) among red cells, as in a
Wright/Giemsa-stained smear under a light microscope. The four classes follow
the morphology taught in haematology:

========== =================================================================
eosinophil bilobed nucleus; cytoplasm packed with orange-red granules
lymphocyte small cell; large, round, dense nucleus; thin rim of pale-blue cytoplasm
monocyte   largest cell; big kidney-shaped, lacy nucleus; grey-blue cytoplasm
neutrophil nucleus of 3-5 small lobes; pale lilac cytoplasm with fine granules
========== =================================================================

The shapes overlap on purpose, as they do in real smears: 40% of neutrophils
are bilobed and sized like eosinophils, 40% of monocytes have a round nucleus
and are sized like lymphocytes, so shape alone does not decide the class. The rest of the evidence lives in fine detail: granule texture, the tint
of the cytoplasm, the chromatin texture of the nucleus. Those are intensity and
colour differences of a few per cent, which is what sensor bit depth, blur and
pixel size destroy. A physical layer therefore changes accuracy measurably.

Everything is drawn with vectorised torch operations from one seeded
``torch.Generator``: the same arguments give the same images.
"""

from __future__ import annotations

import math

import torch

from .._checks import check_int
from .dataset import ImageDataset

CLASSES = ["eosinophil", "lymphocyte", "monocyte", "neutrophil"]
EOSINOPHIL, LYMPHOCYTE, MONOCYTE, NEUTROPHIL = range(4)

# RGB colours of the stain, before per-image variation. Every class colour keeps each
# channel at least 0.1 away from 0.5, on the same side for all classes: a 1-bit sensor
# (threshold 0.5) sees the same binary colours for every class and keeps only shapes,
# while finer bit depths see the tints and granules.
_PLASMA = (0.93, 0.88, 0.90)
_RED_CELL = (0.87, 0.61, 0.63)
_CYTOPLASM = {  # the class cue that 1-bit sensors lose: tints a few per cent apart
    EOSINOPHIL: (0.90, 0.73, 0.70),
    LYMPHOCYTE: (0.74, 0.78, 0.91),
    MONOCYTE: (0.78, 0.77, 0.85),
    NEUTROPHIL: (0.87, 0.78, 0.84),
}
_GRANULE = {  # (colour, density): eosinophil granules are coarse and dense
    EOSINOPHIL: ((0.90, 0.63, 0.61), 0.50),
    LYMPHOCYTE: ((0.74, 0.78, 0.91), 0.00),
    MONOCYTE: ((0.74, 0.73, 0.82), 0.15),
    NEUTROPHIL: ((0.82, 0.70, 0.80), 0.30),
}
_NUCLEUS = {
    EOSINOPHIL: (0.37, 0.26, 0.65),
    LYMPHOCYTE: (0.31, 0.21, 0.63),
    MONOCYTE: (0.37, 0.31, 0.70),
    NEUTROPHIL: (0.35, 0.25, 0.64),
}
_CHROMATIN = {EOSINOPHIL: 0.04, LYMPHOCYTE: 0.03, MONOCYTE: 0.06, NEUTROPHIL: 0.04}
# Cell radius as a fraction of the image size (mean, spread): sizes overlap.
_CELL_RADIUS = {
    EOSINOPHIL: (0.30, 0.03),
    LYMPHOCYTE: (0.25, 0.03),
    MONOCYTE: (0.34, 0.03),
    NEUTROPHIL: (0.29, 0.03),
}
_LOOKALIKE = 0.4  # share of neutrophils and monocytes shaped like eosinophils and lymphocytes
_CHUNK_PIXELS = 2**18  # images per chunk x pixels per image: keeps temporaries in cache
MAX_BYTES = 2**32  # 4 GiB of float32 pixels: more is a typo (size=10**5), not a course dataset
MAX_SEED = 2**64 - 1  # the largest seed torch.Generator.manual_seed accepts


def simulate_blood_smear(n_per_class: int = 500, size: int = 64, seed: int = 0) -> ImageDataset:
    """Simulate stained white-blood-cell images in four classes.

    Parameters
    ----------
    n_per_class : int
        Images per class (>= 1); the dataset holds ``4 * n_per_class`` images
        in a seeded random order.
    size : int
        Height and width in pixels (>= 16). The whole dataset, 4 * n_per_class * 3 * size**2
        float32 numbers, must fit in 4 GiB (:data:`MAX_BYTES`).
    seed : int
        Same seed, same images; 0 to 2**64 - 1.

    Returns
    -------
    ImageDataset
        RGB images in [0, 1] of shape (4 * n_per_class, 3, size, size), labels
        in ``range(4)``, classes ``["eosinophil", "lymphocyte", "monocyte",
        "neutrophil"]``.

    Examples
    --------
    >>> ds = simulate_blood_smear(n_per_class=2, size=32, seed=0)
    >>> ds.images.shape, ds.classes[0]
    (torch.Size([8, 3, 32, 32]), 'eosinophil')
    """
    check_int(n_per_class, "n_per_class", 1)
    check_int(size, "size", 16)
    check_int(seed, "seed", 0, MAX_SEED)
    _check_memory(4 * n_per_class, size, "n_per_class and size")
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(4).repeat_interleave(n_per_class)
    labels = labels[torch.randperm(len(labels), generator=g)]
    images = torch.empty(len(labels), 3, size, size)
    chunk = max(8, _CHUNK_PIXELS // (size * size))
    for start in range(0, len(labels), chunk):
        part = labels[start : start + chunk]
        images[start : start + len(part)], *_ = _render_cells(part, size, g)
    return ImageDataset(images, labels, list(CLASSES))


def simulate_smear_field(size: int = 512, n_cells: int = 8, cell_size: int = 64, seed: int = 0):
    """Simulate a large smear field with several white cells and their boxes.

    For the sliding-window lesson: a classifier trained on single-cell images
    of ``cell_size`` pixels is slid over this field and its detections are
    scored against the true boxes.

    Parameters
    ----------
    size : int
        Field height and width in pixels (>= 2 * cell_size).
    n_cells : int
        White cells to place (>= 1); they do not overlap.
    cell_size : int
        Size of the square each white cell is drawn in, as in
        :func:`simulate_blood_smear` with ``size=cell_size``.
    seed : int

    Returns
    -------
    image : torch.Tensor
        (3, size, size) in [0, 1].
    boxes : torch.Tensor
        (n_cells, 4) float boxes ``(x_min, y_min, x_max, y_max)`` in pixels,
        tight around each white cell.
    labels : torch.Tensor
        (n_cells,) int64 class of each box.
    classes : list of str
    """
    check_int(cell_size, "cell_size", 16)
    check_int(size, "size", 1)
    if size < 2 * cell_size:
        raise ValueError(f"size must be at least 2 * cell_size = {2 * cell_size} pixels; got size = {size}")
    check_int(n_cells, "n_cells", 1)
    check_int(seed, "seed", 0, MAX_SEED)
    _check_memory(1, size, "size")
    g = torch.Generator().manual_seed(seed)
    field = _background(1, size, g)[0]
    n_red = int(0.6 * (size / cell_size) ** 2 * 4)
    centres = torch.rand(1, n_red, 2, generator=g) * size
    radii = (0.16 + 0.02 * torch.randn(1, n_red, generator=g)) * cell_size
    field = _paint_red_cells(field[None], centres, radii, g)[0]

    slots = _place_without_overlap(n_cells, size, cell_size, g)
    labels = torch.randint(0, 4, (len(slots),), generator=g)
    cells, alpha, centres, radii = _render_cells(labels, cell_size, g)
    boxes = []
    for (top, left), cell, a, (cy, cx), r in zip(slots, cells, alpha, centres.tolist(), radii.tolist()):
        window = field[:, top : top + cell_size, left : left + cell_size]
        window.mul_(1 - a).add_(a * cell)
        # The white cell's disc, where _render_cells drew it (its centre is jittered in the window).
        x, y = left + cx, top + cy
        boxes.append([x - r, y - r, x + r, y + r])
    return field.clamp(0, 1), torch.tensor(boxes), labels, list(CLASSES)


def _check_memory(n_images: int, size: int, names: str) -> None:
    """Refuse, before allocating, a request for more float32 pixels than :data:`MAX_BYTES`."""
    nbytes = n_images * 3 * size * size * 4
    if nbytes > MAX_BYTES:
        raise ValueError(
            f"{names} ask for {n_images} RGB image(s) of {size} x {size} float32 pixels = "
            f"{nbytes / 2**30:.3g} GiB, more than the {MAX_BYTES / 2**30:.0f} GiB this simulator "
            "allocates; choose fewer or smaller images"
        )


def _render_cells(labels: torch.Tensor, size: int, g: torch.Generator):
    """Draw one white cell per label, centred with jitter.

    Returns the images (N, 3, size, size), each white cell's alpha (N, 1, size, size), and its
    disc: centres (N, 2) as (y, x) in pixels from the image's corner, and radii (N,) in pixels.
    """
    n = len(labels)
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    image = _background(n, size, g)

    # Look-alikes: some neutrophils are bilobed like eosinophils and some monocytes have a
    # round nucleus like lymphocytes. Their shape and size are drawn as the look-alike's, so
    # only colour and texture tell them apart.
    shape = labels.clone()
    mimic = torch.rand(n, generator=g) < _LOOKALIKE
    shape[mimic & (labels == NEUTROPHIL)] = EOSINOPHIL
    shape[mimic & (labels == MONOCYTE)] = LYMPHOCYTE

    mean_r = torch.tensor([_CELL_RADIUS[k][0] for k in range(4)])[shape]
    spread_r = torch.tensor([_CELL_RADIUS[k][1] for k in range(4)])[shape]
    radius = (mean_r + spread_r * torch.randn(n, generator=g)) * size
    centre = size / 2 + (torch.rand(n, 2, generator=g) - 0.5) * 0.12 * size
    cy, cx = centre[:, 0, None, None], centre[:, 1, None, None]

    # Red cells around the white cell, kept outside its radius.
    angle = torch.rand(n, 5, generator=g) * 2 * math.pi
    dist = radius[:, None] + (0.16 + 0.12 * torch.rand(n, 5, generator=g)) * size
    red_centres = torch.stack(
        [centre[:, :1] + dist * torch.sin(angle), centre[:, 1:] + dist * torch.cos(angle)], dim=-1
    )
    red_radii = (0.15 + 0.02 * torch.randn(n, 5, generator=g)) * size
    image = _paint_red_cells(image, red_centres, red_radii, g)

    # Cytoplasm: a soft disc in the class tint, with granules.
    d = torch.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    cell = _soft_disc(d, radius[:, None, None], size)
    tint = _class_colour(_CYTOPLASM, labels) + 0.02 * torch.randn(n, 3, generator=g)
    granule_colour = _class_colour(_GRANULE, labels, index=0)
    density = torch.tensor([_GRANULE[k][1] for k in range(4)])[labels]
    granules = (torch.rand(n, size, size, generator=g) < density[:, None, None]).float()
    cytoplasm = (
        tint[:, :, None, None]
        + granules[:, None] * (granule_colour - _class_colour(_CYTOPLASM, labels))[:, :, None, None]
    )
    image = image * (1 - cell[:, None]) + cytoplasm * cell[:, None]

    # Nucleus: class shape, dark stain, chromatin texture.
    nucleus = _nucleus_mask(shape, yy, xx, cy, cx, radius, size, g)
    texture = torch.randn(n, 1, size, size, generator=g)
    amount = torch.tensor([_CHROMATIN[k] for k in range(4)])[labels][:, None, None, None]
    colour = _class_colour(_NUCLEUS, labels) + 0.02 * torch.randn(n, 3, generator=g)
    stained = colour[:, :, None, None] * (1 + amount * texture)
    image = image * (1 - nucleus[:, None]) + stained * nucleus[:, None]

    image = image + 0.008 * torch.randn(image.shape, generator=g)  # faint camera noise
    return image.clamp(0, 1), cell[:, None], centre, radius


def _background(n, size, g):
    """Plasma with a per-image stain shift and a gentle illumination gradient."""
    shift = 0.02 * torch.randn(n, 3, 1, 1, generator=g)
    ramp = torch.linspace(-1, 1, size)
    direction = torch.rand(n, 2, 1, 1, generator=g) - 0.5
    gradient = 0.04 * (direction[:, :1] * ramp[:, None] + direction[:, 1:] * ramp[None, :])
    plasma = torch.tensor(_PLASMA)[None, :, None, None] + shift + gradient[:, None, 0]
    return plasma.expand(n, 3, size, size).clone()


def _paint_red_cells(image, centres, radii, g):
    """Composite red cells (discs with a pale centre) onto image (n, 3, H, W)."""
    n, _, size, _ = image.shape
    axis = torch.arange(size) + 0.5
    r = radii[..., None, None].clamp(min=1.0)  # (n, k, 1, 1)
    d2 = (axis[:, None] - centres[..., 0, None, None]) ** 2 + (
        axis[None, :] - centres[..., 1, None, None]
    ) ** 2  # (n, k, H, W), built from two rank-1 terms
    d = d2.sqrt()
    # The union of discs is the disc of the nearest edge: max over cells before the sigmoid.
    disc = _soft_disc((d - r).amin(dim=1), 0.0, size)
    pallor = torch.exp(-torch.where(d < r, d2 / (0.45 * r) ** 2, torch.inf).amin(dim=1))
    colour = torch.tensor(_RED_CELL)[None, :, None, None] + 0.02 * torch.randn(n, 3, 1, 1, generator=g)
    red = colour + 0.25 * pallor[:, None] * (torch.tensor(_PLASMA)[None, :, None, None] - colour)
    return image * (1 - disc[:, None]) + red * disc[:, None]


def _soft_disc(d, radius, size):
    """1 inside the radius, 0 outside, with an edge about one pixel wide."""
    return torch.sigmoid((radius - d) * 2.0 * max(size, 32) / 64)


def _class_colour(table, labels, index=None):
    rows = [table[k] if index is None else table[k][index] for k in range(4)]
    return torch.tensor(rows)[labels]


def _nucleus_mask(labels, yy, xx, cy, cx, radius, size, g):
    """Soft mask (n, H, W) of the nucleus, shaped by class, with overlapping shapes."""
    n = len(labels)
    r = radius[:, None, None]
    angle = torch.rand(n, generator=g) * 2 * math.pi
    # Lobes: up to 5 blobs on a ring; unused lobes get radius 0.
    n_lobes = torch.ones(n, dtype=torch.long)
    lobe_r = torch.full((n,), 0.78)
    ring = torch.zeros(n)
    lymph = labels == LYMPHOCYTE
    lobe_r[lymph] = 0.70 + 0.12 * torch.rand(int(lymph.sum()), generator=g)
    mono = labels == MONOCYTE
    lobe_r[mono] = 0.62 + 0.08 * torch.rand(int(mono.sum()), generator=g)
    eos = labels == EOSINOPHIL
    n_lobes[eos] = 2 + (torch.rand(int(eos.sum()), generator=g) < 0.25).long()
    neu = labels == NEUTROPHIL
    n_lobes[neu] = torch.randint(2, 6, (int(neu.sum()),), generator=g)
    lobed = eos | neu
    lobe_r[lobed] = 0.30 + 0.04 * torch.rand(int(lobed.sum()), generator=g)
    ring[lobed] = 0.36 + 0.06 * torch.rand(int(lobed.sum()), generator=g)

    k = torch.arange(5)
    spacing = 2 * math.pi / n_lobes.clamp(min=2).float()
    theta = angle[:, None] + k[None] * spacing[:, None] * (0.85 + 0.3 * torch.rand(n, 5, generator=g))
    ly = cy[:, None] + (ring[:, None] * torch.sin(theta))[..., None, None] * r[:, None]
    lx = cx[:, None] + (ring[:, None] * torch.cos(theta))[..., None, None] * r[:, None]
    d = torch.sqrt((yy - ly) ** 2 + (xx - lx) ** 2)  # (n, 5, H, W)
    rr = (lobe_r[:, None] * (k[None] < n_lobes[:, None]))[..., None, None] * r[:, None]
    mask = _soft_disc((d - rr).amin(dim=1), 0.0, size)  # union of lobes

    # Monocyte: a kidney, i.e. a disc with an indent of random depth.
    depth = 0.15 + 0.35 * torch.rand(n, generator=g)
    iy = cy + (0.75 * torch.sin(angle))[:, None, None] * r
    ix = cx + (0.75 * torch.cos(angle))[:, None, None] * r
    indent = _soft_disc(torch.sqrt((yy - iy) ** 2 + (xx - ix) ** 2), depth[:, None, None] * r, size)
    mask = torch.where(mono[:, None, None], mask * (1 - indent), mask)
    return mask


def _place_without_overlap(n_cells, size, cell_size, g, tries=1000):
    slots = []
    for _ in range(tries):
        if len(slots) == n_cells:
            break
        top, left = torch.randint(0, size - cell_size + 1, (2,), generator=g).tolist()
        if all(abs(top - t) >= cell_size or abs(left - s) >= cell_size for t, s in slots):
            slots.append((top, left))
    if len(slots) < n_cells:
        raise ValueError(
            f"cannot place n_cells = {n_cells} cells of cell_size = {cell_size} px without overlap in a "
            f"size = {size} px field; placed {len(slots)} (use a larger size or fewer cells)"
        )
    return slots
