"""The whole download path against a local HTTP server on 127.0.0.1 that each test starts and stops."""

import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _local_server import QuietHandler, serve_folder
from PIL import Image

import deepimaging.data.bccd as bccd_module
import deepimaging.data.medmnist as medmnist_module
from deepimaging.data import (
    UnsafeArchiveError,
    download_bccd,
    fetch_file,
    load_bccd_images,
    load_medmnist,
)
from deepimaging.data.download import extract_archive, fetch_archive


class _Handler(QuietHandler):
    """Serves files from the server's folder; ``/cut/<name>`` promises the whole file but sends half."""

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path.startswith("/cut/"):
            data = (Path(self.directory) / self.path[len("/cut/") :]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """(base URL, folder served, list of request paths); stopped after the test."""
    served = tmp_path / "served"
    served.mkdir()
    with serve_folder(served, monkeypatch, _Handler) as httpd:
        httpd.requests = []
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served, httpd.requests


def _sha256(path):
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _voc_zip(path, top="BCCD_Dataset-d272fb1"):
    """A tiny BCCD-like archive: two photos with one WBC and two RBC boxes each."""
    rng = np.random.default_rng(0)
    ids = ["BloodImage_00000", "BloodImage_00001"]
    with zipfile.ZipFile(path, "w") as zf:
        for image_id in ids:
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(buffer, "JPEG")
            zf.writestr(f"{top}/BCCD/JPEGImages/{image_id}.jpg", buffer.getvalue())
            objects = "".join(
                f"<object><name>{name}</name><bndbox><xmin>{x}</xmin><ymin>10</ymin>"
                f"<xmax>{x + 30}</xmax><ymax>50</ymax></bndbox></object>"
                for name, x in (("WBC", 5), ("RBC", 60), ("RBC", 100))
            )
            zf.writestr(f"{top}/BCCD/Annotations/{image_id}.xml", f"<annotation>{objects}</annotation>")
        zf.writestr(f"{top}/BCCD/ImageSets/Main/train.txt", "\n".join(ids) + "\n")
    return path


def _leftovers(folder):
    return sorted(p.name for p in Path(folder).rglob("*")) if Path(folder).exists() else []


def test_good_archive_is_downloaded_verified_extracted_and_reused(server, tmp_path):
    base, served, requests = server
    archive = _voc_zip(served / "bccd.zip")
    target = fetch_archive(f"{base}/bccd.zip", _sha256(archive), folder="bccd", path=tmp_path / "data")
    assert (target / "BCCD_Dataset-d272fb1" / "BCCD" / "Annotations" / "BloodImage_00001.xml").is_file()
    assert not [p for p in _leftovers(tmp_path / "data") if p.endswith(".part")]
    again = fetch_archive(f"{base}/bccd.zip", _sha256(archive), folder="bccd", path=tmp_path / "data")
    assert again == target and len(requests) == 1  # the second call found the folder


def test_download_bccd_fetches_every_registered_file_verified_and_loads(
    server, bccd_root, tmp_path, monkeypatch
):
    """The real registry against the real files (the shared BCCD copy, served on 127.0.0.1)."""
    import shutil

    bccd_root = Path(bccd_root)
    base, served, requests = server
    shutil.copytree(bccd_root, served / "BCCD")
    monkeypatch.setattr(bccd_module, "BCCD_BASE_URL", f"{base}/BCCD/")
    root = download_bccd(path=tmp_path / "data")
    assert root == tmp_path / "data" / "BCCD_Dataset-d272fb1" / "BCCD"
    assert len(requests) == 732 and not (tmp_path / "data" / ".BCCD_Dataset-d272fb1.part").exists()
    for relative in ("JPEGImages/BloodImage_00000.jpg", "ImageSets/Main/test.txt"):
        assert (root / relative).read_bytes() == (bccd_root / relative).read_bytes()
    assert len(load_bccd_images(root, "test")) == len(load_bccd_images(bccd_root, "test"))
    assert download_bccd(path=tmp_path / "data") == root and len(requests) == 732  # found, not fetched


def _small_registry(tmp_path, served, monkeypatch, base, tamper=False):
    """A 3-file registry whose files the server holds; ``tamper`` changes one served file afterwards."""
    lines = []
    for relative, data in [
        ("Annotations/BloodImage_00001.xml", b"<annotation></annotation>"),
        ("ImageSets/Main/train.txt", b"BloodImage_00001\n"),
        ("JPEGImages/BloodImage_00001.jpg", b"not really a jpeg" * 100),
    ]:
        (served / "BCCD" / relative).parent.mkdir(parents=True, exist_ok=True)
        (served / "BCCD" / relative).write_bytes(data)
        lines.append(f"{relative} sha256:{hashlib.sha256(data).hexdigest()}")
    registry = tmp_path / "registry.txt"
    registry.write_text("# test registry\n" + "\n".join(lines) + "\n")
    monkeypatch.setattr(bccd_module, "BCCD_REGISTRY", registry)
    monkeypatch.setattr(bccd_module, "BCCD_BASE_URL", f"{base}/BCCD/")
    if tamper:
        (served / "BCCD" / "JPEGImages" / "BloodImage_00001.jpg").write_bytes(b"tampered")


def test_download_bccd_with_a_tampered_file_fails_and_keeps_only_verified_files(
    server, tmp_path, monkeypatch
):
    base, served, requests = server
    _small_registry(tmp_path, served, monkeypatch, base, tamper=True)
    with pytest.raises(ValueError, match="BloodImage_00001.jpg did not match its known hash"):
        download_bccd(path=tmp_path / "data", n_jobs=1)
    assert not (tmp_path / "data" / "BCCD_Dataset-d272fb1").exists()  # no folder that looks complete
    kept = sorted(p.name for p in (tmp_path / "data").rglob("*") if p.is_file())
    assert kept == ["BloodImage_00001.xml", "train.txt"]  # the two verified files, nothing else
    # Once the server has the right file, a second call fetches only what is missing.
    _small_registry(tmp_path, served, monkeypatch, base)
    requests.clear()
    root = download_bccd(path=tmp_path / "data", n_jobs=1)
    assert (
        requests == ["/BCCD/JPEGImages/BloodImage_00001.jpg"]
        and (root / "ImageSets/Main/train.txt").is_file()
    )


def test_download_bccd_cut_off_is_a_connection_error_and_keeps_nothing_partial(server, tmp_path, monkeypatch):
    base, served, requests = server
    _small_registry(tmp_path, served, monkeypatch, base)
    monkeypatch.setattr(bccd_module, "BCCD_BASE_URL", f"{base}/cut/BCCD/")
    with pytest.raises(ConnectionError, match="failed or was cut off"):
        download_bccd(path=tmp_path / "data", n_jobs=1)
    assert [p for p in (tmp_path / "data").rglob("*") if p.is_file()] == []
    with pytest.raises(ValueError, match="n_jobs"):
        download_bccd(path=tmp_path / "data", n_jobs=0)


def test_bccd_registry_lists_every_file_of_the_shared_copy_with_its_hash(bccd_root):
    bccd_root = Path(bccd_root)
    registry = bccd_module._read_registry(bccd_module.BCCD_REGISTRY)
    on_disk = {
        p.relative_to(bccd_root).as_posix()
        for p in bccd_root.rglob("*")
        if p.is_file() and p.parts[len(bccd_root.parts)] in ("Annotations", "ImageSets", "JPEGImages")
    }
    assert set(registry) == on_disk and len(registry) == 732
    for relative in ("Annotations/BloodImage_00100.xml", "JPEGImages/BloodImage_00410.jpg"):
        assert registry[relative] == _sha256(bccd_root / relative)


def test_wrong_hash_deletes_the_file_and_leaves_no_cache_entry(server, tmp_path):
    base, served, _ = server
    _voc_zip(served / "bccd.zip")
    wrong = "sha256:" + "0" * 64
    with pytest.raises(ValueError, match="did not match its known hash"):
        fetch_archive(f"{base}/bccd.zip", wrong, folder="bccd", path=tmp_path / "data")
    assert _leftovers(tmp_path / "data") == []


def test_cut_off_download_leaves_nothing_that_looks_complete(server, tmp_path):
    base, served, _ = server
    archive = _voc_zip(served / "bccd.zip")
    with pytest.raises(ConnectionError, match="cut off.*nothing was kept"):
        fetch_file(f"{base}/cut/bccd.zip", _sha256(archive), fname="bccd.zip", path=tmp_path / "data")
    assert _leftovers(tmp_path / "data") == []
    # The full file later downloads fine under the same name.
    path = fetch_file(f"{base}/bccd.zip", _sha256(archive), fname="bccd.zip", path=tmp_path / "data")
    assert path.read_bytes() == archive.read_bytes()


def test_truncated_file_served_whole_fails_its_hash_and_is_deleted(server, tmp_path):
    base, served, _ = server
    archive = _voc_zip(served / "bccd.zip")
    good = _sha256(archive)
    (served / "short.zip").write_bytes(archive.read_bytes()[:-100])
    with pytest.raises(ValueError, match="known hash"):
        fetch_archive(f"{base}/short.zip", good, folder="bccd", path=tmp_path / "data", fname="bccd.zip")
    assert _leftovers(tmp_path / "data") == []


def test_path_traversal_archive_is_refused_and_writes_nothing(server, tmp_path):
    base, served, _ = server
    with zipfile.ZipFile(served / "evil.zip", "w") as zf:
        zf.writestr("fine/readme.txt", "ok")
        zf.writestr("../../escaped.txt", "gotcha")
    with pytest.raises(UnsafeArchiveError, match="outside the target folder"):
        fetch_archive(f"{base}/evil.zip", _sha256(served / "evil.zip"), folder="evil", path=tmp_path / "data")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "data" / "escaped.txt").exists()
    assert _leftovers(tmp_path / "data") == []  # no archive, no folder, no .part


def _tar_with(path, member: tarfile.TarInfo, data: bytes = b""):
    with tarfile.open(path, "w:gz") as tf:
        ok = tarfile.TarInfo("pkg/ok.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        member.size = len(data) if member.isfile() else 0
        tf.addfile(member, io.BytesIO(data) if data else None)
    return path


def test_tar_members_with_absolute_paths_or_links_are_refused(tmp_path):
    absolute = tarfile.TarInfo("/tmp/deepimaging-absolute.txt")
    with pytest.raises(UnsafeArchiveError, match="absolute path"):
        extract_archive(_tar_with(tmp_path / "abs.tar.gz", absolute, b"x"), tmp_path / "out1")
    link = tarfile.TarInfo("pkg/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(UnsafeArchiveError, match="link"):
        extract_archive(_tar_with(tmp_path / "link.tar.gz", link), tmp_path / "out2")
    traversal = tarfile.TarInfo("pkg/../../up.txt")
    with pytest.raises(UnsafeArchiveError, match="path traversal"):
        extract_archive(_tar_with(tmp_path / "up.tar.gz", traversal, b"x"), tmp_path / "out3")
    assert not any((tmp_path / name).exists() for name in ("out1", "out2", "out3", "up.txt"))
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]


def test_zip_symlink_member_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as zf:
        info = zipfile.ZipInfo("pkg/link")
        info.external_attr = 0o120777 << 16  # S_IFLNK: what `zip --symlinks` writes
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="link"):
        extract_archive(tmp_path / "link.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_safe_tar_archive_extracts_its_files(tmp_path):
    plain = tarfile.TarInfo("pkg/data.txt")
    target = extract_archive(_tar_with(tmp_path / "ok.tar.gz", plain, b"hello"), tmp_path / "out")
    assert (target / "pkg" / "data.txt").read_bytes() == b"hello"
    assert (target / "pkg" / "ok.txt").read_bytes() == b"ok"


def test_medmnist_download_checks_the_md5_then_loads(server, tmp_path, monkeypatch):
    base, served, requests = server
    rng = np.random.default_rng(0)
    arrays = {}
    for part, n in (("train", 6), ("val", 2), ("test", 3)):
        arrays[f"{part}_images"] = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
        arrays[f"{part}_labels"] = rng.integers(0, 8, (n, 1)).astype(np.uint8)
    np.savez(served / "bloodmnist_64.npz", **arrays)
    md5 = hashlib.md5((served / "bloodmnist_64.npz").read_bytes()).hexdigest()
    info = {
        **medmnist_module.MEDMNIST["bloodmnist"],
        "md5": {28: "0" * 32, 64: md5, 128: "0" * 32, 224: "0" * 32},
    }
    monkeypatch.setitem(medmnist_module.MEDMNIST, "bloodmnist", info)
    monkeypatch.setattr(medmnist_module, "_ZENODO", base)
    ds = load_medmnist("bloodmnist", "test", size=64, download=True, cache_dir=tmp_path)
    assert ds.image_shape == (3, 64, 64) and len(ds) == 3
    assert (tmp_path / "medmnist" / "bloodmnist_64.npz").is_file()
    load_medmnist("bloodmnist", "train", size=64, download=True, cache_dir=tmp_path)
    assert len(requests) == 1  # the verified file is reused
    # A file whose MD5 differs from the published one is deleted, not loaded.
    (served / "bloodmnist.npz").write_bytes((served / "bloodmnist_64.npz").read_bytes())
    with pytest.raises(ValueError, match="known hash"):
        load_medmnist("bloodmnist", "test", size=28, download=True, cache_dir=tmp_path / "other")
    assert _leftovers(tmp_path / "other") in ([], ["medmnist"])


def test_fetch_file_without_a_hash_is_refused_before_any_request(server, tmp_path):
    _, _, requests = server
    with pytest.raises(ValueError, match="known_hash is required"):
        fetch_file("http://127.0.0.1:1/x.zip", None, path=tmp_path)
    assert requests == []


@pytest.mark.parametrize(
    "url, known_hash, fname, message",
    [
        ("not a url", "sha256:" + "0" * 64, None, "url must be an http, https or ftp address"),
        ("file:///etc/passwd", "sha256:" + "0" * 64, None, "url must be an http, https or ftp address"),
        ("{base}/a.bin", "rot13:" + "0" * 64, None, "known_hash must name a hash algorithm"),
        ("{base}/a.bin", "md5:" + "0" * 64, None, "known_hash must be md5: followed by 32 hexadecimal"),
        ("{base}/a.bin", "sha256:xyz", None, "known_hash must be sha256: followed by 64 hexadecimal"),
        ("{base}/a.bin", "sha256:" + "0" * 64, "../escaped.bin", "fname must be a plain file name"),
        ("{base}/a.bin", "sha256:" + "0" * 64, "sub/escaped.bin", "fname must be a plain file name"),
    ],
)
def test_fetch_file_refuses_malformed_arguments_before_any_request(
    server, tmp_path, url, known_hash, fname, message
):
    base, served, requests = server
    (served / "a.bin").write_bytes(b"data")
    with pytest.raises(ValueError, match=message):
        fetch_file(url.format(base=base), known_hash, fname=fname, path=tmp_path / "data")
    assert requests == [] and _leftovers(tmp_path / "data") == []  # nothing fetched, nothing written
    assert sorted(os.listdir(tmp_path)) == ["served"]  # and nothing beside the folder


def test_fetch_file_tells_a_hash_mismatch_from_pooch_s_other_value_errors(server, tmp_path, monkeypatch):
    import pooch

    base, served, _ = server
    (served / "a.bin").write_bytes(b"data")

    def no_tqdm(*args, **kwargs):
        raise ValueError("Missing package 'tqdm' required for progress bars.")

    monkeypatch.setattr(pooch, "retrieve", no_tqdm)
    with pytest.raises(ValueError, match="download of .*a.bin failed: Missing package 'tqdm'") as caught:
        fetch_file(f"{base}/a.bin", _sha256(served / "a.bin"), path=tmp_path, progress=True)
    assert "hash" not in str(caught.value)


def test_extract_archive_into_an_existing_empty_folder_extracts_into_it(tmp_path):
    plain = tarfile.TarInfo("pkg/data.txt")
    archive = _tar_with(tmp_path / "ok.tar.gz", plain, b"hello")
    (tmp_path / "out").mkdir()
    target = extract_archive(archive, tmp_path / "out")
    assert (target / "pkg" / "data.txt").read_bytes() == b"hello"
    # A folder that already holds the unpacked archive is returned as it is.
    (target / "pkg" / "data.txt").write_bytes(b"kept")
    assert (extract_archive(archive, tmp_path / "out") / "pkg" / "data.txt").read_bytes() == b"kept"


def test_fetch_archive_into_an_existing_empty_folder_downloads_and_extracts(server, tmp_path):
    base, served, _ = server
    archive = _voc_zip(served / "bccd.zip")
    (tmp_path / "data" / "bccd").mkdir(parents=True)
    target = fetch_archive(f"{base}/bccd.zip", _sha256(archive), folder="bccd", path=tmp_path / "data")
    with zipfile.ZipFile(archive) as zf:
        expected = sorted(n.rstrip("/") for n in zf.namelist())
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == expected


def test_extract_archive_of_a_missing_file_or_onto_a_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="archive .*missing.zip does not exist"):
        extract_archive(tmp_path / "missing.zip", tmp_path / "out")
    (tmp_path / "taken").write_text("x")
    with pytest.raises(FileExistsError, match="a file of that name exists"):
        extract_archive(tmp_path / "missing.zip", tmp_path / "taken")
    with pytest.raises(TypeError, match="archive must be a path"):
        extract_archive(None, tmp_path / "out")
    assert not (tmp_path / "out").exists()
