"""download_bccd() and the BCCD loaders agree on where BCCD lives (issue 26, item 4).

A tiny BCCD in Pascal VOC layout (two solid-colour photos, boxes written by hand) is served on
127.0.0.1; ``download_bccd()`` and ``load_bccd_crops()`` are then called with no path at all,
as a student would after reading the README.
"""

import hashlib
import io

import numpy as np
import pytest
from _local_server import serve_folder
from PIL import Image

import deepimaging.data.bccd as bccd_module
from deepimaging.data import download_bccd, find_bccd, load_bccd_crops

# image id: (RGB colour, [(class, xmin, ymin, xmax, ymax), ...]); one degenerate box is dropped.
PHOTOS = {
    "BloodImage_00001": ((200, 30, 30), [("RBC", 2, 2, 20, 20), ("WBC", 30, 10, 60, 40)]),
    "BloodImage_00002": ((30, 30, 200), [("Platelets", 5, 5, 15, 15), ("RBC", 8, 8, 8, 30)]),
}


def _voc_files():
    """{relative path: bytes} of the tiny BCCD."""
    files = {}
    for image_id, (colour, objects) in PHOTOS.items():
        files[f"JPEGImages/{image_id}.jpg"] = _jpeg_bytes(Image.new("RGB", (80, 60), colour))
        objs = "".join(
            f"<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
            f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
            for name, x0, y0, x1, y1 in objects
        )
        files[f"Annotations/{image_id}.xml"] = f"<annotation>{objs}</annotation>".encode()
    files["ImageSets/Main/train.txt"] = "\n".join(PHOTOS).encode() + b"\n"
    return files


def _jpeg_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


@pytest.fixture
def served_bccd(tmp_path, monkeypatch):
    """Serve the tiny BCCD on 127.0.0.1 under the real registry format; the user's data folder is empty."""
    monkeypatch.delenv("DEEPIMAGING_BCCD", raising=False)
    monkeypatch.setenv("DEEPIMAGING_DATA", str(tmp_path / "data"))
    served = tmp_path / "served"
    lines = ["# test registry"]
    for relative, data in _voc_files().items():
        (served / "BCCD" / relative).parent.mkdir(parents=True, exist_ok=True)
        (served / "BCCD" / relative).write_bytes(data)
        lines.append(f"{relative} sha256:{hashlib.sha256(data).hexdigest()}")
    registry = tmp_path / "registry.txt"
    registry.write_text("\n".join(lines) + "\n")
    with serve_folder(served, monkeypatch) as httpd:
        monkeypatch.setattr(bccd_module, "BCCD_REGISTRY", registry)
        monkeypatch.setattr(bccd_module, "BCCD_BASE_URL", f"http://127.0.0.1:{httpd.server_address[1]}/BCCD/")
        yield tmp_path / "data"


def test_crops_load_without_a_path_after_download_bccd_without_a_path(served_bccd):
    with pytest.raises(FileNotFoundError, match="download_bccd") as info:
        load_bccd_crops(size=8)
    # Before the download, the error names both places it looked.
    assert str(served_bccd / "BCCD") in str(info.value)
    assert str(served_bccd / "downloads") in str(info.value)

    root = download_bccd(n_jobs=2)
    assert root.is_relative_to(served_bccd)
    assert find_bccd() == root
    crops = load_bccd_crops(size=8)
    # Hand count: three boxes with an area (the 0-wide RBC box is dropped), in file order.
    assert crops.labels.tolist() == [0, 1, 2]
    # Each crop of a solid-colour photo is that colour (JPEG rounds a little).
    expected = [(200, 30, 30), (200, 30, 30), (30, 30, 200)]
    for image, colour in zip(crops.images, expected):  # float in [0, 1]
        mean = image.double().reshape(3, -1).mean(dim=1).numpy() * 255
        assert np.allclose(mean, colour, atol=6), (mean, colour)


def test_a_copy_in_the_data_folder_is_preferred_to_the_download(served_bccd):
    download_bccd(n_jobs=2)
    own = served_bccd / "BCCD"
    for relative, data in _voc_files().items():
        (own / relative).parent.mkdir(parents=True, exist_ok=True)
        (own / relative).write_bytes(data)
    assert find_bccd() == own


def test_deepimaging_bccd_wins_over_both_defaults(served_bccd, tmp_path, monkeypatch):
    download_bccd(n_jobs=2)
    monkeypatch.setenv("DEEPIMAGING_BCCD", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_bccd()
