"""Hostile but realistic input to the data loaders, the decode cache and the simulators (issue 21).

Each test is one case a student met: a broken file, a typo, an empty batch. The
expected outcome is either the right result, checked against an independent
oracle (the pixels as written), or a ValueError / TypeError whose message names the parameter.
"""

from __future__ import annotations

import functools
import io
import json
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepimaging.data import (
    decode_image,
    load_image_folder,
    load_medmnist,
    simulate_blood_smear,
    simulate_smear_field,
)

# ---------------------------------------------------------------- image folders


@pytest.fixture
def write_folder(write_image_folder):
    """Two classes of three random 12 x 12 PNGs: the smallest folder every case below needs (tests/conftest.py)."""
    return functools.partial(write_image_folder, classes=("a", "b"), n=3, size=12)


def _as_hwc(dataset):
    return (dataset.storage.permute(0, 2, 3, 1).numpy(), dataset.labels.numpy())


def _expected(written, classes=("a", "b")):
    keys = sorted(written)  # class folders in order, files sorted by name
    return np.stack([written[k] for k in keys]), np.array([classes.index(k.split("/")[0]) for k in keys])


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header (IHDR) claims width x height pixels; the pixel data is far too short."""
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    # IHDR starts after the 8-byte signature: length (4), type (4), then width and height (4 each).
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # the chunk's CRC over type + data
    return bytes(data)


def test_a_link_to_itself_in_a_class_folder_is_skipped_with_a_warning_on_every_call(tmp_path, write_folder):
    written = write_folder(tmp_path / "images")
    os.symlink("loop.png", tmp_path / "images" / "a" / "loop.png")  # loop.png -> loop.png (ELOOP)
    for _ in range(2):  # the first call decodes, the second reads the cache: both must work
        with pytest.warns(UserWarning, match=r"skipped 1 link.*loop.png"):
            ds = load_image_folder(tmp_path / "images", size=12, cache_dir=tmp_path / "cache")
        images, labels = _as_hwc(ds)
        expected_images, expected_labels = _expected(written)
        np.testing.assert_array_equal(images, expected_images)
        np.testing.assert_array_equal(labels, expected_labels)


def test_a_png_whose_header_claims_30000x30000_pixels_is_skipped_and_the_rest_loads(tmp_path, write_folder):
    written = write_folder(tmp_path / "images")
    (tmp_path / "images" / "b" / "bomb.png").write_bytes(_png_claiming(30000, 30000))
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable.*b/bomb.png"):
        ds = load_image_folder(tmp_path / "images", size=12, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(_as_hwc(ds)[0], _expected(written)[0])


def test_decode_image_refuses_a_header_over_pillows_pixel_limit_before_decoding(tmp_path):
    # 10000 x 10000 = 1e8 pixels: over Pillow's limit (89,478,485) but under twice it, where
    # Pillow itself would only warn and go on to decode.
    (tmp_path / "big.png").write_bytes(_png_claiming(10000, 10000))
    assert 10000 * 10000 > Image.MAX_IMAGE_PIXELS
    with pytest.raises(ValueError, match=r"claims 10000 x 10000 pixels.*MAX_IMAGE_PIXELS"):
        decode_image(tmp_path / "big.png", 8)


def test_classes_as_one_string_is_a_type_error_not_one_class_per_letter(tmp_path, write_folder):
    write_folder(tmp_path / "images")
    with pytest.raises(TypeError, match=r"classes must be a list of class folder names.*'ab'"):
        load_image_folder(tmp_path / "images", classes="ab", cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("name", ["../outside", "a/../../outside", str(Path("/") / "tmp"), "..", ""])
def test_class_names_that_are_paths_cannot_read_outside_root(tmp_path, name, write_folder):
    write_folder(tmp_path / "images")
    write_folder(tmp_path, classes=("outside",))  # a readable class folder beside root
    with pytest.raises(ValueError, match="classes must hold plain folder names inside root"):
        load_image_folder(tmp_path / "images", classes=["a", name], cache_dir=tmp_path / "cache")


def test_repeated_or_non_string_class_names_are_refused(tmp_path, write_folder):
    write_folder(tmp_path / "images")
    with pytest.raises(ValueError, match=r"classes must not repeat a name; \['a'\]"):
        load_image_folder(tmp_path / "images", classes=["a", "b", "a"], cache_dir=tmp_path / "cache")
    with pytest.raises(TypeError, match="classes must hold folder names"):
        load_image_folder(tmp_path / "images", classes=["a", 1], cache_dir=tmp_path / "cache")


def test_root_that_is_not_a_path_is_a_type_error_naming_root(tmp_path):
    with pytest.raises(TypeError, match="root must be a path"):
        load_image_folder(None, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="size must be in"):
        load_image_folder(tmp_path, size=10**5, cache_dir=tmp_path / "cache")


def _damage_truncate_npy(entry: Path):
    data = entry.with_suffix(".npy").read_bytes()
    entry.with_suffix(".npy").write_bytes(data[: len(data) // 2])


def _damage_json(entry: Path):
    entry.with_suffix(".json").write_text('{"labels": [0, 1')


def _damage_json_keys(entry: Path):
    entry.with_suffix(".json").write_text(json.dumps({"classes": ["a", "b"]}))


@pytest.mark.parametrize("damage", [_damage_truncate_npy, _damage_json, _damage_json_keys])
def test_a_damaged_cache_entry_is_rebuilt_with_a_warning_and_gives_the_written_pixels(
    tmp_path, damage, write_folder
):
    written = write_folder(tmp_path / "images")
    cache = tmp_path / "cache"
    load_image_folder(tmp_path / "images", size=12, cache_dir=cache)
    (npy,) = (cache / "decoded").glob("folder-*.npy")
    damage(npy.with_suffix(""))
    with pytest.warns(UserWarning, match="is damaged.*rebuilding it"):
        ds = load_image_folder(tmp_path / "images", size=12, cache_dir=cache)
    expected_images, expected_labels = _expected(written)
    np.testing.assert_array_equal(_as_hwc(ds)[0], expected_images)
    np.testing.assert_array_equal(_as_hwc(ds)[1], expected_labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # healed: the next load reads the cache without a word
        load_image_folder(tmp_path / "images", size=12, cache_dir=cache)


# ---------------------------------------------------------------- MedMNIST files


def _npz_with_objects(path):
    np.savez(path, test_images=np.array([{"a": 1}], dtype=object), test_labels=np.zeros((1, 1), np.uint8))


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda p: p.write_bytes(b""), "is not a .npz"),
        (lambda p: p.write_text("train_images,train_labels\n1,2\n"), "is not a .npz"),
        (
            lambda p: np.save(p.with_suffix(".npy"), np.zeros(3)) or p.with_suffix(".npy").rename(p),
            "is not a",
        ),
        (_npz_with_objects, "holds Python objects"),
        (lambda p: np.savez(p, train_images=np.zeros((1, 28, 28), np.uint8)), r"lacks the key\(s\)"),
    ],
    ids=["empty", "text", "npy", "object-array", "missing-keys"],
)
def test_a_file_that_is_not_medmnist_is_a_value_error_that_never_advises_allow_pickle(
    tmp_path, write, message
):
    path = tmp_path / "bloodmnist.npz"
    write(path)
    with pytest.raises(ValueError, match=message) as caught:
        load_medmnist("bloodmnist", "test", path=path)
    assert str(path) in str(caught.value) and "allow_pickle" not in str(caught.value)


def test_medmnist_labels_outside_the_classes_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "b.npz"
    np.savez(path, test_images=np.zeros((2, 28, 28, 3), np.uint8), test_labels=np.array([[0], [8]]))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 7\].*got values in \[0, 8\]"):
        load_medmnist("bloodmnist", "test", path=path)


# ---------------------------------------------------------------- simulators


def test_simulators_refuse_sizes_that_exhaust_memory_before_allocating():
    with pytest.raises(ValueError, match=r"n_per_class and size ask for .* GiB"):
        simulate_blood_smear(n_per_class=2, size=10**5)
    with pytest.raises(ValueError, match=r"size ask for 1 RGB image"):
        simulate_smear_field(size=10**6)
    with pytest.raises(ValueError, match=r"seed must be in \[0, 18446744073709551615\]"):
        simulate_smear_field(size=128, seed=2**70)


def test_a_medmnist_array_whose_header_claims_exabytes_is_refused_before_allocating(
    tmp_path, write_medmnist_claiming
):
    path = write_medmnist_claiming(tmp_path / "bloodmnist.npz", (10**12, 224, 224, 3))
    with pytest.raises(ValueError, match=r"test_images claims shape \(1000000000000, 224, 224, 3\).*GiB"):
        load_medmnist("bloodmnist", "test", path=path)


def test_image_dataset_takes_an_empty_label_list_and_refuses_text_labels_or_a_class_string():
    import torch

    from deepimaging.data import ImageDataset

    assert len(ImageDataset(torch.zeros(0, 1, 2, 2), [], ["a"])) == 0
    with pytest.raises(TypeError, match="labels must be integer class indices"):
        ImageDataset(torch.zeros(1, 1, 2, 2), ["a"], ["a"])
    with pytest.raises(TypeError, match="classes must be a list of class names; got 'ab'"):
        ImageDataset(torch.zeros(1, 1, 2, 2), [0], "ab")
