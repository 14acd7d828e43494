"""Tests written to kill mutants of ``deepimaging.data`` that the data tests let survive.

Each test names the mutant it was written for (``SAMPLE=60 bash benchmarks/mutation.sh data``, see
benchmarks/mutation_results.md, which lists the survivors not handled yet).
"""

import hashlib
import io
import json
import math
import os
import re
import shutil
import stat
import sys
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from _local_server import serve_folder
from PIL import Image

import deepimaging.data.folder as folder_module
from deepimaging.data import (
    CLASSES,
    ImageDataset,
    dataset_loader,
    decode_image,
    download_bccd,
    fetch_file,
    find_kaggle_blood_cells,
    load_bccd_crops,
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
    images, _, _, radii = smear_module._render_cells(torch.full((30,), CLASSES.index("lymphocyte")), 64, g)
    radii = radii.numpy()  # the white cells' radii in pixels
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


# --- third sample (seed 3) (SAMPLE=100 SEED=3 bash benchmarks/mutation.sh data) -----------------


def test_find_bccd_names_the_voc_layout_it_expected(tmp_path):
    """bccd.find_bccd 36 (the expected layout upper-cased and wrapped in XX)."""
    with pytest.raises(
        FileNotFoundError,
        match=rf"^no Pascal VOC layout under {re.escape(str(tmp_path))}: expected a folder holding "
        r"Annotations/\*\.xml, JPEGImages/\*\.jpg and ImageSets/Main/\*\.txt$",
    ):
        load_bccd_images(tmp_path)


def test_load_bccd_crops_names_size_below_one_pixel(tmp_path):
    """bccd.load_bccd_crops 10 (no lower bound on size: a 0-pixel crop reached Pillow)."""
    from deepimaging.data import load_bccd_crops

    root = _tiny_bccd(tmp_path / "BCCD")
    with pytest.raises(ValueError, match=r"^size must be in \[1, inf\]; got 0$"):
        load_bccd_crops(root, "all", size=0, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # refused before anything was decoded or cached


def test_image_dataset_names_images_when_they_are_not_a_tensor():
    """dataset.ImageDataset.__init__ 12 (the check named IMAGES)."""
    with pytest.raises(TypeError, match=r"^images must be a torch\.Tensor .*; got ndarray$"):
        ImageDataset(np.zeros((2, 1, 4, 4), np.float32), torch.tensor([0, 1]), classes=["a", "b"])


def test_a_seeded_shuffling_loader_ignores_torchs_global_generator():
    """dataset.ImageDataset.loader 38 (no generator: the shuffle followed torch.manual_seed, not seed)."""
    n = 40
    ds = ImageDataset(
        torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1) / n, torch.zeros(n).long(), ["a"]
    )

    def order(global_seed, seed):
        torch.manual_seed(global_seed)
        batches = ds.loader(batch_size=7, shuffle=True, seed=seed)
        return [int(round(float(v) * n)) for images, _ in batches for v in images.flatten()]

    first = order(1, 5)
    assert sorted(first) == list(range(n)) and first != list(range(n))  # a shuffled permutation
    assert order(2, 5) == first  # the global seed changed, the loader's seed did not
    assert order(1, 6) != first


def test_extract_archive_names_a_zip_link_as_a_link(tmp_path):
    """download.extract_archive 49 (a zip's symbolic link called an 'XXlinkXX')."""
    import zipfile

    archive = tmp_path / "links.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("escape")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16  # how zip stores a symbolic link
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match=r"member 'escape' is a link$"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_class_names_are_checked_against_windows_alternative_separator(monkeypatch):
    r"""folder._check_class_names 31 (`os.altsep not in name`: on Windows every plain name refused)."""
    from deepimaging.data.folder import _check_class_names

    monkeypatch.setattr(os, "altsep", "/")  # Windows: os.sep is "\", os.altsep "/"
    monkeypatch.setattr(os, "sep", "\\")
    assert _check_class_names(["a", "b"]) == ["a", "b"]
    with pytest.raises(ValueError, match=r"no '/', no '\.\.'\); got 'a\\\\b'$"):
        _check_class_names(["a\\b"])


def test_kaggle_errors_name_the_layout_and_where_to_get_the_data(tmp_path):
    """kaggle.find_kaggle_blood_cells 27 (classes joined with 'XX,XX'), kaggle._where_to_get 2 (upper-cased)."""
    from deepimaging.data.kaggle import KAGGLE_URL, find_kaggle_blood_cells

    advice = (
        rf"Download the dataset from {re.escape(KAGGLE_URL)} \(needs a free Kaggle account\), unzip it, "
        r"and pass the folder you unzipped it into\.$"
    )
    with pytest.raises(
        FileNotFoundError, match=rf"folder {re.escape(str(tmp_path / 'nope'))} does not exist\. {advice}"
    ):
        find_kaggle_blood_cells(tmp_path / "nope")
    layout = r"dataset2-master/images/TRAIN/\{EOSINOPHIL,LYMPHOCYTE,MONOCYTE,NEUTROPHIL\} at any depth\. "
    with pytest.raises(FileNotFoundError, match=layout + advice):
        find_kaggle_blood_cells(tmp_path)


def test_medmnist_header_error_gives_the_limit_in_gibibytes(tmp_path, write_medmnist_claiming):
    """medmnist._check_array_header 21 (the limit given as 2**34 * 2**30 instead of 2**34 / 2**30 = 16 GiB)."""
    path = write_medmnist_claiming(tmp_path / "bloodmnist.npz", (10**6, 224, 224, 3))
    with pytest.raises(
        ValueError, match=r"more than the 16 GiB any MedMNIST array needs; the file is damaged"
    ):
        load_medmnist("bloodmnist", "test", path=path)


@pytest.mark.parametrize("bad", [-1, 8])
def test_medmnist_refuses_a_label_out_of_range_at_either_end_alone(tmp_path, bad):
    """medmnist._to_dataset 46 (`and` for `or`: one label out of range, at one end only, passed)."""
    path = tmp_path / "bloodmnist.npz"
    np.savez(path, test_images=np.zeros((2, 4, 4, 3), np.uint8), test_labels=np.array([[3], [bad]]))
    # BloodMNIST has 8 classes: labels 0 to 7.
    with pytest.raises(
        ValueError,
        match=rf"labels must be in \[0, 7\] for the 8 classes; got values in \[{min(bad, 3)}, {max(bad, 3)}\]$",
    ):
        load_medmnist("bloodmnist", "test", path=path)


def test_medmnist_path_defaults_to_bloodmnists_28_pixel_file(tmp_path):
    """medmnist.medmnist_path 3 (default size 29, not a MedMNIST size)."""
    from deepimaging.data import medmnist_path

    # MedMNIST's 28 x 28 files keep their v2 names, without a size suffix (medmnist/info.py).
    assert medmnist_path(cache_dir=tmp_path) == tmp_path / "medmnist" / "bloodmnist.npz"
    assert medmnist_path("bloodmnist", 64, cache_dir=tmp_path) == tmp_path / "medmnist" / "bloodmnist_64.npz"


def test_each_background_is_plasma_with_its_own_stain_shift_and_a_planar_gradient():
    """smear._background 9 (one stain shift for all images), 24 (linspace(+1, 1): no gradient)."""
    from deepimaging.data.smear import _background

    n, size = 400, 16
    planes = _background(n, size, torch.Generator().manual_seed(0)).double().numpy()
    # A least-squares plane a + b y + c x per image and channel (NumPy's lstsq): the documented
    # background is exactly such a plane, so the residual is rounding only.
    ramp = np.linspace(-1, 1, size)
    design = np.stack([np.ones(size * size), np.repeat(ramp, size), np.tile(ramp, size)], axis=1)
    coef, *_ = np.linalg.lstsq(design, planes.reshape(n * 3, -1).T, rcond=None)
    assert np.abs(design @ coef - planes.reshape(n * 3, -1).T).max() < 1e-6
    offset, slopes = coef[0].reshape(n, 3), coef[1:].T.reshape(n, 3, 2)
    # Offsets: the plasma colour plus a shift of sd 0.02 per image and channel (1,200 draws: the
    # sample sd is within 10 % of 0.02 with probability far above 99.9 %).
    shift = offset - np.array(_PLASMA)
    assert np.abs(shift.mean(axis=0)).max() < 0.005
    assert 0.018 < shift.std() < 0.022
    # Slopes: 0.04 x (uniform on [-0.5, 0.5]) per axis, the same for the three channels: sd
    # 0.04 / sqrt(12) = 0.0115, bounded by 0.02.
    np.testing.assert_allclose(slopes, slopes[:, :1].repeat(3, axis=1), atol=1e-6)  # float32 pixels
    assert np.abs(slopes).max() <= 0.02 + 1e-6
    assert 0.0100 < slopes[:, 0].std() < 0.0130


def _nuclei(label, n=48, size=128, radius=50.0):
    """n nucleus masks of one class, drawn by smear._nucleus_mask around the centre of a size x size grid."""
    from deepimaging.data.smear import _nucleus_mask

    axis = torch.arange(size) + 0.5
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    centre = torch.full((n, 1, 1), size / 2)
    labels = torch.full((n,), CLASSES.index(label))
    masks = _nucleus_mask(
        labels, yy, xx, centre, centre, torch.full((n,), radius), size, torch.Generator().manual_seed(0)
    )
    d = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2).sqrt() / radius  # distance from the centre, in radii
    return (masks > 0.5).numpy(), d.numpy()


def test_lymphocyte_nucleus_is_a_centred_disc_of_seventy_to_eighty_two_percent_of_the_cell():
    """_nucleus_mask: a lymphocyte's nucleus radius is uniform on [0.70, 0.82] cell radii, centred."""
    from skimage.measure import regionprops

    masks, _ = _nuclei("lymphocyte")
    share = np.array([math.sqrt(regionprops(m.astype(int))[0].area / math.pi) / 50 for m in masks])
    assert share.min() > 0.69 and share.max() < 0.83
    assert abs(share.mean() - 0.76) < 0.015  # uniform mean; its sd 0.035 / sqrt(48) = 0.005
    for m in masks:
        assert np.allclose(regionprops(m.astype(int))[0].centroid, (63.5, 63.5), atol=0.5)


def test_monocyte_nucleus_reaches_sixty_two_to_seventy_percent_of_the_cell():
    """_nucleus_mask 39 (0.62 - 0.08 u: monocyte nuclei 0.54 to 0.62 of the cell)."""
    masks, d = _nuclei("monocyte")
    # The indent sits on one side (its centre 0.75 radii out); the opposite edge is the disc's.
    reach = np.array([d[m].max() for m in masks])
    assert reach.min() > 0.60 and reach.max() < 0.71
    assert abs(reach.mean() - 0.66) < 0.012


def test_lobes_are_discs_of_thirty_to_thirty_four_percent_on_a_ring_of_thirty_six_to_forty_two():
    """_nucleus_mask 77 (lobe radius 0.30 - 0.04 u), and the ring the lobes sit on."""
    for label in ("eosinophil", "neutrophil"):
        masks, d = _nuclei(label)
        # All lobes of a cell share one radius a and one ring radius R: the nucleus reaches from
        # R - a to R + a from the centre, so a = (far - near) / 2 and R = (far + near) / 2.
        far = np.array([d[m].max() for m in masks])
        near = np.array([d[m].min() for m in masks])
        lobe, ring = (far - near) / 2, (far + near) / 2
        assert lobe.min() > 0.29 and lobe.max() < 0.35 and abs(lobe.mean() - 0.32) < 0.01
        assert ring.min() > 0.35 and ring.max() < 0.43 and abs(ring.mean() - 0.39) < 0.01


def test_every_neutrophil_nucleus_has_at_least_two_lobes():
    """_nucleus_mask 68 (randint(2, n): 0 or 1 lobe)."""
    masks, _ = _nuclei("neutrophil")
    # In units of pi radii**2, one lobe covers a**2 <= 0.34**2 = 0.116. Two lobes: the first and
    # the third (or, of two, the second) are >= 0.85 x 144 degrees apart on a ring of >= 0.36, so
    # >= 0.63 apart: two discs of a >= 0.30 that overlap by a sliver at most, >= 2 x 0.30**2 = 0.18.
    area = masks.sum(axis=(1, 2)) / (math.pi * 50**2)
    assert area.min() > 0.15


def test_the_white_cell_is_centred_within_six_percent_of_the_image_and_has_its_radius():
    """_render_cells 58 (centre at size / 3): the cell's alpha is a disc of the drawn radius near the centre."""
    from skimage.measure import regionprops

    import deepimaging.data.smear as smear_module

    size = 64
    g = torch.Generator().manual_seed(0)
    _, alpha, _, radii = smear_module._render_cells(torch.arange(4).repeat(8), size, g)
    radii = radii.numpy()
    offsets = []
    for a, r in zip(alpha[:, 0].numpy(), radii):
        region = regionprops((a > 0.5).astype(int))[0]
        offsets.append(np.array(region.centroid) - size / 2 + 0.5)  # skimage: pixel centres at integers
        assert abs(math.sqrt(region.area / math.pi) - r) < 1.0
    offsets = np.array(offsets)
    # Jitter uniform on +-0.06 size = +-3.84 px per axis: sd 2.2 px, mean 0.
    assert np.abs(offsets).max() < 0.06 * size + 0.5
    assert np.abs(offsets.mean(axis=0)).max() < 1.2 and offsets.std() > 1.5


def test_red_cells_around_each_white_cell_lie_in_directions_drawn_per_image():
    """_render_cells 80 (one set of five red-cell angles shared by every image)."""
    import deepimaging.data.smear as smear_module

    size, n = 48, 40
    images, alpha, *_ = smear_module._render_cells(
        torch.full((n,), 1), size, torch.Generator().manual_seed(0)
    )
    axis = torch.arange(size) + 0.5
    directions = []
    for image, a in zip(images, alpha[:, 0]):
        cy, cx = float((a * axis[:, None]).sum() / a.sum()), float((a * axis[None, :]).sum() / a.sum())
        red = image[0] - image[2] > 0.12  # lymphocytes are bluish; red cells have R - B = 0.24
        ys, xs = torch.nonzero(red, as_tuple=True)
        v = np.array([float((ys + 0.5 - cy).mean()), float((xs + 0.5 - cx).mean())])
        directions.append(v / np.linalg.norm(v))
    # Rayleigh test of uniform directions: for 40 independent directions the mean resultant length
    # exceeds 0.4 with probability about exp(-40 x 0.16) = 0.002; shared angles give nearly 1.
    assert np.linalg.norm(np.mean(directions, axis=0)) < 0.4


def test_smear_field_names_n_cells_below_one():
    """simulate_smear_field 30 (the check named None)."""
    with pytest.raises(ValueError, match=r"^n_cells must be in \[1, inf\]; got 0$"):
        simulate_smear_field(size=64, n_cells=0, cell_size=16)


def test_a_seed_fixes_the_simulated_images_whatever_torchs_global_generator():
    """simulate_smear_field 98 (red-cell radii drawn from the global generator)."""
    fields = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        fields.append(simulate_smear_field(size=64, n_cells=1, cell_size=16, seed=3))
        torch.manual_seed(global_seed)
        fields.append(simulate_smear_field(size=64, n_cells=1, cell_size=16, seed=4))
    for a, b in ((fields[0], fields[2]), (fields[1], fields[3])):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])
    assert not torch.equal(fields[0][0], fields[1][0])
    torch.manual_seed(1)
    a = simulate_blood_smear(n_per_class=1, size=16, seed=3)
    torch.manual_seed(2)
    b = simulate_blood_smear(n_per_class=1, size=16, seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


# --- every input check of the public loaders, message in full ------------------------------------
# Each error must name the parameter (or path) and what arrived; the expected texts are written by
# hand from the docstrings' contracts, and compared whole, so a dropped or reworded part fails.


def _message(error, call, *args, **kwargs):
    """The message of the ``error`` that ``call(*args, **kwargs)`` raises (and that it raises one)."""
    with pytest.raises(error) as info:
        call(*args, **kwargs)
    return str(info.value)


def _class_folder(root, names=("a", "b")):
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / name / "x.png")
    return root


def test_image_folder_errors_name_the_folder_and_the_layout(tmp_path):
    """folder._list_folder: a missing root, a file as root, no class folder, an empty class folder."""
    missing = tmp_path / "nowhere"
    assert _message(FileNotFoundError, read_image_folder, missing, cache_dir=tmp_path / "c") == (
        f"image folder {missing} does not exist (expected root/<class>/<image files>)"
    )
    (tmp_path / "file.png").write_bytes(b"")
    assert _message(
        NotADirectoryError, read_image_folder, tmp_path / "file.png", cache_dir=tmp_path / "c"
    ) == (f"expected a folder with one sub-folder per class; {tmp_path / 'file.png'} is a file")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / ".hidden").mkdir()  # hidden folders are no classes
    assert _message(ValueError, read_image_folder, tmp_path / "flat", cache_dir=tmp_path / "c") == (
        f"image folder {tmp_path / 'flat'} has no class sub-folders; expected root/<class>/<image files>, "
        "one sub-folder per class"
    )
    root = _class_folder(tmp_path / "root")
    (root / "c").mkdir()
    (root / "c" / "notes.txt").write_text("no image")
    assert _message(ValueError, read_image_folder, root, cache_dir=tmp_path / "c") == (
        f"class folder {root / 'c'} holds no images (expected files ending in "
        ".jpg, .jpeg, .png, .bmp, .tif, .tiff, .gif, .webp)"
    )
    assert not (tmp_path / "c").exists()  # nothing cached for a refused folder


def test_class_name_checks_name_what_arrived():
    """folder._check_class_names: a string, an empty list, a non-string name, a repeated name."""
    from deepimaging.data.folder import _check_class_names

    assert _message(TypeError, _check_class_names, "ab") == (
        "classes must be a list of class folder names, e.g. ['eosinophil', 'lymphocyte']; got 'ab' (str)"
    )
    assert _message(TypeError, _check_class_names, 3) == (
        "classes must be a list of class folder names, e.g. ['eosinophil', 'lymphocyte']; got 3 (int)"
    )
    assert _message(ValueError, _check_class_names, []) == (
        "classes must name at least one class folder; got an empty list"
    )
    assert (
        _message(TypeError, _check_class_names, ["a", 1])
        == "classes must hold folder names (str); got 1 (int)"
    )
    assert _message(ValueError, _check_class_names, ["b", "a", "b", "a", "c"]) == (
        "classes must not repeat a name; ['a', 'b'] appear more than once"
    )
    for bad in ("", "..", "a/b", "/etc"):
        assert _message(ValueError, _check_class_names, ["a", bad]) == (
            f"classes must hold plain folder names inside root (no '/', no '..'); got {bad!r}"
        )
    assert _check_class_names(("x", "y")) == ["x", "y"]  # any iterable of names, as a list


def test_to_dataset_names_the_dtype_and_shape_it_got():
    """folder.to_dataset: uint8 (N, C, H, W) only; a ragged list is a TypeError."""
    from deepimaging.data.folder import to_dataset

    assert _message(ValueError, to_dataset, np.zeros((2, 1, 4, 4), np.float32), [0, 1], ["a", "b"]) == (
        "images must be uint8 of shape (N, C, H, W); got float32 of shape (2, 1, 4, 4)"
    )
    assert _message(ValueError, to_dataset, np.zeros((2, 4, 4), np.uint8), [0, 1], ["a", "b"]) == (
        "images must be uint8 of shape (N, C, H, W); got uint8 of shape (2, 4, 4)"
    )
    assert _message(TypeError, to_dataset, [[1, 2], [3]], [0, 1], ["a", "b"]) == (
        "images must be a uint8 array of shape (N, C, H, W); got list"
    )
    array = np.arange(32, dtype=np.uint8).reshape(2, 1, 4, 4)
    ds = to_dataset(array, [1, 0], ["a", "b"])
    assert ds.storage.dtype == torch.uint8 and np.shares_memory(ds.storage.numpy(), array)  # no copy
    np.testing.assert_array_equal(ds.images.numpy(), array / np.float32(255))
    assert ds.labels.tolist() == [1, 0] and ds.classes == ["a", "b"]


def test_decode_image_refuses_a_header_beyond_pillows_limit_naming_the_file(tmp_path, monkeypatch):
    """folder.decode_image: above Pillow's limit (its warning zone) and above twice it (its error)."""
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp_path / "x.png")  # 12 x 10 = 120 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert _message(ValueError, decode_image, tmp_path / "x.png", 4) == (
        f"{tmp_path / 'x.png'} claims 12 x 10 pixels, more than Pillow's limit of 100 "
        "(PIL.Image.MAX_IMAGE_PIXELS) for decoding safely"
    )
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # 120 > 2 x 50: Pillow's own error
    assert _message(ValueError, decode_image, tmp_path / "x.png", 4).startswith(
        f"{tmp_path / 'x.png'} is too large to decode safely: Image size (120 pixels) exceeds limit"
    )
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 120)  # exactly the limit: decoded
    assert decode_image(tmp_path / "x.png", 4).shape == (4, 4, 3)


def test_decode_image_checks_size_and_grayscale_and_gives_pillows_grey_resize(tmp_path):
    """folder.decode_image: size in [1, 4096], grayscale a bool; grey images are Pillow's "L" resize."""
    array = np.random.default_rng(1).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "x.png")
    assert _message(ValueError, decode_image, tmp_path / "x.png", 0) == "size must be in [1, 4096]; got 0"
    assert (
        _message(ValueError, decode_image, tmp_path / "x.png", 4097) == "size must be in [1, 4096]; got 4097"
    )
    assert _message(TypeError, decode_image, tmp_path / "x.png", 4, "yes").startswith("grayscale must be")
    assert _message(TypeError, decode_image, 5, 4) == "path must be a path (str or pathlib.Path); got 5 (int)"
    expected = np.asarray(Image.fromarray(array).convert("L").resize((5, 5), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(decode_image(tmp_path / "x.png", 5, grayscale=True), expected[:, :, None])
    with open(tmp_path / "x.png", "rb") as f:  # an open file is read too
        np.testing.assert_array_equal(decode_image(f, 5, grayscale=True), expected[:, :, None])


def test_read_image_folder_checks_size_grayscale_and_n_jobs_bounds(tmp_path):
    """folder.read_image_folder: size in [1, 4096], a bool grayscale, n_jobs >= 1 (1 allowed)."""
    root = _class_folder(tmp_path / "root")
    cache = tmp_path / "cache"
    assert (
        _message(ValueError, read_image_folder, root, 4097, cache_dir=cache)
        == "size must be in [1, 4096]; got 4097"
    )
    assert _message(TypeError, read_image_folder, root, 4, "no", cache_dir=cache).startswith(
        "grayscale must be"
    )
    assert _message(TypeError, read_image_folder, root, 4, cache_dir=cache, n_jobs=1.0).startswith(
        "n_jobs must be an integer; got 1.0"
    )
    assert not cache.exists()
    images, labels, classes = read_image_folder(root, 3, True, ["b", "a"], cache_dir=cache, n_jobs=1)
    assert images.shape == (2, 1, 3, 3) and labels.tolist() == [0, 1] and classes == ["b", "a"]


def test_fetch_file_checks_url_hash_and_file_name_naming_each(tmp_path):
    """download._check_url, _check_known_hash, _check_file_name: every refusal, before any download."""
    url, md5 = "https://example.org/f.bin", "md5:" + "0" * 32
    assert _message(TypeError, fetch_file, b"https://x/y", md5, path=tmp_path) == (
        "url must be a str; got b'https://x/y' (bytes)"
    )
    assert _message(ValueError, fetch_file, "ssh://host/f", md5, path=tmp_path) == (
        "url must be an http, https or ftp address such as https://host/file; got 'ssh://host/f'"
    )
    assert _message(ValueError, fetch_file, url, "", path=tmp_path) == (
        f"known_hash is required to download {url}, as 'sha256:<hex digest>' or 'md5:<hex digest>'; got ''"
    )
    for bad, algorithm in (("nohash:00", "nohash"), ("shake_128:00", "shake_128")):
        assert _message(ValueError, fetch_file, url, bad, path=tmp_path) == (
            f"known_hash must name a hash algorithm such as sha256 or md5; got {bad!r} (algorithm {algorithm!r})"
        )
    # Digest lengths from hashlib itself: md5 has 16 bytes (32 hex digits), sha256 32 (64).
    assert hashlib.md5().digest_size == 16 and hashlib.sha256().digest_size == 32
    for bad, algorithm, length in (
        ("md5:" + "0" * 31, "md5", 32),
        ("0" * 63, "sha256", 64),
        ("md5:" + "g" * 32, "md5", 32),
    ):
        assert _message(ValueError, fetch_file, url, bad, path=tmp_path) == (
            f"known_hash must be {algorithm}: followed by {length} hexadecimal digits; got {bad!r}"
        )
    for bad in ("", ".", "..", "a/b", "a\\b", "a\0b"):
        assert _message(ValueError, fetch_file, url, md5, fname=bad, path=tmp_path) == (
            f"fname must be a plain file name without '/', '\\' or '..', so the file stays in its folder; got {bad!r}"
        )
    assert (
        _message(TypeError, fetch_file, url, md5, fname=3, path=tmp_path)
        == "fname must be a file name (str); got 3 (int)"
    )
    assert _message(TypeError, fetch_file, url, md5, path=tmp_path, progress="yes").startswith(
        "progress must be"
    )
    assert list(tmp_path.iterdir()) == []


def test_fetch_file_says_what_failed_when_pooch_fails(tmp_path, monkeypatch):
    """download.fetch_file: a cut connection, a hash mismatch and pooch's other errors, each named."""
    import pooch
    import requests

    url, md5 = "https://example.org/f.bin", "md5:" + "0" * 32
    failures = iter(
        [
            requests.exceptions.ConnectionError("reset"),
            ValueError("MD5 hash of downloaded file (x) does not match the known hash: expected 0"),
            ValueError("Missing package 'tqdm'"),
        ]
    )

    def failing_retrieve(*args, **kwargs):
        raise next(failures)

    monkeypatch.setattr(pooch, "retrieve", failing_retrieve)
    assert _message(ConnectionError, fetch_file, url, md5, path=tmp_path) == (
        f"download of {url} failed or was cut off (ConnectionError); nothing was kept in {tmp_path}. "
        "Check the connection and call again."
    )
    assert _message(ValueError, fetch_file, url, md5, path=tmp_path) == (
        f"download of {url} did not match its known hash and was deleted: MD5 hash of downloaded file (x) "
        "does not match the known hash: expected 0"
    )
    assert _message(ValueError, fetch_file, url, md5, path=tmp_path) == (
        f"download of {url} failed: Missing package 'tqdm'"
    )


def test_fetch_file_returns_a_file_already_there_with_the_right_hash(tmp_path):
    """download.fetch_file: a present file whose MD5 (hashlib) matches is returned, nothing downloaded."""
    (tmp_path / "f.bin").write_bytes(b"deepimaging")
    digest = hashlib.md5(b"deepimaging").hexdigest()
    # example.invalid cannot resolve (RFC 2606): a download attempt would fail.
    path = fetch_file(
        "https://example.invalid/other", "MD5:" + digest.upper(), fname="f.bin", path=str(tmp_path)
    )
    assert path == tmp_path / "f.bin" and isinstance(path, Path)


def test_extract_archive_refusals_name_the_archive_and_the_member(tmp_path):
    """download.extract_archive / _check_member: missing archive, a file as target, absolute and escaping members."""
    import zipfile

    assert _message(FileNotFoundError, extract_archive, tmp_path / "no.zip", tmp_path / "out") == (
        f"archive {tmp_path / 'no.zip'} does not exist"
    )
    (tmp_path / "file").write_text("x")
    assert _message(FileExistsError, extract_archive, tmp_path / "no.zip", tmp_path / "file") == (
        f"cannot unpack {tmp_path / 'no.zip'} into {tmp_path / 'file'}: a file of that name exists"
    )
    for member, why in (
        ("/abs.txt", "has an absolute path"),
        ("C:/win.txt", "has an absolute path"),
        ("../up.txt", "would be written outside the target folder (path traversal)"),
        ("a/../../up.txt", "would be written outside the target folder (path traversal)"),
    ):
        archive = tmp_path / "bad.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("ok.txt", "fine")
            zf.writestr(zipfile.ZipInfo(member), "bad")
        assert _message(UnsafeArchiveError, extract_archive, archive, tmp_path / "out") == (
            f"refusing to extract {archive}: member {member!r} {why}"
        )
        assert not (tmp_path / "out").exists() and not (tmp_path / "up.txt").exists()
    archive = tmp_path / "dev.tar"
    with tarfile.open(archive, "w") as tf:
        fifo = tarfile.TarInfo("pipe")
        fifo.type = tarfile.FIFOTYPE
        tf.addfile(fifo)
    assert _message(UnsafeArchiveError, extract_archive, archive, tmp_path / "out") == (
        f"refusing to extract {archive}: member 'pipe' is a link or special file"
    )


def test_extract_archive_unpacks_zip_and_tar_alike_and_keeps_a_full_target(tmp_path):
    """download.extract_archive: the files of a zip and of a tar.gz (zipfile, tarfile), an unpacked target kept."""
    import zipfile

    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("d/x.txt", "zip")
    with tarfile.open(tmp_path / "a.tar.gz", "w:gz") as tf:
        info = tarfile.TarInfo("d/x.txt")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"tar"))
    assert extract_archive(tmp_path / "a.zip", tmp_path / "z") == tmp_path / "z"
    assert (tmp_path / "z" / "d" / "x.txt").read_text() == "zip"
    (tmp_path / "t").mkdir()  # an empty folder is filled
    assert extract_archive(str(tmp_path / "a.tar.gz"), str(tmp_path / "t")) == tmp_path / "t"
    assert (tmp_path / "t" / "d" / "x.txt").read_text() == "tar"
    # A target with something in it is complete (it appears only by a rename): returned unchanged.
    assert extract_archive(tmp_path / "a.zip", tmp_path / "t") == tmp_path / "t"
    assert (tmp_path / "t" / "d" / "x.txt").read_text() == "tar"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "a.zip", "t", "z"]  # no staging left


def test_image_dataset_refusals_name_labels_and_classes():
    """dataset.ImageDataset.__init__: labels' type, dtype, shape and range; classes' type; uint8 shape."""
    images = torch.rand(3, 1, 2, 2)
    assert _message(TypeError, ImageDataset, images, ["a", "b", "c"], ["x"]) == (
        "labels must be integer class indices; got list"
    )
    assert _message(TypeError, ImageDataset, images, [[0], [1, 2], [0]], ["x"]) == (
        "labels must be integer class indices; got list"
    )
    assert _message(TypeError, ImageDataset, images, torch.tensor([0.0, 1.0, 0.0]), ["a", "b"]) == (
        "labels must be integers; got dtype torch.float32"
    )
    assert _message(ValueError, ImageDataset, images, torch.zeros(3, 1).long(), ["a"]) == (
        "labels must have shape (3,) to match images; got shape (3, 1)"
    )
    for classes in ("ab", 2):
        assert _message(TypeError, ImageDataset, images, [0, 1, 0], classes) == (
            f"classes must be a list of class names; got {classes!r} ({type(classes).__name__})"
        )
    for labels, lo, hi in (([0, 2, 1], 0, 2), ([-1, 0, 1], -1, 1)):
        assert _message(ValueError, ImageDataset, images, labels, ("a", "b")) == (
            f"labels must be in [0, 1] for 2 classes; got values in [{lo}, {hi}]"
        )
    assert _message(
        ValueError, ImageDataset, torch.zeros(2, 4, 4, dtype=torch.uint8), [0, 1], ["a", "b"]
    ) == ("images must have shape (N, C, H, W); got shape (2, 4, 4)")
    empty = ImageDataset(torch.rand(0, 1, 2, 2), [], ["a"])  # no image: float64 [] becomes int64
    assert empty.labels.dtype == torch.int64 and len(empty) == 0
    ok = ImageDataset(images, np.array([1, 0, 1], np.int32), ("a", "b"))
    assert ok.labels.dtype == torch.int64 and ok.classes == ["a", "b"] and ok.num_classes == 2


def test_uint8_storage_is_read_as_value_over_255_one_batch_at_a_time():
    """dataset.as_float, ImageDataset.images/images_at/__getitem__/subset: v / 255 in float32, by NumPy."""
    from deepimaging.data.dataset import as_float

    array = np.arange(2 * 3 * 2 * 2, dtype=np.uint8).reshape(2, 3, 2, 2) * 10
    expected = array.astype(np.float32) / np.float32(255)  # NumPy's float32 division, the oracle
    ds = ImageDataset(torch.from_numpy(array.copy()), [1, 0], ["a", "b"])
    assert repr(ds) == "ImageDataset(2 images of shape (3, 2, 2) (stored as uint8); a: 1, b: 1)"
    image, label = ds[1]
    np.testing.assert_array_equal(image.numpy(), expected[1])
    assert int(label) == 0 and ds.storage.dtype == torch.uint8  # indexing converted only that image
    np.testing.assert_array_equal(ds.images_at([0]).numpy(), expected[:1])
    sub = ds.subset([1])
    assert sub.storage.dtype == torch.uint8 and sub.labels.tolist() == [0] and sub.classes == ["a", "b"]
    np.testing.assert_array_equal(ds.images.numpy(), expected)
    assert ds.storage.dtype == torch.float32 and ds.images is ds.storage  # converted once, then kept
    assert repr(ds) == "ImageDataset(2 images of shape (3, 2, 2); a: 1, b: 1)"
    floats = torch.rand(2, 2)
    assert as_float(floats) is floats
    assert (
        _message(TypeError, as_float, array) == "images must be a torch.Tensor (uint8 or float); got ndarray"
    )


def test_loader_batches_in_order_and_checks_batch_size():
    """dataset.ImageDataset.loader: batch_size >= 1 and seed >= 0 named; unshuffled batches keep the order."""
    ds = ImageDataset(torch.arange(5.0).reshape(5, 1, 1, 1) / 5, [0, 1, 0, 1, 0], ["a", "b"])
    assert _message(ValueError, ds.loader, batch_size=0) == "batch_size must be in [1, inf]; got 0"
    assert _message(ValueError, ds.loader, seed=-1) == "seed must be in [0, 18446744073709551615]; got -1"
    batches = list(ds.loader(batch_size=2))
    assert [len(labels) for _, labels in batches] == [2, 2, 1]
    assert torch.equal(torch.cat([images for images, _ in batches]), ds.images)
    assert list(ds.loader(batch_size=1, seed=0))[0][0].shape == (1, 1, 1, 1)


def test_split_refusals_name_each_argument():
    """dataset.split: the dataset's type, each fraction's bounds, the seed's, and their sum."""
    ds = _one_per_class_dataset(10, ["a", "b"])
    assert _message(TypeError, split, [1, 2]) == "dataset must be an ImageDataset; got list"
    assert _message(ValueError, split, ds, val=-0.1) == "val must be in [0.0, 1.0]; got -0.1"
    assert _message(ValueError, split, ds, val=1.5) == "val must be in [0.0, 1.0]; got 1.5"
    assert _message(ValueError, split, ds, test=-0.1) == "test must be in [0.0, 1.0]; got -0.1"
    assert _message(TypeError, split, ds, val="0.1").startswith("val must be a number; got '0.1'")
    assert _message(ValueError, split, ds, seed=-1) == "seed must be in [0, 4294967295]; got -1"
    assert _message(ValueError, split, ds, seed=2**32) == "seed must be in [0, 4294967295]; got 4294967296"
    assert _message(ValueError, split, ds, val=0.5, test=0.5) == (
        "val + test must be below 1 so training keeps images; got 1.0"
    )
    assert [len(p) for p in split(ds, val=0.0, test=0.0, seed=2**32 - 1)] == [20, 0, 0]
    message = _message(ValueError, split, _one_per_class_dataset(1, ["a", "b"]), val=0.0, test=0.5)
    assert message.startswith("cannot make a stratified split of 2 images with fraction 0.5: ")
    assert message.endswith(" (use more images per class or a different fraction)")


def test_split_parts_are_sklearns_stratified_splits_and_disjoint():
    """dataset.split: test then val drawn by train_test_split (stratified, same seed), disjoint, complete."""
    from sklearn.model_selection import train_test_split

    labels = np.repeat([0, 1, 2], [10, 20, 30])
    ds = ImageDataset(torch.arange(60.0).reshape(60, 1, 1, 1) / 60, torch.from_numpy(labels), ["a", "b", "c"])
    train, val, test = split(ds, val=0.2, test=0.25, seed=7)
    rest, oracle_test = train_test_split(np.arange(60), test_size=0.25, stratify=labels, random_state=7)
    oracle_train, oracle_val = train_test_split(
        rest, test_size=0.2 / 0.75, stratify=labels[rest], random_state=7
    )

    def ids(part):
        return sorted((part.images.flatten() * 60).round().long().tolist())

    assert (
        ids(test) == sorted(oracle_test)
        and ids(val) == sorted(oracle_val)
        and ids(train) == sorted(oracle_train)
    )
    assert sorted(ids(train) + ids(val) + ids(test)) == list(range(60))
    for part in (train, val, test):  # labels travel with their images
        np.testing.assert_array_equal(
            part.labels.numpy(), labels[(part.images.flatten() * 60).round().long().numpy()]
        )


def test_medmnist_refusals_name_the_file_and_what_it_holds(tmp_path):
    """medmnist.load_medmnist/_read_split/_to_dataset: each refusal of a file that is not MedMNIST."""
    expected = "expected a MedMNIST .npz file with train/val/test_images and train/val/test_labels"
    path = tmp_path / "x.npz"

    def refusal(error=ValueError, split="test"):
        return _message(error, load_medmnist, "bloodmnist", split, path=path)

    assert refusal(FileNotFoundError) == f"MedMNIST file {path} does not exist (expected a .npz file)"
    path.write_text("<html>not found</html>")
    assert refusal() == f"{path} is not a .npz (zip) archive; {expected}"
    np.savez(path, test_images=np.zeros((2, 4, 4, 3), np.uint8))
    assert refusal() == f"{path} lacks the key(s) ['test_labels']; {expected}, found ['test_images']"
    np.savez(path, test_images=np.array([None, 1], dtype=object), test_labels=np.zeros((2, 1), int))
    assert refusal() == (
        f"{path} cannot be read as MedMNIST data: it holds Python objects, not numeric arrays; {expected}"
    )
    for images, described in (
        (np.zeros((2, 4, 4, 3), np.float32), "float32 of shape (2, 4, 4, 3)"),
        (np.zeros((2, 4, 4, 2), np.uint8), "uint8 of shape (2, 4, 4, 2)"),
        (np.zeros((2, 4), np.uint8), "uint8 of shape (2, 4)"),
    ):
        np.savez(path, test_images=images, test_labels=np.zeros((2, 1), int))
        assert refusal() == (
            f"{path}: images must be uint8 of shape (N, H, W) or (N, H, W, C), C = 1 or 3; got {described}"
        )
    np.savez(path, test_images=np.zeros((2, 4, 4), np.uint8), test_labels=np.zeros((2, 1), np.float32))
    assert refusal() == f"{path}: labels must be integer class indices; got dtype float32"
    for labels in (np.zeros((2, 2), int), np.zeros((3, 1), int), np.array(0)):
        np.savez(path, test_images=np.zeros((2, 4, 4), np.uint8), test_labels=labels)
        assert refusal() == (
            f"{path}: expected one label per image, shape (2, 1); got {labels.shape} "
            "(multi-label sets such as ChestMNIST are not supported)"
        )


def test_medmnist_reads_grey_and_rgb_splits_as_numpy_holds_them(tmp_path):
    """medmnist._to_dataset: (N, H, W) grey and (N, H, W, 3) RGB become uint8 (N, C, H, W); labels flat."""
    rng = np.random.default_rng(0)
    grey, rgb = (
        rng.integers(0, 256, (3, 5, 5), dtype=np.uint8),
        rng.integers(0, 256, (2, 5, 5, 3), dtype=np.uint8),
    )
    np.savez(tmp_path / "p.npz", val_images=grey, val_labels=np.array([[1], [0], [1]]))
    np.savez(
        tmp_path / "b.npz",
        train_images=rgb,
        train_labels=np.array([[7], [0]]),
        val_images=grey,
        val_labels=np.zeros((3, 1), int),
    )
    ds = load_medmnist("pneumoniamnist", "val", path=tmp_path / "p.npz")
    assert ds.storage.dtype == torch.uint8 and ds.image_shape == (1, 5, 5)
    np.testing.assert_array_equal(ds.storage.numpy()[:, 0], grey)
    assert ds.labels.tolist() == [1, 0, 1] and ds.classes == ["normal", "pneumonia"]
    ds = load_medmnist("bloodmnist", "train", path=str(tmp_path / "b.npz"))
    np.testing.assert_array_equal(ds.storage.numpy(), rgb.transpose(0, 3, 1, 2))
    assert ds.labels.tolist() == [7, 0] and ds.classes[7] == "platelet" and len(ds.classes) == 8
    empty = tmp_path / "e.npz"
    np.savez(empty, test_images=np.zeros((0, 5, 5), np.uint8), test_labels=np.zeros((0, 1), int))
    assert len(load_medmnist("bloodmnist", "test", path=empty)) == 0


def test_medmnist_names_and_sizes_are_checked_and_named(tmp_path):
    """medmnist._check_name_size, load_medmnist: name, size (bool and float too), split, download; the missing file."""
    from deepimaging.data import medmnist_url

    names = "['bloodmnist', 'breastmnist', 'dermamnist', 'pathmnist', 'pneumoniamnist']"
    assert _message(ValueError, medmnist_url, 3, 28) == f"unknown MedMNIST name 3; expected one of {names}"
    for size in (True, 28.0, 56):
        assert _message(ValueError, medmnist_url, "bloodmnist", size) == (
            f"MedMNIST size must be one of [28, 64, 128, 224]; got {size!r}"
        )
    assert (
        medmnist_url("dermamnist", 224)
        == "https://zenodo.org/records/10519652/files/dermamnist_224.npz?download=1"
    )
    assert (
        medmnist_url("dermamnist", 28)
        == "https://zenodo.org/records/10519652/files/dermamnist.npz?download=1"
    )
    assert _message(ValueError, load_medmnist, "bloodmnist", "dev", path=tmp_path) == (
        "split must be one of ['test', 'train', 'val']; got 'dev'"
    )
    assert _message(
        TypeError, load_medmnist, "bloodmnist", "test", download="no", cache_dir=tmp_path
    ).startswith("download must be")
    where = tmp_path / "medmnist" / "breastmnist_128.npz"
    assert _message(FileNotFoundError, load_medmnist, "breastmnist", "test", 128, cache_dir=tmp_path) == (
        f"breastmnist at size 128 is not at {where}. Download it from "
        "https://zenodo.org/records/10519652/files/breastmnist_128.npz?download=1 "
        "(MD5 363e4b3f8d712e9b5de15470a2aaadf1) and pass path=, or call with download=True."
    )


def test_bccd_refusals_name_the_folder_split_file_annotation_and_class(tmp_path, monkeypatch):
    """bccd.find_bccd/_split_ids/_read_annotation: each missing piece named, with where to get BCCD."""
    from deepimaging.data import find_bccd

    get = (
        "Get it with deepimaging.data.download_bccd(), or `git clone https://github.com/Shenggan/BCCD_Dataset` "
        "and pass its BCCD folder (or set DEEPIMAGING_BCCD)."
    )
    assert (
        _message(FileNotFoundError, find_bccd, tmp_path / "none")
        == f"BCCD folder {tmp_path / 'none'} does not exist. {get}"
    )
    monkeypatch.delenv("DEEPIMAGING_BCCD", raising=False)
    monkeypatch.setenv("DEEPIMAGING_DATA", str(tmp_path / "data"))
    own, downloaded = (
        tmp_path / "data" / "BCCD",
        tmp_path / "data" / "downloads" / "BCCD_Dataset-d272fb1" / "BCCD",
    )
    assert _message(FileNotFoundError, find_bccd) == (
        f"BCCD was not found in {own} nor in {downloaded}. Get it with deepimaging.data.download_bccd(), or "
        "`git clone https://github.com/Shenggan/BCCD_Dataset` and pass its BCCD folder (or set DEEPIMAGING_BCCD)."
    )
    # The two defaults, in the docstring's order: the downloaded copy when there is no own copy ...
    _tiny_bccd(downloaded)
    assert find_bccd() == downloaded
    _tiny_bccd(own)  # ... and one's own copy first when both exist
    assert find_bccd() == own
    monkeypatch.setenv("DEEPIMAGING_BCCD", str(downloaded))
    assert find_bccd() == downloaded
    assert (
        find_bccd(tmp_path / "data") == own
    )  # a folder above: the first VOC layout by name ("BCCD" < "downloads")

    root = _tiny_bccd(tmp_path / "voc")
    listing = root / "ImageSets" / "Main" / "val.txt"
    assert _message(FileNotFoundError, load_bccd_images, root, "val") == (
        f"BCCD split file {listing} does not exist (expected ImageSets/Main/val.txt)"
    )
    listing.write_text("\nBloodImage_00009\n")
    xml = root / "Annotations" / "BloodImage_00009.xml"
    assert (
        _message(FileNotFoundError, load_bccd_images, root, "val") == f"BCCD annotation {xml} does not exist"
    )
    xml.write_text("<annotation><object><name> Neutrophil </name></object></annotation>")
    assert _message(ValueError, load_bccd_images, root, "val") == (
        f"{xml}: unknown class 'Neutrophil'; expected one of ['RBC', 'WBC', 'Platelets']"
    )


def test_bccd_photos_give_their_pixels_boxes_and_labels_as_the_voc_files_say(tmp_path):
    """bccd.BoxedImages.__getitem__, _read_annotation: PIL's pixels / 255, boxes and labels from the XML."""
    root = _tiny_bccd(tmp_path / "BCCD")
    xml = root / "Annotations" / "BloodImage_00001.xml"
    xml.write_text(
        "<annotation>"
        "<object><name>Platelets</name><bndbox><xmin>4</xmin><ymin>6</ymin><xmax>9.5</xmax><ymax>8</ymax></bndbox></object>"
        "<object><name>WBC</name><bndbox><xmin>30</xmin><ymin>10</ymin><xmax>30</xmax><ymax>40</ymax></bndbox></object>"
        "<object><name>RBC</name><bndbox><xmin>3</xmin><ymin>10</ymin><xmax>5</xmax><ymax>10</ymax></bndbox></object>"
        "</annotation>"
    )
    photos = load_bccd_images(root, "train")
    image, boxes, labels = photos[0]
    expected = np.asarray(Image.open(root / "JPEGImages" / "BloodImage_00001.jpg").convert("RGB"))
    np.testing.assert_allclose(image.numpy(), expected.transpose(2, 0, 1) / 255, atol=1e-7)
    assert image.dtype == torch.float32 and image.shape == (3, 60, 80)
    # Degenerate boxes (zero width, zero height) are dropped; the rest keep the XML's numbers.
    assert boxes.tolist() == [[4.0, 6.0, 9.5, 8.0]] and labels.tolist() == [2]
    assert repr(photos) == "BoxedImages(1 photos; boxes RBC: 0, WBC: 0, Platelets: 1)"


def test_bccd_crops_are_pillows_resized_squares_centred_on_each_box(tmp_path):
    """bccd._crop_boxes: the square of side max(w, h) around the box, moved inside the photo, resized by Pillow."""
    from deepimaging.data import load_bccd_crops

    root = _tiny_bccd(tmp_path / "BCCD")
    photo = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(photo).save(root / "JPEGImages" / "BloodImage_00001.png")
    (root / "JPEGImages" / "BloodImage_00001.png").replace(
        root / "JPEGImages" / "BloodImage_00001.jpg"
    )  # lossless
    ds = load_bccd_crops(root, "train", size=6, cache_dir=tmp_path / "cache", n_jobs=1)
    assert ds.classes == ["RBC", "WBC", "Platelets"] and ds.labels.tolist() == [0, 1]
    resized = []
    # By hand: box (2, 2, 20, 20) -> side 18, centred at 11: (2, 2, 20, 20); box (30, 10, 60, 40) -> side 30 at
    # (30, 10, 60, 40). Pillow's resize with a box is the oracle for the resampling.
    for box in ((2, 2, 20, 20), (30, 10, 60, 40)):
        resized.append(np.asarray(Image.fromarray(photo).resize((6, 6), Image.Resampling.BILINEAR, box=box)))
    np.testing.assert_array_equal(ds.storage.numpy(), np.stack(resized).transpose(0, 3, 1, 2))
    from deepimaging.data.bccd import _crop_boxes

    # A box past the photo's corner: its square is moved back inside, to (70, 50, 80, 60); a box taller
    # than the photo: side = the height, 60, at (0, 0, 60, 60).
    crops = _crop_boxes(
        root / "JPEGImages" / "BloodImage_00001.jpg",
        torch.tensor([[75.0, 55.0, 85.0, 65.0], [10.0, 0.0, 15.0, 90.0]]),
        4,
    )
    for crop, box in zip(crops, ((70, 50, 80, 60), (0, 0, 60, 60))):
        expected = np.asarray(Image.fromarray(photo).resize((4, 4), Image.Resampling.BILINEAR, box=box))
        np.testing.assert_array_equal(crop, expected.transpose(2, 0, 1))


def test_skipped_file_warnings_count_and_name_the_files_and_the_folder(tmp_path):
    """folder._warn_skipped / _image_names: the count, the folder, the first ten names and how many more."""
    root = _class_folder(tmp_path / "root")
    for i in range(12):
        (root / "a" / f"bad{i:02d}.png").write_bytes(b"not a png")
    os.symlink("loop.png", root / "b" / "loop.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_image_folder(root, size=4, cache_dir=tmp_path / "cache", n_jobs=1)
    assert [w.category for w in caught] == [UserWarning, UserWarning]
    assert str(caught[0].message) == (
        f"skipped 1 link(s) in {root / 'b'} that lead to no file (a link to itself or a cycle of links): loop.png"
    )
    names = ", ".join(f"a/bad{i:02d}.png" for i in range(10))
    assert str(caught[1].message) == f"skipped 12 unreadable image file(s) under {root}: {names} and 2 more"


def test_a_cache_array_without_its_json_is_rebuilt_silently(tmp_path):
    """cache.cached_array 6 (`or` for `and`: an array without its JSON read as a damaged entry, with a warning)."""
    from deepimaging.data.cache import cached_array, save_array

    save_array(tmp_path / "entry.npy", np.zeros(3))  # an interrupted build: the JSON is written last

    def build():
        return np.arange(4.0), {"n": 4}

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        array, meta = cached_array(tmp_path, "entry", build)
    np.testing.assert_array_equal(array, np.arange(4.0))
    assert meta == {"n": 4} and json.loads((tmp_path / "entry.json").read_text()) == {"n": 4}


def test_fingerprint_ignores_the_order_of_parameters_and_sees_each_value(tmp_path):
    """cache.fingerprint 36 (sort_keys=None: the same parameters in another order named another entry)."""
    from deepimaging.data.cache import fingerprint

    (tmp_path / "x").write_bytes(b"1")
    key = fingerprint([tmp_path / "x"], root=tmp_path, size=4, grayscale=False)
    assert key == fingerprint([tmp_path / "x"], root=tmp_path, grayscale=False, size=4)
    assert len(key) == 24 and int(key, 16) >= 0
    assert key != fingerprint([tmp_path / "x"], root=tmp_path, size=5, grayscale=False)
    assert key != fingerprint([tmp_path / "x"], root=tmp_path, size=4, grayscale=True)


def test_fetch_archive_names_path_and_fetch_file_passes_progress_to_pooch(tmp_path, monkeypatch):
    """download.fetch_archive 8 (path named XXpathXX), fetch_file 41 (progress not passed to pooch)."""
    import pooch

    from deepimaging.data.download import fetch_archive

    md5 = "md5:" + "0" * 32
    assert _message(TypeError, fetch_archive, "https://example.org/a.zip", md5, "a", path=3) == (
        "path must be a path (str or pathlib.Path); got 3 (int)"
    )
    calls = []
    monkeypatch.setattr(
        pooch, "retrieve", lambda *args, **kwargs: calls.append(kwargs) or str(tmp_path / "f")
    )
    for progress in (True, False):
        fetch_file("https://example.org/f", md5, fname="f", path=tmp_path, progress=progress)
    assert [c["progressbar"] for c in calls] == [True, False]
    assert calls[0]["known_hash"] == md5 and calls[0]["fname"] == "f" and calls[0]["path"] == tmp_path


def test_kaggle_loader_reads_only_the_four_classes_and_names_a_missing_split(tmp_path):
    """kaggle.load_kaggle_blood_cells 27 (classes None: any other folder in TRAIN read as a class)."""
    images = tmp_path / "dl" / "dataset2-master" / "images"
    _class_folder(images / "TRAIN", ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL", "OTHER"))
    ds = load_kaggle_blood_cells(tmp_path, "train", size=4, cache_dir=tmp_path / "cache")
    assert ds.classes == ["eosinophil", "lymphocyte", "monocyte", "neutrophil"] and ds.labels.tolist() == [
        0,
        1,
        2,
        3,
    ]
    assert _message(
        FileNotFoundError, load_kaggle_blood_cells, tmp_path, "test_simple", cache_dir=tmp_path / "c"
    ) == (f"{images} has no TEST_SIMPLE folder; found ['TRAIN']")
    assert _message(ValueError, load_kaggle_blood_cells, tmp_path, "VAL") == (
        "split must be one of ['TEST', 'TEST_SIMPLE', 'TRAIN']; got 'VAL'"
    )


def test_medmnist_header_size_counts_bytes_per_item(tmp_path):
    """medmnist._check_array_header 13 (shape product divided by the item size, not multiplied)."""
    path = tmp_path / "bloodmnist.npz"
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((1, 4, 4, 3), np.uint8))
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("test_images.npy", buffer.getvalue())
        with archive.open("test_labels.npy", "w") as member:
            header = {"descr": "<i8", "fortran_order": False, "shape": (3 * 10**9, 1)}
            np.lib.format.write_array_header_1_0(member, header)
    # By hand: 3e9 int64 labels = 2.4e10 bytes = 22.35 GiB, above the 16 GiB limit.
    with pytest.raises(
        ValueError, match=r"test_labels claims shape \(3000000000, 1\) of int64 = 22\.4 GiB, more"
    ):
        load_medmnist("bloodmnist", "test", path=path)


# --- the simulator: each documented property over many draws ------------------------------------


def test_a_red_cell_is_painted_where_its_centre_says_in_pixel_centre_coordinates():
    """smear._paint_red_cells 3 (pixel centres at i - 0.5: every red cell one pixel off)."""
    from deepimaging.data.smear import _paint_red_cells

    size = 40
    painted = _paint_red_cells(
        torch.zeros(1, 3, size, size),
        torch.tensor([[[15.0, 22.0]]]),
        torch.tensor([[6.0]]),
        torch.Generator(),
    )[0, 0]  # red channel: the cell on black
    from skimage.measure import regionprops

    # Pixel (i, j) covers [i, i + 1) x [j, j + 1): its centre is (i + 0.5, j + 0.5); skimage's centroid
    # counts pixel centres at integers, so the disc's centroid is (15 - 0.5, 22 - 0.5).
    # Half the cell's red (0.87) marks its edge: the soft disc is 0.5 at the radius.
    region = regionprops((painted > 0.87 / 2).numpy().astype(int), intensity_image=painted.numpy())[0]
    np.testing.assert_allclose(region.centroid_weighted, (14.5, 21.5), atol=0.05)
    assert abs(math.sqrt(region.area / math.pi) - 6.0) < 0.5


def test_red_cells_sit_just_outside_the_white_cell_at_the_documented_distances(monkeypatch):
    """_render_cells 88 (red cells 0.04 to 0.16 of the image out instead of 0.16 to 0.28), 80, 115."""
    import deepimaging.data.smear as smear_module

    painted = []
    paint = smear_module._paint_red_cells

    def recording_paint(image, centres, radii, g):
        painted.append((centres.clone(), radii.clone()))
        return paint(image, centres, radii, g)

    monkeypatch.setattr(smear_module, "_paint_red_cells", recording_paint)
    size, n = 64, 120
    _, alpha, _, radius = smear_module._render_cells(
        torch.full((n,), 1), size, torch.Generator().manual_seed(0)
    )
    ((centres, radii),) = painted
    axis = torch.arange(size) + 0.5
    a = alpha[:, 0]
    cell_y = (a * axis[:, None]).sum(dim=(1, 2)) / a.sum(dim=(1, 2))  # the white cell's centre (its alpha)
    cell_x = (a * axis[None, :]).sum(dim=(1, 2)) / a.sum(dim=(1, 2))
    gap = (
        ((centres[..., 0] - cell_y[:, None]) ** 2 + (centres[..., 1] - cell_x[:, None]) ** 2).sqrt()
        - radius[:, None]
    ) / size
    # Documented: five red cells per image, centred 0.16 + 0.12 U beyond the white cell's radius
    # (uniform on [0.16, 0.28], mean 0.22, sd 0.035), radii 0.15 + 0.02 N of the size.
    assert centres.shape == (n, 5, 2) and radii.shape == (n, 5)
    assert gap.min() > 0.155 and gap.max() < 0.285 and abs(float(gap.mean()) - 0.22) < 0.005
    r = radii / size
    assert abs(float(r.mean()) - 0.15) < 0.002 and abs(float(r.std()) - 0.02) < 0.002
    # Directions: uniform on the circle, drawn per image and per red cell (mean resultant near 0,
    # and no two images share their five angles).
    angle = torch.atan2(centres[..., 0] - cell_y[:, None], centres[..., 1] - cell_x[:, None])
    assert float(torch.stack([angle.cos(), angle.sin()]).mean(dim=(1, 2)).norm()) < 0.1
    assert len({tuple(row) for row in angle.round(decimals=3).tolist()}) == n


def test_simulate_blood_smear_returns_the_documented_balanced_seeded_dataset():
    """smear.simulate_blood_smear: shape, n_per_class of each class in a seeded order, [0, 1], every chunk drawn."""
    size = 128  # 2**18 / 128**2 = 16 images per chunk: 20 images take two chunks
    ds = simulate_blood_smear(n_per_class=5, size=size, seed=1)
    assert ds.images.shape == (20, 3, size, size) and ds.images.dtype == torch.float32
    assert ds.classes == CLASSES == ["eosinophil", "lymphocyte", "monocyte", "neutrophil"]
    assert torch.bincount(ds.labels, minlength=4).tolist() == [5, 5, 5, 5]
    assert ds.labels.tolist() != sorted(ds.labels.tolist())  # shuffled
    assert float(ds.images.min()) >= 0 and float(ds.images.max()) <= 1
    # Every image, in both chunks, is a drawn smear: plasma in its corners, a dark nucleus inside.
    corners = ds.images[:, :, :4, :4].mean(dim=(2, 3))
    assert float((corners - torch.tensor(_PLASMA)).abs().max()) < 0.35
    assert bool((ds.images.mean(dim=1).amin(dim=(1, 2)) < 0.5).all())
    assert ds.images.std(dim=(1, 2, 3)).min() > 0.05


def test_simulator_seeds_span_what_torch_generators_accept():
    """simulate_blood_smear 25 / simulate_smear_field: seed in [0, 2**64 - 1], named when outside."""
    assert len(simulate_blood_smear(n_per_class=1, size=16, seed=2**64 - 1)) == 4
    for call in (simulate_blood_smear, simulate_smear_field):
        kwargs = (
            {"n_per_class": 1, "size": 16}
            if call is simulate_blood_smear
            else {"size": 32, "cell_size": 16, "n_cells": 1}
        )
        for seed in (-1, 2**64):
            assert (
                _message(ValueError, call, seed=seed, **kwargs)
                == f"seed must be in [0, 18446744073709551615]; got {seed}"
            )


def test_simulate_blood_smear_checks_each_argument_and_the_memory_it_asks_for():
    """smear.simulate_blood_smear / _check_memory: n_per_class >= 1, size >= 16, at most 4 GiB (inclusive)."""
    assert (
        _message(ValueError, simulate_blood_smear, n_per_class=0) == "n_per_class must be in [1, inf]; got 0"
    )
    assert _message(ValueError, simulate_blood_smear, size=15) == "size must be in [16, inf]; got 15"
    assert _message(TypeError, simulate_blood_smear, size=16.0) == "size must be an integer; got 16.0 (float)"
    # By hand: n images of 3 x 16**2 float32 take n x 3072 bytes: at most 2**32 for n <= 1398101.3.
    assert _message(ValueError, simulate_blood_smear, n_per_class=349526, size=16) == (
        "n_per_class and size ask for 1398104 RGB image(s) of 16 x 16 float32 pixels = 4 GiB, more than the "
        "4 GiB this simulator allocates; choose fewer or smaller images"
    )
    from deepimaging.data.smear import _check_memory

    _check_memory(1398101, 16, "n")  # 4,294,966,272 bytes: within 2**32 = 4,294,967,296, accepted
    assert _message(ValueError, _check_memory, 1398102, 16, "n").startswith("n ask for 1398102 RGB image(s)")


def test_smear_field_draws_every_class_and_checks_size_against_cell_size():
    """simulate_smear_field 131 (labels from 1: no eosinophil in any field); size >= 2 cell_size."""
    _, boxes, labels, classes = simulate_smear_field(size=128, n_cells=20, cell_size=16, seed=0)
    assert classes == CLASSES and labels.dtype == torch.int64 and boxes.shape == (20, 4)
    # 20 uniform draws from 4 classes miss one with probability 4 x 0.75**20 = 1.3 %; this seed has all.
    assert sorted(set(labels.tolist())) == [0, 1, 2, 3]
    assert _message(ValueError, simulate_smear_field, size=63, cell_size=32) == (
        "size must be at least 2 * cell_size = 64 pixels; got size = 63"
    )
    assert (
        _message(ValueError, simulate_smear_field, size=0, cell_size=16) == "size must be in [1, inf]; got 0"
    )
    assert simulate_smear_field(size=64, n_cells=1, cell_size=32)[0].shape == (3, 64, 64)
    # At most four 32-pixel squares fit in a 64 x 64 field: the count placed is 1 to 4.
    with pytest.raises(
        ValueError,
        match=r"^cannot place n_cells = 5 cells of cell_size = 32 px without overlap in a size = 64 px field; "
        r"placed [1-4] \(use a larger size or fewer cells\)$",
    ):
        simulate_smear_field(size=64, n_cells=5, cell_size=32)


def test_smear_field_boxes_are_square_around_each_white_cell_and_do_not_overlap():
    """simulate_smear_field: boxes of side 2 r inside the field, pairwise apart, each over a dark nucleus."""
    size, cell = 256, 32
    image, boxes, _, _ = simulate_smear_field(size=size, n_cells=8, cell_size=cell, seed=2)
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert torch.allclose(width, height)
    assert (
        float(width.min()) > 2 * 0.18 * cell and float(width.max()) < 2 * 0.43 * cell
    )  # radii of 0.25 to 0.34 +- 3 sd
    assert float(boxes.min()) >= 0 and float(boxes.max()) <= size
    for i in range(8):
        x0, y0, x1, y1 = boxes[i].tolist()
        inside = image[:, int(y0) : int(y1) + 1, int(x0) : int(x1) + 1].mean(dim=0)
        assert float(inside.min()) < 0.5  # a nucleus (~0.43) lies in every box
        for j in range(i):  # the cells' squares do not overlap, so neither do their boxes
            a, b = boxes[i].tolist(), boxes[j].tolist()
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


# --- the cache and the names -----------------------------------------------------------------------


def test_data_dir_and_as_path_name_the_parameter_and_what_arrived(tmp_path, monkeypatch):
    """cache.data_dir / as_path: cache_dir or $DEEPIMAGING_DATA, sub a plain name; each refusal named."""
    from deepimaging.data.cache import as_path, data_dir

    assert data_dir(tmp_path, "decoded") == tmp_path / "decoded" and data_dir(str(tmp_path)) == tmp_path
    assert data_dir(tmp_path, "") == tmp_path
    monkeypatch.setenv("DEEPIMAGING_DATA", str(tmp_path / "env"))
    assert data_dir(sub="medmnist") == tmp_path / "env" / "medmnist"
    monkeypatch.setenv("DEEPIMAGING_DATA", "")  # empty: the user cache folder (platformdirs)
    import platformdirs

    assert data_dir() == Path(platformdirs.user_cache_dir("deepimaging"))
    for sub in (".", "..", "a/b", 3):
        assert _message(ValueError, data_dir, tmp_path, sub) == (
            f"sub must be a plain folder name inside the data folder (no '/', no '..'); got {sub!r}"
        )
    assert (
        _message(TypeError, as_path, b"x", "root")
        == "root must be a path (str or pathlib.Path); got b'x' (bytes)"
    )
    assert _message(ValueError, as_path, "", "root") == "root must be a path; got an empty string"
    assert _message(ValueError, as_path, "a\0b", "cache_dir") == (
        "cache_dir must be a path without NUL characters; got 'a\\x00b'"
    )
    assert as_path("~/x", "root") == Path.home() / "x"


def test_cache_write_errors_say_what_to_do_for_a_full_disk_a_read_only_folder_and_the_rest(
    tmp_path, monkeypatch
):
    """cache.atomic_write / _explain: ENOSPC, EACCES/EPERM/EROFS and any other errno, each with its advice."""
    import errno

    from deepimaging import _util
    from deepimaging.data.cache import atomic_write

    for code, hint in (
        (
            errno.ENOSPC,
            f"the disk holding the cache folder {tmp_path} is full; free space there, or pass cache_dir= (or set DEEPIMAGING_DATA) to a folder on another disk",
        ),
        (
            errno.EACCES,
            f"the cache folder {tmp_path} is not writable; pass cache_dir= (or set DEEPIMAGING_DATA) to a folder you can write to",
        ),
        (
            errno.EPERM,
            f"the cache folder {tmp_path} is not writable; pass cache_dir= (or set DEEPIMAGING_DATA) to a folder you can write to",
        ),
        (
            errno.EROFS,
            f"the cache folder {tmp_path} is not writable; pass cache_dir= (or set DEEPIMAGING_DATA) to a folder you can write to",
        ),
        (
            errno.EIO,
            f"could not write to the cache folder {tmp_path}: Input/output error",
        ),
    ):

        def failing(path, write, code=code):
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(_util, "atomic_write", failing)
        with pytest.raises(OSError) as info:
            atomic_write(tmp_path / "x.npy", lambda f: None)
        assert info.value.errno == code and type(info.value) is type(OSError(code, ""))
        assert info.value.strerror == hint


def test_a_damaged_cache_entry_that_cannot_be_removed_says_so(tmp_path, monkeypatch):
    """cache.cached_array: a damaged entry whose file cannot be deleted names the file; a missing meta key is damage."""
    import errno

    from deepimaging.data.cache import cached_array

    def build():
        return np.arange(3), {"labels": [0]}

    cached_array(tmp_path, "e", build, meta_keys=("labels",))
    (tmp_path / "e.json").write_text('{"other": 1}')  # valid JSON without the key: damaged
    with pytest.warns(UserWarning, match=r"e\.json does not hold the keys \['labels'\]\); rebuilding it$"):
        array, meta = cached_array(tmp_path, "e", build, meta_keys=("labels",))
    assert meta == {"labels": [0]} and array.tolist() == [0, 1, 2]
    (tmp_path / "e.json").write_text("{")
    real_unlink = Path.unlink

    def refusing_unlink(self, missing_ok=False):
        if self.suffix == ".json":
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refusing_unlink)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(PermissionError) as info:
            cached_array(tmp_path, "e", build, meta_keys=("labels",))
    assert (
        info.value.strerror
        == f"the damaged cache file {tmp_path / 'e.json'} cannot be removed; delete it by hand"
    )
    assert (
        info.value.errno == errno.EACCES
    )  # cache.cached_array 23 (errno None): the errno os.unlink gave is kept


def test_dataset_names_list_the_public_loaders_and_refuse_the_rest():
    """names.dataset_names / dataset_loader: 'blood_smear' then every load_<name> of deepimaging.data, sorted."""
    import deepimaging.data as data
    from deepimaging.data.names import dataset_names

    loaders = sorted(n[5:] for n in data.__all__ if n.startswith("load_"))
    assert dataset_names() == ["blood_smear"] + loaders and "digits" in loaders
    assert (
        _message(TypeError, dataset_loader, 3)
        == "dataset must be a name such as 'blood_smear' or 'digits'; got int"
    )
    for name in ("simulate_blood_smear", "split", "nothing"):
        assert (
            _message(ValueError, dataset_loader, name)
            == f"unknown dataset name {name!r}; available: {dataset_names()}"
        )
    assert all(dataset_loader(n) is getattr(data, "load_" + n) for n in loaders)


def test_load_digits_is_scikit_learns_digits_scaled_to_one():
    """digits.load_digits: sklearn's 1,797 8 x 8 digits, grey levels 0-16 divided by 16, classes '0'-'9'."""
    from sklearn.datasets import load_digits as sklearn_digits

    ds, oracle = load_digits(), sklearn_digits()
    assert ds.images.shape == (1797, 1, 8, 8) and ds.images.dtype == torch.float32
    np.testing.assert_array_equal(ds.images[:, 0].numpy(), (oracle.images / 16).astype(np.float32))
    np.testing.assert_array_equal(ds.labels.numpy(), oracle.target)
    assert ds.classes == [str(k) for k in range(10)] and float(ds.images.max()) == 1.0


def test_each_class_has_its_documented_cytoplasm_granules_and_nucleus_colour(monkeypatch):
    """smear._render_cells: per class, the cytoplasm's mean colour (tint + granules), granule contrast, nucleus colour."""
    import deepimaging.data.smear as smear_module

    masks = []
    nucleus_mask = smear_module._nucleus_mask
    monkeypatch.setattr(smear_module, "_nucleus_mask", lambda *a: masks.append(nucleus_mask(*a)) or masks[-1])
    size, n = 96, 16  # large enough for a lymphocyte's thin rim of cytoplasm to hold whole pixels
    labels = torch.arange(4).repeat_interleave(n)
    images, alpha, *_ = smear_module._render_cells(labels, size, torch.Generator().manual_seed(0))
    (nucleus,) = masks
    for k in range(4):
        mine = labels == k
        cyto = (alpha[mine, 0] > 0.99) & (nucleus[mine] < 0.01)
        pixels = images[mine].permute(1, 0, 2, 3)[:, cyto]  # (3, pixels) of this class's cytoplasm
        granule, density = smear_module._GRANULE[k]
        tint = torch.tensor(smear_module._CYTOPLASM[k])
        # Mean: the tint plus density x (granule - tint); per-cell tint shifts (sd 0.02 over 16 cells)
        # average to within 3 x 0.02 / sqrt(16) = 0.015.
        expected = tint + density * (torch.tensor(granule) - tint)
        assert float((pixels.mean(dim=1) - expected).abs().max()) < 0.02, k
        # Granules: Bernoulli(density) steps of (granule - tint) per pixel; within a cell the spread
        # is sqrt(d (1 - d)) |step| with the camera noise (sd 0.008) on top.
        step = float((torch.tensor(granule) - tint).abs().max())
        channel = int((torch.tensor(granule) - tint).abs().argmax())
        spread = float(
            torch.stack(
                [(img[channel][c] - img[channel][c].mean()).std() for img, c in zip(images[mine], cyto)]
            ).mean()
        )
        assert abs(spread - math.sqrt(density * (1 - density) * step**2 + 0.008**2)) < 0.006, k
        core = nucleus[mine] > 0.99
        nucleus_colour = images[mine].permute(1, 0, 2, 3)[:, core].mean(dim=1)
        assert float((nucleus_colour - torch.tensor(smear_module._NUCLEUS[k])).abs().max()) < 0.02, k


def test_fingerprint_names_files_relative_to_root_and_sees_every_change(tmp_path):
    """cache.fingerprint: the same files under two roots give one key; a touch, a resize or a rename another."""
    from deepimaging.data.cache import fingerprint

    for root in (tmp_path / "one", tmp_path / "two"):
        (root / "a").mkdir(parents=True)
        (root / "a" / "x.png").write_bytes(b"12")
        os.utime(root / "a" / "x.png", ns=(10**18, 10**18))
    one, two = [tmp_path / r / "a" / "x.png" for r in ("one", "two")]
    key = fingerprint([one], root=tmp_path / "one", size=4)
    assert key == fingerprint([two], root=tmp_path / "two", size=4)  # a copied folder reuses its entry
    assert key != fingerprint([one], root=tmp_path, size=4)  # named "one/a/x.png" from there
    os.utime(two, ns=(10**18, 10**18 + 1))
    assert fingerprint([two], root=tmp_path / "two", size=4) != key
    two.write_bytes(b"123")
    os.utime(two, ns=(10**18, 10**18))
    assert fingerprint([two], root=tmp_path / "two", size=4) != key
    two.rename(two.with_name("y.png"))
    assert fingerprint([two.with_name("y.png")], root=tmp_path / "two", size=4) != key


def test_cached_array_builds_once_then_reads_the_memory_mapped_entry(tmp_path):
    """cache.cached_array: build() runs once; later calls read a copy-on-write memory map and the JSON."""
    from deepimaging.data.cache import cached_array

    calls = []

    def build():
        calls.append(1)
        return np.arange(6, dtype=np.uint8).reshape(2, 3), {"k": [1, 2]}

    first = cached_array(tmp_path / "c", "e", build, meta_keys=("k",))
    second = cached_array(tmp_path / "c", "e", build, meta_keys=("k",))
    assert len(calls) == 1 and first[1] == second[1] == {"k": [1, 2]}
    assert isinstance(second[0], np.memmap) and second[0].mode == "c"
    second[0][0, 0] = 99  # copy-on-write: the file keeps its value
    np.testing.assert_array_equal(np.load(tmp_path / "c" / "e.npy"), np.arange(6).reshape(2, 3))
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["e.json", "e.npy"]


def test_undecodable_files_are_dropped_with_their_labels_and_all_bad_is_an_error(tmp_path):
    """folder._decode_all: good images kept in order with their labels; none decodable is a ValueError naming files."""
    root = tmp_path / "root"
    for k, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((4, 4, 3), 10 * (3 * k + i), np.uint8)).save(root / name / f"{i}.png")
    (root / "a" / "1.png").write_bytes(b"broken")
    (root / "b" / "0.png").write_bytes(b"broken")
    for n_jobs in (1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            images, labels, _ = read_image_folder(root, 4, cache_dir=tmp_path / f"c{n_jobs}", n_jobs=n_jobs)
        assert images[:, 0, 0, 0].tolist() == [0, 20, 40, 50] and labels.tolist() == [0, 0, 1, 1]
    bad = tmp_path / "bad"
    for name in ("a", "b"):
        (bad / name).mkdir(parents=True)
        (bad / name / "x.png").write_bytes(b"broken")
    assert _message(ValueError, read_image_folder, bad, 4, cache_dir=tmp_path / "c") == (
        "none of the 2 image files could be decoded (e.g. ['a/x.png', 'b/x.png'])"
    )


def test_load_medmnist_downloads_the_published_file_with_its_md5_when_asked(tmp_path, monkeypatch):
    """medmnist.load_medmnist(download=True): fetch_file gets the Zenodo URL, 'md5:' + the published MD5, the path."""
    import deepimaging.data.medmnist as medmnist_module

    calls = []

    def fake_fetch(url, known_hash, fname, path, progress):
        calls.append((url, known_hash, fname, path, progress))
        path.mkdir(parents=True, exist_ok=True)  # as pooch does
        np.savez(path / fname, val_images=np.zeros((1, 3, 3), np.uint8), val_labels=np.array([[1]]))
        return path / fname

    monkeypatch.setattr(medmnist_module, "fetch_file", fake_fetch)
    ds = load_medmnist("pneumoniamnist", "val", 64, download=True, cache_dir=tmp_path)
    folder = tmp_path / "medmnist"
    assert calls == [
        (
            "https://zenodo.org/records/10519652/files/pneumoniamnist_64.npz?download=1",
            "md5:8f4eceb4ccffa70c672198ea285246c6",  # medmnist 3.0.2's info.py
            "pneumoniamnist_64.npz",
            folder,
            True,
        )
    ]
    assert ds.labels.tolist() == [1] and ds.classes == ["normal", "pneumonia"]
    load_medmnist(
        "pneumoniamnist", "val", 64, download=True, cache_dir=tmp_path
    )  # there now: not fetched again
    assert len(calls) == 1


def test_a_quarter_of_eosinophil_nuclei_have_a_third_lobe():
    """_nucleus_mask: eosinophils have 2 lobes, or 3 with probability 0.25 (area in units of one lobe)."""
    masks, d = _nuclei("eosinophil", n=96)
    far = np.array([d[m].max() for m in masks])
    near = np.array([d[m].min() for m in masks])
    lobe = (far - near) / 2 * 50  # each cell's lobe radius in pixels (see the ring test above)
    lobes = masks.sum(axis=(1, 2)) / (math.pi * lobe**2)
    # Two lobes >= 0.85 x 180 degrees apart on the ring do not touch: exactly 2 lobe areas. A third
    # lies >= 0.85 x 120 degrees from the first, overlapping it by a sliver at most: > 2.5.
    assert np.all((np.abs(lobes - 2) < 0.2) | (lobes > 2.5))  # 0.2: pixels at the lobes' edges
    third = float((lobes > 2.5).mean())
    assert 0.12 < third < 0.38  # binomial(96, 0.25): sd 0.044


def test_forty_percent_of_neutrophils_and_monocytes_are_shaped_and_sized_like_their_look_alikes(monkeypatch):
    """smear._render_cells: the documented look-alikes (40 %), their shape and their size drawn as the look-alike's."""
    import deepimaging.data.smear as smear_module

    shapes = []
    nucleus_mask = smear_module._nucleus_mask
    monkeypatch.setattr(
        smear_module, "_nucleus_mask", lambda shape, *a: shapes.append(shape) or nucleus_mask(shape, *a)
    )
    n, size = 400, 16
    labels = torch.arange(4).repeat_interleave(n)
    _, _, _, radius = smear_module._render_cells(labels, size, torch.Generator().manual_seed(0))
    (shape,) = shapes
    radius = radius / size
    assert torch.equal(shape[labels == 0], labels[labels == 0]) and torch.equal(
        shape[labels == 1], labels[labels == 1]
    )
    for label, look_alike in ((3, 0), (2, 1)):  # neutrophil -> eosinophil, monocyte -> lymphocyte
        mine = labels == label
        mimic = mine & (shape == look_alike)
        assert torch.equal(mine & (shape != label), mimic)
        assert abs(float(mimic.sum()) / n - 0.4) < 0.075  # binomial(400, 0.4): sd 0.0245
        for group, k in ((mimic, look_alike), (mine & (shape == label), label)):
            mean, sd = smear_module._CELL_RADIUS[k]
            assert abs(float(radius[group].mean()) - mean) < 0.008  # sd 0.03 over >= 100 cells: 0.003
            assert abs(float(radius[group].std()) - sd) < 0.008


def test_smear_field_boxes_are_centred_on_the_white_cell_drawn(monkeypatch):
    """simulate_smear_field: each box is the white cell's disc, centred where the cell's alpha is (not its window's centre)."""
    import deepimaging.data.smear as smear_module

    drawn, placed = [], []
    render, place = smear_module._render_cells, smear_module._place_without_overlap
    monkeypatch.setattr(smear_module, "_render_cells", lambda *a: drawn.append(render(*a)) or drawn[-1])
    monkeypatch.setattr(
        smear_module, "_place_without_overlap", lambda *a: placed.append(place(*a)) or placed[-1]
    )
    cell_size = 64
    _, boxes, _, _ = smear_module.simulate_smear_field(size=512, n_cells=12, cell_size=cell_size, seed=3)
    ((_, alpha, _, radii),), (slots,) = drawn, placed
    axis = torch.arange(cell_size) + 0.5
    a = alpha[:, 0].double()
    y = (a * axis[:, None]).sum(dim=(1, 2)) / a.sum(dim=(1, 2))  # the alpha's centroid in its window
    x = (a * axis[None, :]).sum(dim=(1, 2)) / a.sum(dim=(1, 2))
    top = torch.tensor([s[0] for s in slots], dtype=torch.float64)
    left = torch.tensor([s[1] for s in slots], dtype=torch.float64)
    boxes = boxes.double()
    assert torch.allclose((boxes[:, 0] + boxes[:, 2]) / 2, left + x, atol=0.05)
    assert torch.allclose((boxes[:, 1] + boxes[:, 3]) / 2, top + y, atol=0.05)
    assert torch.allclose(boxes[:, 2] - boxes[:, 0], 2 * radii.double(), atol=1e-4)


# ---- Survivors of the seed-4 sample (killed after that sample was measured)


def _bccd_copy(bccd_root, tmp_path, test_ids):
    """A BCCD folder with two real photos and a test split listing ``test_ids``."""
    root, bccd_root = tmp_path / "BCCD", Path(bccd_root)
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    ids = sorted(p.stem for p in (bccd_root / "Annotations").glob("*.xml"))[:2]
    for image_id in ids:
        shutil.copy(bccd_root / "Annotations" / f"{image_id}.xml", root / "Annotations")
        shutil.copy(bccd_root / "JPEGImages" / f"{image_id}.jpg", root / "JPEGImages")
    (root / "ImageSets/Main/test.txt").write_text("".join(f"{i}\n" for i in test_ids))
    return root, ids


def test_bccd_crops_of_an_empty_split_are_an_empty_dataset_of_the_asked_size(bccd_root, tmp_path):
    """load_bccd_crops 65 (the empty array lost its shape): a split listing no photo gives (0, 3, size, size)."""
    root, _ = _bccd_copy(bccd_root, tmp_path, [])
    data = load_bccd_crops(root, split="test", size=24, cache_dir=tmp_path / "cache")
    assert tuple(data.images.shape) == (0, 3, 24, 24) and len(data.labels) == 0


def test_bccd_crops_are_cached_in_the_decoded_folder(bccd_root, tmp_path):
    """load_bccd_crops 86: the decoded crops are cached in <cache_dir>/decoded, beside the image folders'."""
    root, ids = _bccd_copy(bccd_root, tmp_path, [])
    (root / "ImageSets/Main/test.txt").write_text(f"{ids[0]}\n")
    load_bccd_crops(root, split="test", size=24, cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["decoded"]
    assert any(p.name.startswith("bccd-") for p in (tmp_path / "cache" / "decoded").iterdir())


def test_dataset_names_labels_that_track_gradients_as_not_integers():
    """ImageDataset.__init__ 19: float labels that require grad are refused by the dtype check, naming labels."""
    labels = torch.tensor([0.0, 1.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"^labels must be integers; got dtype torch\.float32$"):
        ImageDataset(torch.rand(2, 3, 8, 8), labels, ["a", "b"])


def test_find_kaggle_blood_cells_prefers_dataset2_master_over_a_shallower_images_folder(tmp_path):
    """find_kaggle_blood_cells 31: dataset2-master's images folder wins over a shallower candidate."""
    shallow = tmp_path / "images"
    preferred = tmp_path / "download" / "dataset2-master" / "images"
    for folder in (shallow, preferred):
        (folder / "TRAIN").mkdir(parents=True)
    assert find_kaggle_blood_cells(tmp_path) == preferred


def test_monocyte_indents_point_in_every_direction(monkeypatch):
    """_nucleus_mask 165 (indent's y divided by r): the kidney's indent lies at a uniform angle, not on the centre's row."""
    import deepimaging.data.smear as smear_module

    recorded = []
    nucleus_mask = smear_module._nucleus_mask

    def recording(shape, yy, xx, cy, cx, radius, size, g):
        mask = nucleus_mask(shape, yy, xx, cy, cx, radius, size, g)
        recorded.append((shape, yy, xx, cy, cx, radius, mask))
        return mask

    monkeypatch.setattr(smear_module, "_nucleus_mask", recording)
    n = 400
    smear_module._render_cells(
        torch.full((n,), CLASSES.index("monocyte")), 64, torch.Generator().manual_seed(0)
    )
    ((shape, yy, xx, cy, cx, radius, mask),) = recorded
    kidney = shape == CLASSES.index("monocyte")  # look-alikes (round nuclei) have no indent
    w = mask[kidney].double()
    total = w.sum(dim=(1, 2))
    # The nucleus's centroid moves away from its indent: opposite the indent's direction.
    dy = (w * yy).sum(dim=(1, 2)) / total - cy[kidney, 0, 0]
    dx = (w * xx).sum(dim=(1, 2)) / total - cx[kidney, 0, 0]
    shifted = torch.hypot(dy, dx) / radius[kidney] > 0.01  # a shallow indent barely moves it
    assert shifted.sum() > 150, int(shifted.sum())
    vertical = (
        (dy[shifted].abs() > dx[shifted].abs()).double().mean()
    )  # uniform angles: a half nearer the vertical
    assert 0.38 < vertical < 0.62, float(vertical)


# ---- The seed-5 sample's survivors and the classes they stand for -------------------------------
# (SAMPLE=100 SEED=5 bash benchmarks/mutation.sh data: 86 of 100 killed with main's tests.) Each class
# is covered for every function of the package, not only for the sampled mutant: the documented
# defaults, the messages of less-used parameters and private helpers, the cache keys (same inputs
# hit, each input that matters misses), the progress bar.


def test_simulate_blood_smear_defaults_to_500_images_per_class_of_64_pixels_and_seed_0(monkeypatch):
    """simulate_blood_smear 1, 2, 3 (defaults 501, 65, seed 1): 4 x 500 images of 64 x 64, seed 0."""
    import deepimaging.data.smear as smear_module

    with monkeypatch.context() as patched:
        # A 1-byte memory limit makes the default call say what it would allocate, without drawing it.
        patched.setattr(smear_module, "MAX_BYTES", 1)
        with pytest.raises(
            ValueError, match=r"^n_per_class and size ask for 2000 RGB image\(s\) of 64 x 64 "
        ):
            simulate_blood_smear()
    assert tuple(simulate_blood_smear(n_per_class=1).images.shape) == (4, 3, 64, 64)
    assert torch.equal(simulate_blood_smear(1, 16).images, simulate_blood_smear(1, 16, seed=0).images)


def test_simulate_smear_field_defaults_to_eight_cells_of_64_pixels_in_512_and_seed_0(monkeypatch):
    """simulate_smear_field 1 to 4 (defaults 513, 9 cells, 65 px, seed 1): the documented 512, 8, 64 and 0."""
    import deepimaging.data.smear as smear_module

    with monkeypatch.context() as patched:
        patched.setattr(smear_module, "MAX_BYTES", 1)
        with pytest.raises(ValueError, match=r"^size ask for 1 RGB image\(s\) of 512 x 512 "):
            simulate_smear_field()
    # Eight 64-px cells never fit into a 128-px field (four at most): the refusal names the defaults.
    with pytest.raises(
        ValueError, match=r"^cannot place n_cells = 8 cells of cell_size = 64 px .* size = 128 px"
    ):
        simulate_smear_field(size=128)
    default, zero = simulate_smear_field(64, 1, 32), simulate_smear_field(64, 1, 32, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(default[:3], zero[:3]))


def test_loader_defaults_to_batches_of_64_in_order_and_shuffles_with_seed_0():
    """ImageDataset.loader 1, 2, 3 (defaults 65, shuffle=True, seed 1): batches of 64, in order; seed 0."""
    n = 100
    data = ImageDataset(torch.arange(n, dtype=torch.float32).div(n).reshape(n, 1, 1, 1), [0] * n, ["a"])

    def order(loader):
        return [round(float(v) * n) for images, _ in loader for v in images.flatten()]

    assert [len(labels) for _, labels in data.loader()] == [64, 36]
    assert order(data.loader()) == list(range(n))
    shuffled = order(data.loader(shuffle=True))
    assert shuffled == order(data.loader(shuffle=True, seed=0)) != order(data.loader(shuffle=True, seed=1))
    assert sorted(shuffled) == list(range(n))


def test_threads_names_n_jobs_and_what_arrived():
    """folder._threads 16 (named N_JOBS): the helper's own check names n_jobs, its bound and the value."""
    with pytest.raises(ValueError, match=r"^n_jobs must be in \[1, inf\]; got 0$"):
        folder_module._threads(0)
    with pytest.raises(TypeError, match=r"^n_jobs must be an integer; got 2\.0 \(float\)$"):
        folder_module._threads(2.0)
    assert folder_module._threads(3) == 3 and folder_module._threads(None) == min(os.cpu_count() or 1, 32)


@pytest.mark.parametrize("count", [1, 10, 11])
def test_skipped_file_warning_adds_how_many_more_only_beyond_ten(tmp_path, count):
    """folder._warn_skipped 7 (" and N more" always added): the whole text for 1, 10 and 11 skipped files."""
    skipped = [f"a/bad{i:02d}.png" for i in range(count)]
    more = " and 1 more" if count == 11 else ""
    expected = f"skipped {count} unreadable image file(s) under {tmp_path}: {', '.join(skipped[:10])}{more}"
    with pytest.warns(UserWarning) as caught:
        folder_module._warn_skipped(tmp_path, skipped)
    assert [str(w.message) for w in caught] == [expected]


def test_load_medmnist_names_path_when_it_is_not_a_path(tmp_path):
    """medmnist.load_medmnist 75 (named PATH): a path of the wrong type or an empty one is named as path."""
    with pytest.raises(TypeError, match=r"^path must be a path \(str or pathlib\.Path\); got 7 \(int\)$"):
        load_medmnist(path=7)
    with pytest.raises(ValueError, match=r"^path must be a path; got an empty string$"):
        load_medmnist(path="")


def test_fingerprint_cuts_the_root_prefix_without_calling_relpath(tmp_path, monkeypatch):
    """cache.fingerprint 1, 9 (prefix None or wrong): files under root are named by a prefix cut, not relpath.

    A cached load fingerprints every file on each call, and os.path.relpath costs more than the stat
    (the reason for the cut); the name must still be the path relative to root, whatever root is.
    """
    from deepimaging.data.cache import fingerprint

    for root in (tmp_path / "one", tmp_path / "deeper" / "two"):
        (root / "a").mkdir(parents=True)
        (root / "a" / "x.png").write_bytes(b"12")
        os.utime(root / "a" / "x.png", ns=(10**18, 10**18))
    with monkeypatch.context() as patched:
        patched.setattr(os.path, "relpath", lambda *args: pytest.fail("relpath called for a file under root"))
        one = fingerprint([tmp_path / "one" / "a" / "x.png"], root=tmp_path / "one", size=4)
        two = fingerprint(
            [str(tmp_path / "deeper" / "two" / "a" / "x.png")], root=tmp_path / "deeper" / "two", size=4
        )
    assert one == two
    # A file outside root is named with "..", as os.path.relpath names it.
    outside = fingerprint([tmp_path / "one" / "a" / "x.png"], root=tmp_path / "deeper" / "two" / "a", size=4)
    entry = [os.path.relpath(tmp_path / "one" / "a" / "x.png", tmp_path / "deeper" / "two" / "a"), 2, 10**18]
    text = json.dumps({"files": [entry], "params": {"size": 4}}, sort_keys=True)
    assert outside == hashlib.sha256(text.encode()).hexdigest()[:24]


def test_image_folder_cache_hits_for_the_same_inputs_and_misses_for_each_parameter_and_version(
    tmp_path, monkeypatch
):
    """read_image_folder 47 (key without _CACHE_VERSION): a new decoding version, size, mode or class order misses."""
    root = _class_folder(tmp_path / "root")
    cache = tmp_path / "cache"

    def entries():
        return len(list((cache / "decoded").glob("folder-*.json")))

    read_image_folder(root, size=4, cache_dir=cache, n_jobs=1)
    read_image_folder(root, size=4, cache_dir=cache, n_jobs=1)
    assert entries() == 1  # the same inputs: read back
    for expected, change in enumerate([{"size": 5}, {"grayscale": True}, {"classes": ["b", "a"]}], start=2):
        read_image_folder(root, **{"size": 4, "cache_dir": cache, "n_jobs": 1, **change})
        assert entries() == expected, change
    monkeypatch.setattr(folder_module, "_CACHE_VERSION", folder_module._CACHE_VERSION + 1)
    read_image_folder(root, size=4, cache_dir=cache, n_jobs=1)
    assert entries() == 5  # entries of the former decoding are not read back


def test_bccd_crops_cache_hits_for_the_same_call_and_misses_for_another_size_or_split(
    bccd_root, tmp_path, monkeypatch
):
    """load_bccd_crops 30 (key None: one entry for every call): size and split each name their own entry."""
    import deepimaging.data.bccd as bccd_module

    root, ids = _bccd_copy(bccd_root, tmp_path, [])
    (root / "ImageSets/Main/test.txt").write_text(f"{ids[0]}\n")
    (root / "ImageSets/Main/train.txt").write_text(f"{ids[1]}\n")
    photos = load_bccd_images(root, "all")
    crops = []
    crop_boxes = bccd_module._crop_boxes
    monkeypatch.setattr(bccd_module, "_crop_boxes", lambda *args: crops.append(1) or crop_boxes(*args))
    cache = tmp_path / "cache"
    first = load_bccd_crops(root, "test", size=8, cache_dir=cache)
    again = load_bccd_crops(root, "test", size=8, cache_dir=cache)
    assert len(crops) == 1 and torch.equal(first.images, again.images)  # read back, not cropped again
    assert tuple(load_bccd_crops(root, "test", size=12, cache_dir=cache).images.shape)[1:] == (3, 12, 12)
    train = load_bccd_crops(root, "train", size=8, cache_dir=cache)
    assert torch.equal(train.labels, photos.labels[1]) and torch.equal(first.labels, photos.labels[0])
    assert len(crops) == 3


def test_bccd_loaders_default_to_every_photo_and_to_64_pixel_train_crops(bccd_root, tmp_path):
    """load_bccd_images 1, 2 (split "XXallXX"/"ALL"), load_bccd_crops 1 to 3: all photos; train crops of 64 px."""
    root, ids = _bccd_copy(bccd_root, tmp_path, [])
    (root / "ImageSets/Main/train.txt").write_text(f"{ids[1]}\n")
    assert len(load_bccd_images(root)) == 2
    crops = load_bccd_crops(root, cache_dir=tmp_path / "cache")
    assert tuple(crops.images.shape) == (len(load_bccd_images(root, "train").labels[0]), 3, 64, 64)


def _record_pool_sizes(monkeypatch, module):
    """Replace ``module.ThreadPoolExecutor`` by one that records each pool's ``max_workers``; return that list."""
    from concurrent.futures import ThreadPoolExecutor

    sizes = []

    class Recording(ThreadPoolExecutor):
        def __init__(self, max_workers=None, *args, **kwargs):
            sizes.append(max_workers)
            super().__init__(max_workers, *args, **kwargs)

    monkeypatch.setattr(module, "ThreadPoolExecutor", Recording)
    return sizes


@pytest.fixture
def local_bccd(tmp_path, monkeypatch):
    """A 3-file BCCD registry served over HTTP on 127.0.0.1 (stopped after the test)."""
    import deepimaging.data.bccd as bccd_module

    served = tmp_path / "served"
    lines = []
    for relative, data in [
        ("Annotations/BloodImage_00001.xml", b"<annotation></annotation>"),
        ("ImageSets/Main/train.txt", b"BloodImage_00001\n"),
        ("JPEGImages/BloodImage_00001.jpg", b"not really a jpeg"),
    ]:
        (served / "BCCD" / relative).parent.mkdir(parents=True, exist_ok=True)
        (served / "BCCD" / relative).write_bytes(data)
        lines.append(f"{relative} sha256:{hashlib.sha256(data).hexdigest()}")
    (tmp_path / "registry.txt").write_text("\n".join(lines) + "\n")
    with serve_folder(served, monkeypatch) as httpd:
        monkeypatch.setattr(bccd_module, "BCCD_REGISTRY", tmp_path / "registry.txt")
        monkeypatch.setattr(bccd_module, "BCCD_BASE_URL", f"http://127.0.0.1:{httpd.server_address[1]}/BCCD/")
        yield bccd_module


def test_download_bccd_shows_a_progress_bar_over_files_only_when_asked(local_bccd, tmp_path, capsys):
    """download_bccd 47 (the bar replaced by None), 2 (progress on by default): tqdm counts the 3 files."""
    quiet = download_bccd(path=tmp_path / "quiet")
    assert "BCCD files" not in capsys.readouterr().err
    shown = download_bccd(path=tmp_path / "shown", progress=True)
    assert re.search(r"BCCD files: 100%.*\b3/3\b", capsys.readouterr().err)
    for root in (quiet, shown):
        assert (root / "ImageSets/Main/train.txt").read_bytes() == b"BloodImage_00001\n"


def test_download_bccd_fetches_eight_files_at_once_by_default(local_bccd, tmp_path, monkeypatch):
    """download_bccd 1 (default n_jobs 9): the documented 8 downloads at once; n_jobs sets the pool's size."""
    sizes = _record_pool_sizes(monkeypatch, local_bccd)
    download_bccd(path=tmp_path / "default")
    download_bccd(path=tmp_path / "two", n_jobs=2)
    assert sizes == [8, 2]


# Defaults of the other public loaders, each against what its docstring or signature promises.


def test_split_defaults_to_fifteen_percent_parts_and_seed_0():
    """dataset.split 3 (default seed 1): split(ds) is split(ds, 0.15, 0.15, seed=0)."""
    n = 200
    data = ImageDataset(
        torch.arange(n, dtype=torch.float32).div(n).reshape(n, 1, 1, 1), [k % 2 for k in range(n)], ["a", "b"]
    )

    def ids(parts):
        return [sorted(round(float(v) * n) for v in part.images.flatten()) for part in parts]

    default = ids(split(data))
    assert default == ids(split(data, 0.15, 0.15, seed=0)) != ids(split(data, seed=1))
    assert len(default[2]) == 30  # 15 % of 200 (validation: 15 % of 200 of the 170 left, rounded up)


def test_image_folder_loaders_default_to_64_pixel_rgb_and_reuse_a_copied_folders_entry(tmp_path):
    """read/load_image_folder 1 (default 65 px), read_image_folder 39, 44 (key without root): names relative to root."""
    root = _class_folder(tmp_path / "root")
    cache = tmp_path / "cache"
    images, labels, classes = read_image_folder(root, cache_dir=cache)
    assert images.shape == (2, 3, 64, 64) and classes == ["a", "b"]
    assert tuple(load_image_folder(root, cache_dir=cache).images.shape) == (2, 3, 64, 64)
    assert tuple(decode_image(root / "a" / "x.png", 8).shape) == (8, 8, 3)  # grayscale=False: RGB
    # A copy keeps the names (relative to its root), sizes and times: the same cache entry.
    shutil.copytree(root, tmp_path / "copy")
    read_image_folder(tmp_path / "copy", cache_dir=cache)
    assert len(list((cache / "decoded").glob("folder-*.json"))) == 1


def test_bccd_crops_of_a_copied_folder_reuse_its_cache_entry(bccd_root, tmp_path, monkeypatch):
    """load_bccd_crops 32, 36, 41 (key without BCCD's root, or with the default root): a copied folder hits."""
    root, ids = _bccd_copy(bccd_root, tmp_path / "one", [])
    (root / "ImageSets/Main/test.txt").write_text(f"{ids[0]}\n")
    shutil.copytree(root, tmp_path / "two" / "BCCD")
    load_bccd_crops(root, "test", size=8, cache_dir=tmp_path / "cache")
    load_bccd_crops(tmp_path / "two" / "BCCD", "test", size=8, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache" / "decoded").glob("bccd-*.json"))) == 1


def test_kaggle_loader_defaults_to_the_train_split_in_64_pixel_rgb(tmp_path):
    """load_kaggle_blood_cells 3, 4 (default 65 px, grayscale): TRAIN, 64 x 64, three channels."""
    images = tmp_path / "dataset2-master" / "images"
    for split_name, n in (("TRAIN", 2), ("TEST", 1)):
        for name in ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"):
            (images / split_name / name).mkdir(parents=True)
            for k in range(n):
                Image.fromarray(np.full((6, 6, 3), 50, np.uint8)).save(
                    images / split_name / name / f"{k}.png"
                )
    data = load_kaggle_blood_cells(tmp_path, cache_dir=tmp_path / "cache")
    assert tuple(data.images.shape) == (8, 3, 64, 64)


def test_load_medmnist_defaults_to_bloodmnists_train_split(tmp_path):
    """load_medmnist 1, 2 (default name XXbloodmnistXX / BLOODMNIST): BloodMNIST's classes, its train split."""
    from deepimaging.data import BLOODMNIST_CLASSES

    np.savez(
        tmp_path / "b.npz",
        train_images=np.zeros((2, 28, 28, 3), np.uint8),
        train_labels=np.array([[7], [0]]),
        test_images=np.zeros((1, 28, 28, 3), np.uint8),
        test_labels=np.array([[1]]),
    )
    data = load_medmnist(path=tmp_path / "b.npz")
    assert data.classes == BLOODMNIST_CLASSES and data.labels.tolist() == [7, 0]


def test_place_without_overlap_gives_up_after_the_documented_thousand_tries():
    """_place_without_overlap 1 (tries=1001): a field that cannot hold the cells is given up after 1000 draws."""
    from deepimaging.data.smear import _place_without_overlap

    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match=r"^cannot place n_cells = 5 cells of cell_size = 64 px"):
        _place_without_overlap(5, 128, 64, g)  # four 64-px squares at most fit in 128 x 128
    # Each try draws one (top, left) pair: the generator is where 1000 such draws leave it.
    by_hand = torch.Generator().manual_seed(0)
    for _ in range(1000):
        torch.randint(0, 65, (2,), generator=by_hand)
    assert torch.equal(torch.rand(4, generator=g), torch.rand(4, generator=by_hand))


# Messages of less-used parameters: each names the parameter and what arrived.


def test_less_used_parameters_are_named_in_their_refusals(tmp_path, monkeypatch):
    """download_bccd 9, data_dir 10/11, find_kaggle_blood_cells 6/7, fetch_archive 20/21: each names its parameter."""
    from deepimaging.data.cache import data_dir
    from deepimaging.data.download import fetch_archive

    assert _message(ValueError, download_bccd, path=tmp_path, n_jobs=0) == "n_jobs must be in [1, inf]; got 0"
    assert _message(TypeError, data_dir, 7) == "cache_dir must be a path (str or pathlib.Path); got 7 (int)"
    assert (
        _message(TypeError, find_kaggle_blood_cells, 7)
        == "root must be a path (str or pathlib.Path); got 7 (int)"
    )
    assert _message(ValueError, fetch_archive, "https://example.org/a.zip", "md5:" + "0" * 32, "../a") == (
        "folder must be a plain file name without '/', '\\' or '..', so the file stays in its folder; got '../a'"
    )


def test_a_voc_object_without_a_name_is_refused_as_an_empty_class(tmp_path):
    """bccd._read_annotation 22 (a missing <name> read as 'XXXX'): the error quotes the empty name."""
    from deepimaging.data.bccd import _read_annotation

    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "p.xml").write_text(
        "<annotation><object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax>"
        "</bndbox></object></annotation>"
    )
    xml = tmp_path / "Annotations" / "p.xml"
    assert _message(ValueError, _read_annotation, tmp_path, "p") == (
        f"{xml}: unknown class ''; expected one of ['RBC', 'WBC', 'Platelets']"
    )


def test_every_broken_link_is_named_comma_separated(tmp_path):
    """folder._image_names 22 (names joined by 'XX, XX'): two broken links are listed as 'a.png, b.png'."""
    root = _class_folder(tmp_path / "root")
    for name in ("a.png", "b.png"):
        os.symlink(name, root / "b" / name)  # each a link to itself
    with pytest.warns(UserWarning) as caught:
        folder_module._image_names(root / "b")
    assert str(caught[0].message) == (
        f"skipped 2 link(s) in {root / 'b'} that lead to no file (a link to itself or a cycle of links): a.png, b.png"
    )


def test_windows_separators_are_refused_in_class_and_cache_folder_names(tmp_path, monkeypatch):
    r"""_check_class_names 27, data_dir 21 ("/" check mutated): with Windows' os.sep "\" a "/" is still refused."""
    from deepimaging.data.cache import data_dir
    from deepimaging.data.folder import _check_class_names

    with monkeypatch.context() as patched:
        patched.setattr(os, "sep", "\\")
        patched.setattr(os, "altsep", None)  # checks that rely on os.altsep alone would let "/" through
        with pytest.raises(ValueError, match=r"got 'a/b'$"):
            _check_class_names(["a/b"])
        with pytest.raises(ValueError, match=r"got 'a/b'$"):
            data_dir(tmp_path, "a/b")


def test_threads_default_is_one_per_core_between_one_and_thirty_two(monkeypatch):
    """folder._threads 6, 7, 8: os.cpu_count() threads, 1 when it is unknown, at most 32."""
    for cores, expected in ((None, 1), (1, 1), (6, 6), (64, 32)):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        assert folder_module._threads(None) == expected, cores


# Cache entry names: the fingerprint against a hand computation of what its docstring lists.


def _fingerprint_by_hand(entries, **params):
    text = json.dumps({"files": entries, "params": params}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def test_fingerprint_is_the_hash_of_names_sizes_times_and_parameters(tmp_path, monkeypatch):
    """cache.fingerprint 3, 7, 11, 19, 27, 33, 37, 40: names relative to root (or to the working folder), as text."""
    from deepimaging.data.cache import fingerprint

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"123")
    os.utime(tmp_path / "a" / "x.png", ns=(10**18, 10**18))
    entry = ["a/x.png", 3, 10**18]
    assert fingerprint([tmp_path / "a" / "x.png"], root=tmp_path, size=4) == _fingerprint_by_hand(
        [entry], size=4
    )
    # A parameter that JSON cannot write (a path) is hashed as its text.
    assert fingerprint(
        [tmp_path / "a" / "x.png"], root=tmp_path, where=tmp_path / "c"
    ) == _fingerprint_by_hand([entry], where=str(tmp_path / "c"))
    # Without root, names are relative to the working folder, absolute paths too.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "None").mkdir()
    (tmp_path / "None" / "y.png").write_bytes(b"1")
    os.utime(tmp_path / "None" / "y.png", ns=(10**18, 10**18))
    assert fingerprint([tmp_path / "a" / "x.png", "None/y.png"]) == _fingerprint_by_hand(
        [entry, ["None/y.png", 1, 10**18]]
    )


def test_downloads_default_to_no_progress_bar_in_the_data_folders_downloads(tmp_path, monkeypatch):
    """fetch_file 1 (progress on by default), 34/35 and fetch_archive 12/13 (sub-folder XXdownloadsXX)."""
    import pooch

    from deepimaging.data.download import fetch_archive

    monkeypatch.setenv("DEEPIMAGING_DATA", str(tmp_path / "data"))
    calls = []
    monkeypatch.setattr(
        pooch, "retrieve", lambda *args, **kwargs: calls.append(kwargs) or str(tmp_path / "f")
    )
    md5 = "md5:" + "0" * 32
    fetch_file("https://example.org/f", md5)
    assert calls[0]["progressbar"] is False and calls[0]["path"] == tmp_path / "data" / "downloads"
    (tmp_path / "data" / "downloads" / "x").mkdir(parents=True)
    (tmp_path / "data" / "downloads" / "x" / "kept").write_text("unpacked before")
    assert fetch_archive("https://example.org/a.zip", md5, "x") == tmp_path / "data" / "downloads" / "x"
    assert len(calls) == 1  # found unpacked: nothing fetched


def test_extract_archive_creates_missing_parents_and_names_a_target_it_cannot_create(tmp_path):
    """extract_archive 20, 22, 24 (no parents=True), 28 to 32 (the OSError's errno, type or message lost)."""
    import errno
    import zipfile

    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("f.txt", "x")
    target = extract_archive(archive, tmp_path / "new" / "deeper" / "target")
    assert (target / "f.txt").read_text() == "x"
    (tmp_path / "file").write_text("not a folder")
    blocked = tmp_path / "file" / "sub" / "target"
    with pytest.raises(NotADirectoryError) as info:
        extract_archive(archive, blocked)
    assert info.value.errno == errno.ENOTDIR
    assert (
        str(info.value) == f"[Errno {errno.ENOTDIR}] cannot unpack {archive} into {blocked}: Not a directory"
    )


@pytest.mark.parametrize("grayscale", [False, True])
def test_decode_image_decodes_a_large_jpeg_at_pillows_reduced_scale(tmp_path, grayscale):
    """decode_image 57, 58 (draft without the mode or the size): a JPEG is decoded at 1/8 scale, then resized."""
    rng = np.random.default_rng(0)
    path = tmp_path / "big.jpg"
    pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8).repeat(16, axis=0).repeat(16, axis=1)
    Image.fromarray(pixels).save(path, quality=90)
    mode = "L" if grayscale else "RGB"
    with Image.open(path) as image:
        image.draft(mode, (16, 16))
        assert image.size == (80, 80)  # 640 / 8: the smallest DCT scale still at least 16 pixels
        expected = np.asarray(image.convert(mode).resize((16, 16), Image.Resampling.BILINEAR))
    decoded = decode_image(path, 16, grayscale=grayscale)
    np.testing.assert_array_equal(decoded[..., 0] if grayscale else decoded, expected)


# ---- Found by an exploratory sample of 120 further mutants (not seed 6), drawn after the tests above


def test_fetch_archive_downloads_into_its_path_and_bccd_crops_use_n_jobs_threads(
    bccd_root, tmp_path, monkeypatch
):
    """fetch_archive 31 (path not passed on), load_bccd_crops 51 (n_jobs ignored): each reaches the call it sets."""

    import pooch
    import requests

    import deepimaging.data.bccd as bccd_module
    from deepimaging.data.download import fetch_archive

    calls = []

    def retrieve(url, known_hash, fname, path, progressbar):
        calls.append(path)
        raise requests.exceptions.ConnectionError("offline")

    monkeypatch.setattr(pooch, "retrieve", retrieve)
    with pytest.raises(ConnectionError):
        fetch_archive("https://example.org/a.zip", "md5:" + "0" * 32, "x", path=tmp_path / "here")
    assert calls == [tmp_path / "here"]
    sizes = _record_pool_sizes(monkeypatch, bccd_module)
    root, ids = _bccd_copy(bccd_root, tmp_path, [])
    (root / "ImageSets/Main/test.txt").write_text(f"{ids[0]}\n")
    load_bccd_crops(root, "test", size=8, cache_dir=tmp_path / "cache", n_jobs=3)
    assert sizes == [3]


def test_load_array_refuses_a_pickled_object_array(tmp_path):
    """cache.load_array 12 (allow_pickle=True): a cache file holding Python objects is refused, never unpickled."""
    from deepimaging.data.cache import load_array

    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(
        ValueError, match="allow_pickle=False"
    ):  # (memory-mapped, NumPy refuses objects anyway)
        load_array(tmp_path / "objects.npy", mmap=False)


def test_a_broken_link_warning_names_the_first_ten_links_only(tmp_path):
    """folder._image_names 24 (eleven names): of 11 links that lead nowhere the warning names the first 10."""
    root = _class_folder(tmp_path / "root")
    names = [f"l{i:02d}.png" for i in range(11)]
    for name in names:
        os.symlink(name, root / "b" / name)
    with pytest.warns(UserWarning) as caught:
        folder_module._image_names(root / "b")
    assert str(caught[0].message).endswith(f"cycle of links): {', '.join(names[:10])}")
    assert str(caught[0].message).startswith("skipped 11 link(s) in ")


def test_a_bccd_photo_without_boxes_has_an_empty_int64_label_tensor(tmp_path):
    """load_bccd_images 39 (labels without dtype=long): a photo with no box still gives int64 labels (0,)."""
    for sub in ("Annotations", "JPEGImages"):
        (tmp_path / sub).mkdir()
    (tmp_path / "Annotations" / "p.xml").write_text("<annotation></annotation>")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "JPEGImages" / "p.jpg")
    photos = load_bccd_images(tmp_path)
    assert photos.labels[0].dtype == torch.int64 and tuple(photos.labels[0].shape) == (0,)
    assert tuple(photos.boxes[0].shape) == (0, 4)


def test_find_kaggle_blood_cells_prefers_dataset2_master_then_the_shallowest_whatever_the_names(tmp_path):
    """find_kaggle_blood_cells 28 (sorted by path): dataset2-master first, then the shallowest candidate."""
    for folder in ("a/images", "z/dataset2-master/images", "b/c/images", "y/images"):
        (tmp_path / "one" / folder / "TRAIN").mkdir(parents=True)
    assert find_kaggle_blood_cells(tmp_path / "one") == tmp_path / "one" / "z" / "dataset2-master" / "images"
    for folder in ("a/b/images", "z/images"):
        (tmp_path / "two" / folder / "TRAIN").mkdir(parents=True)
    assert find_kaggle_blood_cells(tmp_path / "two") == tmp_path / "two" / "z" / "images"


def test_smear_fields_stay_in_the_unit_interval_even_where_the_plasma_is_brightest(monkeypatch):
    """simulate_smear_field 170 (clamp without its upper bound): a field lies in [0, 1] as documented.

    With the stain's plasma colour the background exceeds 1 only for a rare stain shift, so the plasma
    is made white here: its shift and gradient then push half the background above 1 before clipping.
    """
    import deepimaging.data.smear as smear_module

    monkeypatch.setattr(smear_module, "_PLASMA", (1.0, 1.0, 1.0))
    for seed in range(3):
        field = simulate_smear_field(32, 1, 16, seed=seed)[0]
        assert 0 <= float(field.min()) and float(field.max()) == 1, seed
