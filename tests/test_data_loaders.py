"""Real-data loaders: image folder + decode cache, Kaggle layout, MedMNIST npz, BCCD, digits."""

import errno
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import deepimaging.data.cache as cache_module
import deepimaging.data.folder as folder_module
from deepimaging.data import (
    BCCD_CLASSES,
    BLOODMNIST_CLASSES,
    MEDMNIST,
    ImageDataset,
    data_dir,
    find_bccd,
    find_kaggle_blood_cells,
    load_bccd_crops,
    load_bccd_images,
    load_digits,
    load_image_folder,
    load_kaggle_blood_cells,
    load_medmnist,
    read_image_folder,
    split,
)

N_PER_CLASS = 4
SIZE = 16


@pytest.fixture
def folder(tmp_path, write_image_folder):
    """(root, written): classes a, b, c of N_PER_CLASS random SIZE x SIZE PNGs (tests/conftest.py)."""
    root = tmp_path / "images"
    return root, write_image_folder(root, classes=("a", "b", "c"), n=N_PER_CLASS, size=SIZE)


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


# ---------------------------------------------------------------- image folder


def test_image_folder_returns_the_written_pixels_with_folder_labels(folder, cache):
    root, written = folder
    ds = load_image_folder(root, size=SIZE, cache_dir=cache)
    assert isinstance(ds, ImageDataset)
    assert ds.classes == ["a", "b", "c"]
    assert ds.images.shape == (3 * N_PER_CLASS, 3, SIZE, SIZE) and ds.images.dtype == torch.float32
    # Files are read class by class in sorted order: compare with what was written (PNG is lossless).
    expected = np.stack([written[k] for k in sorted(written)])
    np.testing.assert_array_equal((ds.images.permute(0, 2, 3, 1).numpy() * 255).round(), expected)
    assert ds.labels.tolist() == [0] * N_PER_CLASS + [1] * N_PER_CLASS + [2] * N_PER_CLASS


def test_image_folder_resizes_and_converts_to_grey_with_the_bt601_luma(folder, cache):
    root, written = folder
    grey = load_image_folder(root, size=SIZE, grayscale=True, cache_dir=cache)
    assert grey.image_shape == (1, SIZE, SIZE)
    rgb = np.stack([written[k] for k in sorted(written)]).astype(float)
    luma = rgb @ np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, what PIL's "L" mode uses
    np.testing.assert_allclose(grey.images[:, 0].numpy() * 255, luma, atol=1.0)
    small = load_image_folder(root, size=8, cache_dir=cache)
    assert small.image_shape == (3, 8, 8)
    # A 2x bilinear reduction keeps the mean brightness.
    np.testing.assert_allclose(small.images.mean().item() * 255, rgb.mean(), atol=2.0)


def test_second_load_reads_the_memory_mapped_cache_without_decoding(folder, cache, monkeypatch):
    root, _ = folder
    first = load_image_folder(root, size=SIZE, cache_dir=cache)

    def fail(*args, **kwargs):
        raise AssertionError("decoded again although the cache holds these files")

    monkeypatch.setattr(folder_module, "decode_image", fail)
    images, labels, classes = read_image_folder(root, size=SIZE, cache_dir=cache)
    assert isinstance(images, np.memmap) and images.dtype == np.uint8
    assert images.shape == (3 * N_PER_CLASS, 3, SIZE, SIZE)
    second = load_image_folder(root, size=SIZE, cache_dir=cache)
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)


def test_loaded_dataset_keeps_uint8_pixels_and_reads_them_as_value_over_255(folder, cache):
    root, written = folder
    ds = load_image_folder(root, size=SIZE, cache_dir=cache)
    assert ds.storage.dtype == torch.uint8  # a quarter of float32's memory
    expected = np.stack([written[k] for k in sorted(written)]).transpose(0, 3, 1, 2)
    oracle = torch.from_numpy(expected.astype(np.float32) / np.float32(255))  # numpy's float32 division
    # Every way of reading gives the same floats, bit for bit, converting only what it reads.
    assert torch.equal(ds.images_at([2, 5]), oracle[[2, 5]])
    image, label = ds[3]
    assert torch.equal(image, oracle[3]) and int(label) == int(ds.labels[3])
    batch = next(iter(ds.loader(batch_size=5)))
    assert torch.equal(batch[0], oracle[:5])
    sub = ds.subset([1, 4])
    assert sub.storage.dtype == torch.uint8 and torch.equal(sub.images, oracle[[1, 4]])
    assert "uint8" in repr(ds)
    assert torch.equal(ds.images, oracle) and ds.images.dtype == torch.float32


def test_changing_a_loaded_dataset_in_memory_never_changes_the_cache(folder, cache):
    root, _ = folder
    first = load_image_folder(root, size=SIZE, cache_dir=cache)
    original = first.storage.clone()
    first.storage.zero_()  # the tensor shares a copy-on-write memory map of the cache file
    again = load_image_folder(root, size=SIZE, cache_dir=cache)
    assert torch.equal(again.storage, original)


def test_training_on_uint8_storage_equals_training_on_the_float_images():
    from deepimaging.models import BasicCNN
    from deepimaging.train import fit, predict, seed_everything

    rng = np.random.default_rng(0)
    pixels = torch.from_numpy(rng.integers(0, 256, (24, 3, 16, 16), dtype=np.uint8))
    labels = torch.arange(24) % 2
    stored = ImageDataset(pixels, labels, ["a", "b"])
    floats = ImageDataset(
        torch.from_numpy(pixels.numpy().astype(np.float32) / np.float32(255)), labels, ["a", "b"]
    )
    assert floats.storage.dtype == torch.float32
    runs = []
    for data in (stored, floats):
        seed_everything(0)
        model = BasicCNN(3, 2, widths=(4, 8))
        history = fit(model, data, data, epochs=2, batch_size=8, progress=False, device="cpu")
        runs.append((history, predict(model, data, device="cpu").probabilities))
    assert runs[0][0].train_loss == runs[1][0].train_loss
    assert torch.equal(runs[0][1], runs[1][1])
    assert stored.storage.dtype == torch.uint8  # training converted batches, never the whole set


def test_cache_entry_changes_when_a_file_or_the_size_changes(folder, cache):
    root, _ = folder
    load_image_folder(root, size=SIZE, cache_dir=cache)
    entries = lambda: sorted(p.name for p in (cache / "decoded").glob("*.npy"))  # noqa: E731
    assert len(entries()) == 1
    load_image_folder(root, size=8, cache_dir=cache)
    assert len(entries()) == 2
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(root / "a" / "img0.png")
    os.utime(root / "a" / "img0.png", ns=(1, 1))  # a new modification time even on coarse clocks
    ds = load_image_folder(root, size=SIZE, cache_dir=cache)
    assert len(entries()) == 3
    assert ds.images[0].max() == 0  # the new black image, not the stale cached one


def test_cache_folder_comes_from_argument_then_env_then_user_cache(tmp_path, monkeypatch):
    import platformdirs

    monkeypatch.setenv("DEEPIMAGING_DATA", str(tmp_path / "env"))
    assert data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert data_dir() == tmp_path / "env"
    monkeypatch.delenv("DEEPIMAGING_DATA")
    assert data_dir(sub="decoded") == Path(platformdirs.user_cache_dir("deepimaging")) / "decoded"


def test_env_variable_places_the_decode_cache(folder, tmp_path, monkeypatch):
    root, _ = folder
    monkeypatch.setenv("DEEPIMAGING_DATA", str(tmp_path / "envcache"))
    load_image_folder(root, size=SIZE)
    assert len(list((tmp_path / "envcache" / "decoded").glob("folder-*.npy"))) == 1


def test_corrupt_files_are_skipped_with_one_warning_naming_them(folder, cache):
    root, _ = folder
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "b" / "empty.png").write_bytes(b"")
    (root / "b" / "notes.txt").write_text("ignored: not an image extension")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_image_folder(root, size=SIZE, cache_dir=cache)
    messages = [str(w.message) for w in caught if "unreadable" in str(w.message)]
    assert len(messages) == 1
    assert "2 unreadable" in messages[0] and "a/broken.jpg" in messages[0] and "b/empty.png" in messages[0]
    assert len(ds) == 3 * N_PER_CLASS
    assert ds.labels.tolist() == [0] * N_PER_CLASS + [1] * N_PER_CLASS + [2] * N_PER_CLASS


def test_parallel_and_serial_decoding_give_the_same_images(folder, tmp_path):
    root, _ = folder
    serial = load_image_folder(root, size=12, cache_dir=tmp_path / "c1", n_jobs=1)
    parallel = load_image_folder(root, size=12, cache_dir=tmp_path / "c2", n_jobs=4)
    assert torch.equal(serial.images, parallel.images)


def test_missing_folder_is_an_error_naming_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nowhere"))):
        load_image_folder(tmp_path / "nowhere", cache_dir=tmp_path)


def test_folder_without_class_subfolders_is_an_error_naming_the_path(tmp_path):
    (tmp_path / "flat").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "flat" / "x.png")
    with pytest.raises(ValueError, match="no class sub-folders.*root/<class>"):
        load_image_folder(tmp_path / "flat", cache_dir=tmp_path)


def test_class_folder_without_images_is_an_error_naming_it(folder, cache):
    root, _ = folder
    (root / "d_empty").mkdir()
    with pytest.raises(ValueError, match=re.escape(str(root / "d_empty")) + ".*holds no images"):
        load_image_folder(root, cache_dir=cache)


def test_read_only_cache_folder_is_a_clear_error_and_leaves_nothing(folder, tmp_path, monkeypatch):
    root, _ = folder
    cache = tmp_path / "readonly"
    cache.mkdir()
    (cache / "decoded").mkdir()
    os.chmod(cache / "decoded", 0o555)
    if os.geteuid() == 0:  # root ignores permission bits: make the OS refuse as it would for a user

        def refuse(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr("tempfile.mkstemp", refuse)  # the one atomic writer, deepimaging._util
    try:
        with pytest.raises(OSError, match="not writable.*cache_dir="):
            load_image_folder(root, size=SIZE, cache_dir=cache)
        assert os.listdir(cache / "decoded") == []
    finally:
        os.chmod(cache / "decoded", 0o755)


def test_disk_full_during_cache_write_is_a_clear_error_and_leaves_nothing(folder, cache, monkeypatch):
    root, _ = folder
    real_save = np.save

    def save_half_then_fail(f, array, **kwargs):
        f.write(b"\x93NUMPY partial header and some pixels")  # a partial file on disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_module.np, "save", save_half_then_fail)
    with pytest.raises(OSError, match="full") as info:
        load_image_folder(root, size=SIZE, cache_dir=cache)
    assert info.value.errno == errno.ENOSPC
    assert os.listdir(cache / "decoded") == []
    monkeypatch.setattr(cache_module.np, "save", real_save)
    assert len(load_image_folder(root, size=SIZE, cache_dir=cache)) == 3 * N_PER_CLASS


# ---------------------------------------------------------------- Kaggle layout


@pytest.fixture
def kaggle(tmp_path, write_image_folder):
    """The Kaggle layout nested two folders deep, with a decoy images/ folder elsewhere."""
    base = tmp_path / "download" / "blood-cells" / "dataset2-master" / "images"
    classes = ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL")
    write_image_folder(base / "TRAIN", classes, n=3, size=SIZE, ext=".jpeg")
    write_image_folder(base / "TEST", classes, n=2, size=SIZE, ext=".jpeg")
    (tmp_path / "download" / "blood-cells" / "dataset-master" / "JPEGImages").mkdir(parents=True)
    return tmp_path / "download"


def test_kaggle_layout_is_found_at_any_depth_with_lowercase_class_names(kaggle, tmp_path):
    assert find_kaggle_blood_cells(kaggle).parent.name == "dataset2-master"
    train = load_kaggle_blood_cells(kaggle, "TRAIN", size=SIZE, cache_dir=tmp_path / "c")
    test = load_kaggle_blood_cells(kaggle / "blood-cells", "test", size=SIZE, cache_dir=tmp_path / "c")
    assert train.classes == ["eosinophil", "lymphocyte", "monocyte", "neutrophil"]
    assert len(train) == 12 and len(test) == 8
    assert torch.bincount(train.labels).tolist() == [3, 3, 3, 3]


def test_kaggle_folder_without_images_train_is_an_error_saying_where_to_get_it(tmp_path):
    (tmp_path / "dataset2-master" / "images" / "TEST").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="images/TRAIN.*kaggle.com"):
        load_kaggle_blood_cells(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist.*kaggle.com"):
        load_kaggle_blood_cells(tmp_path / "missing")


def test_kaggle_unknown_split_is_an_error(kaggle):
    with pytest.raises(ValueError, match="split must be one of"):
        load_kaggle_blood_cells(kaggle, "VALIDATION")


# ---------------------------------------------------------------- MedMNIST


def _write_npz(path, grey=False, size=28, keys=("train", "val", "test"), n=(10, 3, 5), classes=8):
    rng = np.random.default_rng(1)
    shape = (size, size) if grey else (size, size, 3)
    arrays = {}
    for key, count in zip(keys, n):
        arrays[f"{key}_images"] = rng.integers(0, 256, (count, *shape), dtype=np.uint8)
        arrays[f"{key}_labels"] = rng.integers(0, classes, (count, 1)).astype(np.uint8)
    np.savez(path, **arrays)
    return arrays


def test_medmnist_npz_loads_each_split_with_bloodmnist_class_names(tmp_path):
    arrays = _write_npz(tmp_path / "bloodmnist.npz")
    for part in ("train", "val", "test"):
        ds = load_medmnist("bloodmnist", part, path=tmp_path / "bloodmnist.npz")
        assert ds.image_shape == (3, 28, 28) and ds.storage.dtype == torch.uint8
        np.testing.assert_array_equal(ds.labels.numpy(), arrays[f"{part}_labels"][:, 0])
        np.testing.assert_allclose(
            ds.images.permute(0, 2, 3, 1).numpy(), arrays[f"{part}_images"] / 255.0, atol=1e-7
        )
    # The eight PBC cell types (Acevedo et al. 2020), in MedMNIST's label order.
    assert len(ds.classes) == 8
    assert ds.classes[0] == "basophil" and ds.classes[2] == "erythroblast" and ds.classes[7] == "platelet"
    assert BLOODMNIST_CLASSES == ds.classes


def test_medmnist_grey_npz_gives_one_channel(tmp_path):
    _write_npz(tmp_path / "p.npz", grey=True, size=64, classes=2)
    ds = load_medmnist("pneumoniamnist", "val", size=64, path=tmp_path / "p.npz")
    assert ds.image_shape == (1, 64, 64) and len(ds) == 3


def test_medmnist_knows_an_md5_for_every_size():
    for info in MEDMNIST.values():
        assert sorted(info["md5"]) == [28, 64, 128, 224]
        assert all(re.fullmatch("[0-9a-f]{32}", md5) for md5 in info["md5"].values())


def test_medmnist_unknown_name_or_size_is_an_error_listing_the_choices(tmp_path):
    with pytest.raises(ValueError, match="unknown MedMNIST name 'bloodmnst'.*bloodmnist"):
        load_medmnist("bloodmnst", path=tmp_path / "x.npz")
    with pytest.raises(ValueError, match=r"size must be one of \[28, 64, 128, 224\]; got 32"):
        load_medmnist("bloodmnist", size=32, path=tmp_path / "x.npz")


def test_medmnist_npz_without_the_keys_is_an_error_naming_them(tmp_path):
    _write_npz(tmp_path / "partial.npz", keys=("train",), n=(4,))
    with pytest.raises(ValueError, match="test_images.*test_labels"):
        load_medmnist("bloodmnist", "test", path=tmp_path / "partial.npz")


def test_medmnist_missing_file_says_where_to_download_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="zenodo.org/records/10519652/files/bloodmnist_64.npz.*MD5"):
        load_medmnist("bloodmnist", size=64, cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_medmnist("bloodmnist", path=tmp_path / "missing.npz")


# ---------------------------------------------------------------- BCCD (real copy in ../shared)


def _count_objects(root, ids):
    """Boxes per class by a plain-text reading of the XML, skipping zero-area boxes (the oracle)."""
    counts = dict.fromkeys(BCCD_CLASSES, 0)
    for image_id in ids:
        text = (Path(root) / "Annotations" / f"{image_id}.xml").read_text()
        for obj in re.findall(r"<object>(.*?)</object>", text, re.S):
            name = re.search(r"<name>\s*(\S+)\s*</name>", obj).group(1)
            x0, y0, x1, y1 = (
                float(re.search(f"<{k}>(.*?)</{k}>", obj).group(1)) for k in ("xmin", "ymin", "xmax", "ymax")
            )
            counts[name] += x1 > x0 and y1 > y0
    return counts


def test_bccd_photos_have_boxes_inside_the_640x480_frame(bccd_root):
    ids = (Path(bccd_root) / "ImageSets" / "Main" / "val.txt").read_text().split()
    photos = load_bccd_images(bccd_root, "val")
    assert len(photos) == len(ids) == 87
    image, boxes, labels = photos[0]
    assert image.shape == (3, 480, 640) and 0 <= image.min() and image.max() <= 1
    all_boxes = torch.cat(photos.boxes)
    assert (all_boxes[:, 2] > all_boxes[:, 0]).all() and (all_boxes[:, 3] > all_boxes[:, 1]).all()
    assert all_boxes[:, [0, 2]].max() <= 640 and all_boxes[:, [1, 3]].max() <= 480
    counts = torch.bincount(torch.cat(photos.labels), minlength=3).tolist()
    assert dict(zip(BCCD_CLASSES, counts)) == _count_objects(bccd_root, ids)


def test_bccd_crops_are_one_fixed_size_image_per_box_in_3_classes(bccd_root, tmp_path):
    ids = (Path(bccd_root) / "ImageSets" / "Main" / "test.txt").read_text().split()
    crops = load_bccd_crops(bccd_root, "test", size=32, cache_dir=tmp_path)
    assert crops.classes == ["RBC", "WBC", "Platelets"] and crops.image_shape == (3, 32, 32)
    counts = torch.bincount(crops.labels, minlength=3).tolist()
    assert dict(zip(BCCD_CLASSES, counts)) == _count_objects(bccd_root, ids)
    # White cells carry a dark purple (Wright/Giemsa) nucleus: their crops are darker than red-cell crops.
    mean = [crops.images[crops.labels == k].mean().item() for k in range(3)]
    assert mean[1] < mean[0]
    again = load_bccd_crops(find_bccd(Path(bccd_root).parent), "test", size=32, cache_dir=tmp_path)
    assert torch.equal(again.images, crops.images)


def test_bccd_missing_folder_or_split_is_an_error_saying_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="download_bccd.*git clone"):
        load_bccd_images(tmp_path / "nowhere")
    (tmp_path / "voc" / "Annotations").mkdir(parents=True)
    (tmp_path / "voc" / "JPEGImages").mkdir()
    with pytest.raises(FileNotFoundError, match=r"ImageSets/Main/train\.txt"):
        load_bccd_images(tmp_path / "voc", "train")
    with pytest.raises(FileNotFoundError, match="no Pascal VOC layout"):
        find_bccd(tmp_path / "voc" / "Annotations")


# ---------------------------------------------------------------- digits and splits


def test_digits_are_sklearn_digits_scaled_to_unit_range():
    from sklearn.datasets import load_digits as sklearn_digits

    ds, reference = load_digits(), sklearn_digits()
    assert ds.image_shape == (1, 8, 8) and ds.classes == [str(k) for k in range(10)]
    np.testing.assert_allclose(ds.images[:, 0].numpy() * 16, reference.images, atol=1e-5)
    assert ds.labels.tolist() == reference.target.tolist()


def test_split_of_a_real_dataset_keeps_each_class_share():
    ds = load_digits()
    train, val, test = split(ds, val=0.2, test=0.2, seed=0)
    assert len(train) + len(val) + len(test) == len(ds)
    whole = torch.bincount(ds.labels, minlength=10).float() / len(ds)
    for part in (train, val, test):
        share = torch.bincount(part.labels, minlength=10).float() / len(part)
        assert (share - whole).abs().max() < 0.01


def test_bad_size_or_thread_count_is_an_error_naming_the_argument(folder, cache):
    root, _ = folder
    with pytest.raises(ValueError, match=r"size must be in \[1, 4096\]; got 0"):
        load_image_folder(root, size=0, cache_dir=cache)
    with pytest.raises(ValueError, match=r"n_jobs must be in \[1, inf\]; got 0"):
        load_image_folder(root, size=SIZE, cache_dir=cache, n_jobs=0)


def test_features_of_uint8_storage_equal_features_of_the_float_images():
    from deepimaging.interpret import extract_features
    from deepimaging.models import BasicCNN

    pixels = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (10, 3, 16, 16), dtype=np.uint8))
    stored = ImageDataset(pixels, torch.arange(10) % 2, ["a", "b"])
    model = BasicCNN(3, 2, widths=(4, 8)).eval()
    expected = model.embed(pixels.float() / 255)
    assert torch.allclose(extract_features(model, stored, batch_size=4, device="cpu"), expected, atol=1e-6)
    named = extract_features(model, stored, layer="features.0", batch_size=4, device="cpu")
    assert torch.allclose(named, model.features[0](pixels.float() / 255).flatten(1), atol=1e-6)
    assert stored.storage.dtype == torch.uint8


def test_to_dataset_rejects_anything_but_uint8_nchw_naming_what_arrived():
    from deepimaging.data.folder import to_dataset

    with pytest.raises(
        ValueError, match=r"uint8 of shape \(N, C, H, W\); got float64 of shape \(2, 3, 4, 4\)"
    ):
        to_dataset(np.zeros((2, 3, 4, 4)), [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match=r"got uint8 of shape \(2, 4, 4\)"):
        to_dataset(np.zeros((2, 4, 4), dtype=np.uint8), [0, 1], ["a", "b"])
    ds = to_dataset(np.full((2, 1, 4, 4), 51, dtype=np.uint8), [0, 1], ["a", "b"])
    assert ds.storage.dtype == torch.uint8 and torch.allclose(ds.images, torch.full((2, 1, 4, 4), 0.2))
