"""Tests written to kill mutants of ``deepimaging.data`` that the data tests let survive.

Each test names the mutant it was written for (``SAMPLE=60 bash benchmarks/mutation.sh data``, see
benchmarks/mutation_results.md, which lists the survivors not handled yet).
"""

import re
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from deepimaging.data import ImageDataset
from deepimaging.data.download import UnsafeArchiveError, extract_archive
from deepimaging.data.folder import read_image_folder


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
