"""Tests written to kill mutants of ``deepimaging.data`` that the data tests let survive.

Each test names the mutant it was written for (``SAMPLE=60 bash benchmarks/mutation.sh data``, see
benchmarks/mutation_results.md, which lists the survivors not handled yet).
"""

import hashlib
import io
import math
import os
import re
import stat
import sys
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import deepimaging.data.folder as folder_module
from deepimaging.data import (
    CLASSES,
    ImageDataset,
    dataset_loader,
    decode_image,
    fetch_file,
    load_bccd_images,
    load_digits,
    load_image_folder,
    load_kaggle_blood_cells,
    load_medmnist,
    simulate_blood_smear,
    simulate_smear_field,
    split,
)
from deepimaging.data.download import UnsafeArchiveError, extract_archive
from deepimaging.data.folder import read_image_folder
from deepimaging.data.smear import _PLASMA


def test_image_dataset_says_which_label_shape_it_expected_and_got():
    # dataset.ImageDataset.__init__ 26 (the message dropped).
    with pytest.raises(
        ValueError, match=r"^labels must have shape \(3,\) to match images; got shape \(2,\)$"
    ):
        ImageDataset(torch.rand(3, 1, 4, 4), torch.tensor([0, 1]), classes=["a", "b"])


def test_image_folder_skips_hidden_files(tmp_path):
    # folder._image_names 5: names starting with "." (macOS "._x.png" resource forks) were read.
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.full((6, 6, 3), 100, np.uint8)).save(tmp_path / name / "x.png")
    Image.fromarray(np.full((6, 6, 3), 200, np.uint8)).save(tmp_path / "a" / "._x.png")
    images, labels, classes = read_image_folder(tmp_path, size=4, cache_dir=tmp_path / "cache")
    assert classes == ["a", "b"] and labels.tolist() == [0, 1]
    assert images.shape == (2, 3, 4, 4) and (images == 100).all()


def test_extract_archive_names_target_when_it_is_not_a_path(tmp_path):
    # download.extract_archive 13 (the target's name upper-cased in the error).
    with pytest.raises(TypeError, match=r"^target must be a path \(str or pathlib.Path\); got 5 \(int\)$"):
        extract_archive(tmp_path / "a.tar", 5)


def test_extract_archive_names_the_archive_that_holds_a_tar_link(tmp_path):
    # download.extract_archive 69: the refusal of a link in a tar named `None` instead of the archive.
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as tf:
        link = tarfile.TarInfo("escape")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(
        UnsafeArchiveError, match=rf"^refusing to extract {re.escape(str(archive))}: member 'escape'"
    ):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- sample of 100 (SAMPLE=100 SEED=0 bash benchmarks/mutation.sh data) --------------------------


def test_simulator_memory_error_gives_the_gibibytes_of_three_channels():
    """smear._check_memory 6 (four channels counted): the message's size is 8 x 3 x 10^10 x 4 bytes."""
    # By hand: 8 RGB images of 10^5 x 10^5 float32 = 8 * 3 * 10**10 * 4 B = 9.6e11 B = 894 GiB.
    with pytest.raises(
        ValueError, match=r"ask for 8 RGB image\(s\) of 100000 x 100000 float32 pixels = 894 GiB"
    ):
        simulate_blood_smear(n_per_class=2, size=10**5)


def test_medmnist_header_error_gives_the_gibibytes_the_header_claims(tmp_path, write_medmnist_claiming):
    """medmnist._check_array_header 20 (2**31 for 2**30): the size in GiB, computed by hand."""
    path = write_medmnist_claiming(tmp_path / "bloodmnist.npz", (10**6, 224, 224, 3))
    # By hand: 10**6 * 224 * 224 * 3 bytes = 1.50528e11 B = 140.19 GiB.
    with pytest.raises(ValueError, match=r"of uint8 = 140 GiB, more than the"):
        load_medmnist("bloodmnist", "test", path=path)


def test_smear_field_red_cells_cover_what_a_boolean_model_of_their_discs_predicts():
    """simulate_smear_field 86 (centres without a second coordinate), 91 (radii / cell_size)."""
    size, cell = 256, 32
    image, boxes, _, _ = simulate_smear_field(size=size, n_cells=2, cell_size=cell, seed=0)
    outside = torch.ones(size, size, dtype=torch.bool)  # the field away from the white cells
    for x0, y0, x1, y1 in boxes.tolist():
        outside[int(y0) : int(y1) + 1, int(x0) : int(x1) + 1] = False
    red, _, blue = image
    covered = float((red - blue > 0.12)[outside].float().mean())  # red cells: R - B = 0.24, plasma 0.03
    # Boolean model: n discs of mean area a at uniform centres cover 1 - exp(-n a / size^2) of the field;
    # n = int(0.6 (size / cell)^2 4) = 153 red cells of radius 0.16 cell (documented in simulate_smear_field).
    n = int(0.6 * (size / cell) ** 2 * 4)
    expected = 1 - math.exp(-n * math.pi * (0.16 * cell) ** 2 / size**2)  # 0.175
    assert 0.7 * expected < covered < 1.3 * expected


def test_every_cell_image_shows_red_cells_around_the_white_cell():
    """_render_cells 115 (red-cell radii divided by the size: 1-pixel red cells)."""
    ds = simulate_blood_smear(n_per_class=10, size=48, seed=0)
    # Lymphocytes and monocytes: their cytoplasm and nucleus are bluish (R - B < 0), so every pixel
    # with R - B > 0.12 is a red cell. Five red cells of radius 0.15 size (7 % of the image each)
    # sit just outside the white cell; on average well over 5 % of the image is red.
    bluish = (ds.labels == 1) | (ds.labels == 2)
    images = ds.images[bluish]
    red = (images[:, 0] - images[:, 2] > 0.12).float().mean(dim=(1, 2))
    assert float(red.mean()) > 0.05


def test_the_plasma_around_each_cell_keeps_its_documented_colour():
    """_background 2 (stain shift 0.02 / randn instead of 0.02 randn: shifts of any size)."""
    size = 48
    ds = simulate_blood_smear(n_per_class=10, size=size, seed=0)
    border = torch.ones(size, size, dtype=torch.bool)
    border[3:-3, 3:-3] = False
    plasma = torch.tensor(_PLASMA)
    for image in ds.images:
        pixels = image[:, border]
        grey = (pixels[0] - pixels[2]).abs() < 0.08  # not a red cell (R - B = 0.24)
        assert int(grey.sum()) > 10
        # A shift of sd 0.02 per channel (4 sd = 0.08) plus an illumination gradient of at most 0.04.
        assert float((pixels[:, grey].median(dim=1).values - plasma).abs().max()) < 0.12


def test_monocyte_nuclei_are_kidney_shaped_less_convex_than_any_lymphocyte_nucleus():
    """_nucleus_mask 155 (indent depth 0.15 - 0.35 u: no kidney indent)."""
    from skimage.measure import label, regionprops

    ds = simulate_blood_smear(n_per_class=20, size=64, seed=0)
    dark = (ds.images.mean(dim=1) < 0.59).numpy()  # nucleus ~0.43, cytoplasm ~0.78
    solidity = {1: [], 2: []}  # area / convex-hull area of the largest dark region (skimage)
    for mask, lab in zip(dark, ds.labels.tolist()):
        if lab in solidity:
            solidity[lab].append(max(regionprops(label(mask)), key=lambda r: r.area).solidity)
    lymphocyte, monocyte = np.array(solidity[1]), np.array(solidity[2])
    # 60 % of monocytes have a kidney (indented) nucleus, the rest a round one like a lymphocyte's.
    assert (monocyte < lymphocyte.min()).mean() > 1 / 3


def test_the_two_lobes_of_a_bilobed_eosinophil_nucleus_are_the_same_size():
    """_nucleus_mask 142 (`<=` for `<`: one lobe too many, drawn over the first lobe)."""
    from skimage.measure import label, regionprops

    ds = simulate_blood_smear(n_per_class=12, size=64, seed=0)
    dark = (ds.images[ds.labels == 0].mean(dim=1) < 0.59).numpy()  # eosinophils' nuclei
    ratios = []
    for mask in dark:
        areas = sorted(region.area for region in regionprops(label(mask)) if region.area >= 4)
        if len(areas) == 2:  # bilobed (75 % of eosinophils): two discs of one radius, apart
            ratios.append(areas[1] / areas[0])
    # Equal discs give a ratio of 1 up to pixels; a third lobe overlapping the first makes it
    # up to 1.75 times the second (two discs of radius a, centres up to 1.3 a apart).
    assert len(ratios) >= 5 and np.median(ratios) < 1.15


def test_the_simulator_raises_no_warning():
    """_render_cells 5 (meshgrid without indexing: torch warns)."""
    # torch gives some warnings once per process; warn_always shows them to every call.
    always = torch.is_warn_always_enabled()
    torch.set_warn_always(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            simulate_blood_smear(n_per_class=1, size=16, seed=0)
    finally:
        torch.set_warn_always(always)


def _tiny_bccd(root):
    """A BCCD folder in VOC layout: two photos, red and white cells only; train.txt lists one."""
    boxes = {
        "BloodImage_00001": [("RBC", 2, 2, 20, 20), ("WBC", 30, 10, 60, 40)],
        "BloodImage_00000": [("RBC", 5, 5, 15, 15)],
    }
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    for image_id, objects in boxes.items():
        Image.new("RGB", (80, 60), (200, 30, 30)).save(root / "JPEGImages" / f"{image_id}.jpg")
        objs = "".join(
            f"<object><name>{n}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax>"
            "</bndbox></object>"
            for n, a, b, c, d in objects
        )
        (root / "Annotations" / f"{image_id}.xml").write_text(f"<annotation>{objs}</annotation>")
    (root / "ImageSets" / "Main" / "train.txt").write_text("BloodImage_00001\n")
    return root


def test_bccd_split_all_takes_every_annotated_photo_in_name_order(tmp_path):
    """bccd._split_ids 4 (split "all" gave sorted(None))."""
    root = _tiny_bccd(tmp_path / "BCCD")
    photos = load_bccd_images(root, "all")
    assert [Path(f).name for f in photos.files] == ["BloodImage_00000.jpg", "BloodImage_00001.jpg"]
    assert [Path(f).name for f in load_bccd_images(root, "train").files] == ["BloodImage_00001.jpg"]


def test_bccd_repr_counts_every_class_even_one_with_no_box(tmp_path):
    """BoxedImages.__repr__ 5 (bincount without minlength: a class with no box was left out)."""
    photos = load_bccd_images(_tiny_bccd(tmp_path / "BCCD"), "all")
    assert repr(photos) == "BoxedImages(2 photos; boxes RBC: 2, WBC: 1, Platelets: 0)"


def test_bccd_names_split_when_it_is_unknown(tmp_path):
    """load_bccd_images 16 (the error names XXsplitXX)."""
    with pytest.raises(ValueError, match=r"^split must be one of .*; got 'training'$"):
        load_bccd_images(_tiny_bccd(tmp_path / "BCCD"), "training")


def test_dataset_loader_finds_a_public_loader_by_its_short_or_full_name():
    """names.dataset_loader 8 (startswith(None))."""
    assert dataset_loader("digits") is load_digits
    assert dataset_loader("load_digits") is load_digits
    assert dataset_loader("blood_smear") is simulate_blood_smear


def test_a_missing_class_folder_is_named_with_the_visible_folders_root_holds(tmp_path):
    """folder._list_folder 34 (hidden folders filtered with startswith(None))."""
    for name in ("a", ".hidden"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / name / "x.png")
    with pytest.raises(FileNotFoundError, match=r"class folder .*missing does not exist .* holds \['a'\]\)$"):
        read_image_folder(tmp_path, size=4, classes=["a", "missing"], cache_dir=tmp_path / "cache")


def test_a_class_named_dot_is_refused_as_not_a_plain_folder_name(tmp_path):
    """folder._check_class_names 25 ("." accepted: the root itself read as a class)."""
    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a" / "x.png")
    with pytest.raises(ValueError, match=r"^classes must hold plain folder names inside root .*; got '\.'$"):
        read_image_folder(tmp_path, size=4, classes=["a", "."], cache_dir=tmp_path / "cache")


@pytest.mark.skipif(
    hasattr(folder_module, "mutants_x__warn_skipped__mutmut"),
    reason="mutmut's trampolines add stack frames, so no warning names the caller's line there",
)
@pytest.mark.parametrize("load", [read_image_folder, load_image_folder, load_kaggle_blood_cells])
@pytest.mark.parametrize("fault", ["unreadable", "link"])
def test_a_skipped_file_warning_names_the_callers_line_whichever_loader_is_called(tmp_path, load, fault):
    """folder._warn_skipped 19 (stacklevel 4); load_image_folder's and the link's warnings named folder.py."""
    folder = tmp_path / "images" / "TRAIN"  # the Kaggle layout, any folder for the other two
    for name in ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"):
        (folder / name).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / name / "x.png")
    if fault == "unreadable":
        (folder / "EOSINOPHIL" / "broken.png").write_bytes(b"not a png")
    else:
        os.symlink("loop.png", folder / "EOSINOPHIL" / "loop.png")  # a link to itself (ELOOP)
    root = tmp_path if load is load_kaggle_blood_cells else folder
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = sys._getframe().f_lineno + 1
        load(root, size=4, cache_dir=tmp_path / "cache")
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, line)]


@pytest.mark.parametrize("url", ["file://host/etc/passwd", "http:///no-host"])
def test_fetch_file_refuses_a_url_that_lacks_a_web_scheme_or_a_host(tmp_path, url):
    """download._check_url 6 (`and` for `or`: either fault alone passed)."""
    with pytest.raises(
        ValueError, match=rf"^url must be an http, https or ftp address .*; got {re.escape(repr(url))}$"
    ):
        fetch_file(url, "sha256:" + "0" * 64, path=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_tar_members_are_unpacked_with_the_data_filters_permissions(tmp_path):
    """extract_archive 73 (tar extracted without filter="data": setuid and world-writable kept)."""
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("x.txt")
        info.size, info.mode = 2, 0o6777
        tf.addfile(info, io.BytesIO(b"hi"))
    extract_archive(archive, tmp_path / "out")
    # The standard library's oracle: the mode tarfile.data_filter gives that member.
    expected = tarfile.data_filter(info, str(tmp_path / "out")).mode
    assert expected == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "out" / "x.txt").st_mode) == expected


def test_extract_archive_names_a_file_that_is_neither_zip_nor_tar(tmp_path):
    """extract_archive 74 (the message dropped)."""
    archive = tmp_path / "a.tar"
    archive.write_bytes(b"plain text, no archive")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(archive))} is neither a zip nor a tar archive$"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(
    hasattr(folder_module, "mutants_x__warn_skipped__mutmut"),
    reason="mutmut's trampolines add stack frames, so no warning names the caller's line there",
)
@pytest.mark.parametrize("load", [read_image_folder, load_image_folder])
def test_a_damaged_cache_warning_names_the_callers_line_whichever_loader_is_called(tmp_path, load):
    """cache.cached_array's fixed stacklevel 3 named a line of folder.py for load_image_folder."""
    folder = tmp_path / "images"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / name / "x.png")
    load(folder, size=4, cache_dir=tmp_path / "cache")
    (entry,) = (tmp_path / "cache" / "decoded").glob("folder-*.json")
    entry.write_text("{")  # damaged: not JSON
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = sys._getframe().f_lineno + 1
        load(folder, size=4, cache_dir=tmp_path / "cache")
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, line)]
    assert "is damaged" in str(caught[0].message)


# --- second sample (seed 2) (SAMPLE=100 SEED=2 bash benchmarks/mutation.sh data) ----------------


def _one_per_class_dataset(n_per_class, classes):
    labels = torch.arange(len(classes)).repeat_interleave(n_per_class)
    return ImageDataset(torch.rand(len(labels), 1, 2, 2), labels, classes=classes)


def test_split_with_no_test_fraction_gives_an_empty_test_part_and_sklearns_train_val_split():
    """dataset._stratified 3 (test=0 gave one test image, also kept in training)."""
    from sklearn.model_selection import train_test_split

    ds = _one_per_class_dataset(10, ["a", "b"])
    ds = ImageDataset(torch.arange(20.0).reshape(20, 1, 1, 1) / 20, ds.labels, ds.classes)
    train, val, test = split(ds, val=0.2, test=0.0, seed=4)
    oracle_train, oracle_val = train_test_split(
        np.arange(20), test_size=0.2, stratify=ds.labels.numpy(), random_state=4
    )
    assert len(test) == 0
    # Each image's value is its index / 20, so the parts name the indices they hold.
    assert sorted((train.images.flatten() * 20).round().long().tolist()) == sorted(oracle_train.tolist())
    assert sorted((val.images.flatten() * 20).round().long().tolist()) == sorted(oracle_val.tolist())


def test_split_names_test_when_its_fraction_is_above_one():
    """dataset.split 26 (no upper bound on test: a test fraction of 1.5 met only the sum check)."""
    ds = _one_per_class_dataset(4, ["a", "b"])
    with pytest.raises(ValueError, match=r"^test must be in \[0\.0, 1\.0\]; got 1\.5$"):
        split(ds, val=0.0, test=1.5)


def test_dataset_repr_counts_a_class_that_has_no_image():
    """dataset.ImageDataset.__repr__ 5 (bincount without minlength: the last, empty class vanished)."""
    ds = ImageDataset(torch.rand(3, 1, 2, 2), torch.tensor([0, 0, 1]), classes=["a", "b", "c"])
    assert repr(ds).endswith("; a: 2, b: 1, c: 0)")


def test_loader_names_seed_beyond_what_torch_generators_accept():
    """dataset.ImageDataset.loader 20 (no upper bound: torch raised its own overflow error)."""
    ds = _one_per_class_dataset(2, ["a", "b"])
    # torch.Generator.manual_seed takes 0 to 2**64 - 1; beyond, its message names no parameter.
    torch.Generator().manual_seed(2**64 - 1)
    with pytest.raises(ValueError, match="^Overflow"):
        torch.Generator().manual_seed(2**64)
    assert len(list(ds.loader(batch_size=4, shuffle=True, seed=2**64 - 1))) == 1
    with pytest.raises(
        ValueError, match=r"^seed must be in \[0, 18446744073709551615\]; got 18446744073709551616$"
    ):
        ds.loader(seed=2**64)


def test_fetch_file_names_known_hash_when_it_is_not_a_string(tmp_path):
    """download._check_known_hash 1 (`and` for `or`: a non-empty non-string hash reached rpartition)."""
    with pytest.raises(ValueError, match=r"known_hash is required .* got 123$"):
        fetch_file("https://example.org/file.bin", known_hash=123, path=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_known_hash_is_lower_cased_as_hashlib_writes_digests():
    """download._check_known_hash 30 (upper-cased digest)."""
    from deepimaging.data.download import _check_known_hash

    digest = hashlib.md5(b"deepimaging").hexdigest()  # hashlib writes lower-case hex
    assert _check_known_hash("MD5:" + digest.upper(), "https://example.org/f") == "md5:" + digest
    assert _check_known_hash(digest.upper() * 2, "https://example.org/f") == "sha256:" + digest * 2


def test_fetch_file_names_path_when_it_is_not_a_path(tmp_path):
    """download.fetch_file 27 (as_path(path, None): the message named None, not path)."""
    with pytest.raises(TypeError, match=r"^path must be"):
        fetch_file("https://example.org/file.bin", known_hash="md5:" + "0" * 32, path=123)


def test_decode_image_works_when_pillows_pixel_limit_is_switched_off(tmp_path, monkeypatch):
    """folder.decode_image 54 (float("XXinfXX") raised when PIL.Image.MAX_IMAGE_PIXELS is None)."""
    array = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "x.png")
    # Pillow documents None as "no limit"; the oracle is Pillow's own bilinear resize.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    expected = np.asarray(Image.fromarray(array).resize((6, 6), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(decode_image(tmp_path / "x.png", 6), expected)


def test_read_image_folder_checks_n_jobs_even_when_the_cache_answers(tmp_path):
    """folder.read_image_folder 28 (n_jobs unchecked: a cached folder accepted n_jobs=0)."""
    for name in ("a", "b"):
        (tmp_path / "root" / name).mkdir(parents=True)
        Image.fromarray(np.full((6, 6, 3), 100, np.uint8)).save(tmp_path / "root" / name / "x.png")
    read_image_folder(tmp_path / "root", size=4, cache_dir=tmp_path / "cache", n_jobs=1)
    with pytest.raises(ValueError, match=r"^n_jobs must be in \[1, inf\]; got 0$"):
        read_image_folder(tmp_path / "root", size=4, cache_dir=tmp_path / "cache", n_jobs=0)


def test_lymphocyte_nuclei_vary_in_size_relative_to_their_cell():
    """smear._nucleus_mask 25 (`!=` for `==`: every lymphocyte nucleus got one fixed share of its cell)."""
    from skimage.measure import label, regionprops

    import deepimaging.data.smear as smear_module

    g = torch.Generator().manual_seed(0)
    images, _ = smear_module._render_cells(torch.full((30,), CLASSES.index("lymphocyte")), 64, g)
    radii = np.array(smear_module._last_radii)  # the white cells' radii in pixels
    dark = (images.mean(dim=1) < 0.59).numpy()  # nucleus ~0.43, cytoplasm ~0.78
    # Nucleus radius / cell radius from the nucleus's area (skimage); documented 0.70 to 0.82.
    share = np.array(
        [
            math.sqrt(max(r.area for r in regionprops(label(mask))) / math.pi) / radius
            for mask, radius in zip(dark, radii)
        ]
    )
    assert 0.66 < share.min() and share.max() < 0.86
    # A uniform draw on [0.70, 0.82] has sd 0.12 / sqrt(12) = 0.035; one fixed share only pixel noise.
    assert share.std() > 0.02


def test_red_cells_pale_centre_spans_about_a_third_of_their_diameter():
    """smear._paint_red_cells 45 (pallor width 1.45 r for 0.45 r: the whole cell pale)."""
    from deepimaging.data.smear import _paint_red_cells

    size, r = 64, 24.0
    painted = _paint_red_cells(
        torch.zeros(1, 3, size, size),
        torch.tensor([[[32.0, 32.0]]]),
        torch.tensor([[r]]),
        torch.Generator().manual_seed(0),
    )[0, 1]  # green: pale (plasma-like) in the centre, darker red towards the rim
    axis = torch.arange(size) + 0.5
    d = ((axis[:, None] - 32) ** 2 + (axis[None, :] - 32) ** 2).sqrt()
    centre = float(painted[d < 1].mean())
    rim = float(painted[(d > 0.85 * r) & (d < 0.9 * r)].mean())
    assert centre > rim + 0.03
    # The pale zone (paler than halfway between centre and rim): a normal red cell's central
    # pallor is about a third of its diameter, i.e. a radius of about r / 3.
    pale = painted > (centre + rim) / 2
    pale_radius = math.sqrt(float(pale.sum()) / math.pi)
    assert 0.25 * r < pale_radius < 0.5 * r


def test_smear_field_names_cell_size_below_sixteen_pixels():
    """smear.simulate_smear_field 7 (no lower bound on cell_size)."""
    with pytest.raises(ValueError, match=r"^cell_size must be in \[16, inf\]; got 15$"):
        simulate_smear_field(size=64, n_cells=1, cell_size=15)


def test_n_jobs_one_decodes_in_the_callers_thread_and_more_use_worker_threads(tmp_path, monkeypatch):
    """folder._decode_all 31 (`!=` for `==`: n_jobs=1 started a pool and n_jobs=3 decoded serially)."""
    import threading

    for name in ("a", "b"):
        (tmp_path / "root" / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((6, 6, 3), 40 * i, np.uint8)).save(tmp_path / "root" / name / f"{i}.png")
    threads = []
    decode = folder_module.decode_image

    def recording_decode(*args):
        threads.append(threading.get_ident())
        return decode(*args)

    monkeypatch.setattr(folder_module, "decode_image", recording_decode)
    read_image_folder(tmp_path / "root", size=4, cache_dir=tmp_path / "one", n_jobs=1)
    assert threads == [threading.get_ident()] * 6
    threads.clear()
    read_image_folder(tmp_path / "root", size=4, cache_dir=tmp_path / "three", n_jobs=3)
    assert len(threads) == 6 and threading.get_ident() not in threads
