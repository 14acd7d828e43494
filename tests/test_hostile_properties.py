"""Property: every public function of ``metrics`` and ``data`` either works or says what was wrong.

Each function is first called with good arguments (a working call, checked to
work). Hypothesis then replaces one argument at a time by a hostile value —
NaN, infinity, an empty array, text, a wrong dtype or shape, a size that would
exhaust memory, a path that escapes its folder — and the call must either

* return a result of the documented kind and shape with finite numbers, or
* raise ``ValueError`` or ``TypeError`` whose message names the replaced
  parameter (so the student knows which argument to fix).

Anything else (an ``IndexError`` from inside numpy, a ``MemoryError``, NaN in
the result, a file written outside its folder) fails the test. Functions that
read files may also raise ``FileNotFoundError`` / ``NotADirectoryError`` for a
path that does not exist, with the path in the message, as ``open`` does.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import deepimaging.data as data
import deepimaging.metrics as metrics

PROPERTY = settings(
    max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "30")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# ---------------------------------------------------------------- hostile values

# Factories, not values: each draw gets a fresh object (a function may legally change a tensor in place).
HOSTILE = {
    "None": lambda: None,
    "empty str": lambda: "",
    "text": lambda: "ab",
    "bytes": lambda: b"\x00\xff",
    "nan": lambda: float("nan"),
    "inf": lambda: float("inf"),
    "-inf": lambda: -float("inf"),
    "-1": lambda: -1,
    "0": lambda: 0,
    "0.5": lambda: 0.5,
    "True": lambda: True,
    "10**9": lambda: 10**9,
    "2**70": lambda: 2**70,
    "-2**70": lambda: -(2**70),
    "1e300": lambda: 1e300,
    "complex": lambda: 1 + 2j,
    "object": lambda: object(),
    "dict": lambda: {"a": 1},
    "empty list": lambda: [],
    "nested empty list": lambda: [[]],
    "ragged list": lambda: [[0, 1], [2]],
    "list of text": lambda: ["a", "b"],
    "empty array": lambda: np.array([]),
    "empty (0, 4) array": lambda: np.zeros((0, 4)),
    "text array": lambda: np.array(["x", "y", "z"]),
    "object array": lambda: np.array([None, 1], dtype=object),
    "complex array": lambda: np.array([1 + 1j, 0j, 1j]),
    "nan array": lambda: np.array([np.nan, 0.0, 1.0]),
    "inf array": lambda: np.array([np.inf, 0.0, -np.inf]),
    "5-D array": lambda: np.zeros((1, 1, 1, 1, 1)),
    "huge labels": lambda: np.array([0, 10**12, 1]),
    "empty tensor": lambda: torch.zeros(0),
    "empty batch": lambda: torch.zeros(0, 1, 16, 16),
    "nan images": lambda: torch.full((2, 1, 16, 16), float("nan")),
    "inf images": lambda: torch.full((2, 1, 16, 16), float("inf")),
    "int64 images": lambda: torch.ones(2, 1, 16, 16, dtype=torch.int64),
    "tiny images": lambda: torch.rand(2, 1, 2, 2),
    "1-D tensor": lambda: torch.rand(5),
    "escaping path": lambda: "../escaped",
    "unwritable absolute path": lambda: "/proc/deepimaging-hostile",  # not even root can create it
}

hostile_values = st.sampled_from(sorted(HOSTILE)).map(lambda key: (key, HOSTILE[key]()))


# ---------------------------------------------------------------- what a good result looks like


def _finite(value, allow=()) -> bool:
    """Whether every number in ``value`` (nested tuples, lists, dicts, arrays, tensors) is finite."""
    if isinstance(value, dict):
        return all(_finite(v, allow) for v in value.values())
    if isinstance(value, (tuple, list)):
        return all(_finite(v, allow) for v in value)
    if isinstance(value, torch.Tensor):
        value = value.detach().float().numpy() if value.is_floating_point() else value.numpy()
    if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.number):
        return bool(np.all(np.isfinite(value[~np.isin(value, allow)]))) if value.size else True
    if isinstance(value, float):
        return math.isfinite(value) or value in allow
    return True


def _rate(result, args):
    if args.get("average", "binary") is None:
        assert (
            isinstance(result, np.ndarray)
            and result.ndim == 1
            and 2 <= len(result) <= metrics.classification.MAX_CLASSES
        )
    else:
        assert isinstance(result, float)
    zero_division = args.get("zero_division", 0.0)
    if isinstance(zero_division, float) and math.isnan(zero_division):
        return  # "undefined stays undefined", documented
    assert _finite(result) and np.all((0 <= np.asarray(result)) & (np.asarray(result) <= 1))


def _unit_float(result, args):
    assert isinstance(result, float) and 0 <= result <= 1


def _per_class(result, args):
    if args.get("average", "macro") is None:
        assert isinstance(result, np.ndarray) and result.ndim == 1 and _finite(result)
    else:
        assert isinstance(result, float) and 0 <= result <= 1


def _confusion(result, args):
    assert isinstance(result, np.ndarray) and result.ndim == 2 and result.shape[0] == result.shape[1] >= 2
    assert result.shape[0] <= metrics.classification.MAX_CLASSES and _finite(result)


def _roc(result, args):
    fpr, tpr, thresholds = result
    assert len(fpr) == len(tpr) == len(thresholds) >= 2
    assert thresholds[0] == np.inf and _finite((fpr, tpr, thresholds[1:]))  # inf first: documented


def _pr(result, args):
    precision, recall, thresholds = result
    assert len(precision) == len(recall) == len(thresholds) + 1 and _finite(result)


def _report(result, args):
    assert (
        isinstance(result, str)
        if args.get("output") == "text"
        else isinstance(result, dict) and _finite(result)
    )


def _per_image(result, args):
    x = args["x"]
    assert isinstance(result, torch.Tensor) and result.shape == x.shape[: x.ndim - 3] and _finite(result)


def _psnr(result, args):
    x = args["x"]
    # +inf where two images are identical: documented.
    assert isinstance(result, torch.Tensor) and result.shape == x.shape[: x.ndim - 3]
    assert _finite(result, allow=(np.inf,))


def _ssim(result, args):
    values = result[0] if args.get("return_map") else result
    _per_image(values, args)


def _boxes(result, args):
    assert isinstance(result, torch.Tensor) and result.ndim == 2 and _finite(result)
    assert torch.all((result >= 0) & (result <= 1))


def _dataset(result, args):
    assert isinstance(result, data.ImageDataset) and result.storage.ndim == 4
    assert len(result) == len(result.labels) and _finite(result.images_at(slice(0, 4)))
    if len(result):
        assert 0 <= int(result.labels.min()) and int(result.labels.max()) < result.num_classes


def _anything_finite(result, args):
    assert _finite(result)


# ---------------------------------------------------------------- the calls


def _labels(*values):
    return np.array(values)


GOOD_IMAGES = dict(
    x=lambda: torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0)),
    y=lambda: torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1)),
)
RATE_ARGS = dict(
    y_true=lambda: _labels(0, 1, 1, 0, 1),
    y_pred=lambda: _labels(0, 1, 0, 0, 1),
    average=lambda: "binary",
    num_classes=lambda: None,
    zero_division=lambda: 0.0,
)
SCORE_ARGS = dict(y_true=lambda: _labels(0, 1, 1, 0), scores=lambda: np.array([0.1, 0.8, 0.4, 0.3]))
OVR_ARGS = dict(
    y_true=lambda: _labels(0, 1, 2, 1),
    probabilities=lambda: np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.3, 0.6, 0.1]]),
    average=lambda: "macro",
)

METRICS = {
    "confusion_matrix": (
        metrics.confusion_matrix,
        dict(
            y_true=lambda: _labels(0, 1, 2),
            y_pred=lambda: _labels(0, 2, 2),
            num_classes=lambda: None,
            normalize=lambda: None,
        ),  # fmt: skip
        _confusion,
    ),
    **{
        name: (getattr(metrics, name), RATE_ARGS, _rate)
        for name in (
            "sensitivity",
            "recall",
            "specificity",
            "false_positive_rate",
            "false_negative_rate",
            "precision",
            "f1_score",
        )
    },
    "accuracy": (
        metrics.accuracy,
        dict(y_true=lambda: _labels(0, 1), y_pred=lambda: _labels(1, 1)),
        _unit_float,
    ),
    "classification_report": (
        metrics.classification_report,
        dict(
            y_true=lambda: _labels(0, 1, 2),
            y_pred=lambda: _labels(0, 2, 2),
            classes=lambda: None,
            output=lambda: "dict",
        ),  # fmt: skip
        _report,
    ),
    "roc_curve": (metrics.roc_curve, {**SCORE_ARGS, "drop_intermediate": lambda: True}, _roc),
    "auc": (
        metrics.auc,
        dict(x=lambda: np.array([0, 0.5, 1]), y=lambda: np.array([0, 1, 1])),
        _anything_finite,
    ),
    "roc_auc": (metrics.roc_auc, SCORE_ARGS, _unit_float),
    "roc_auc_ovr": (metrics.roc_auc_ovr, OVR_ARGS, _per_class),
    "precision_recall_curve": (
        metrics.precision_recall_curve,
        {**SCORE_ARGS, "drop_intermediate": lambda: False},
        _pr,
    ),
    "average_precision": (metrics.average_precision, SCORE_ARGS, _unit_float),
    "average_precision_ovr": (metrics.average_precision_ovr, OVR_ARGS, _per_class),
    "jaccard": (
        metrics.jaccard,
        dict(
            mask_a=lambda: np.eye(3, dtype=bool),
            mask_b=lambda: np.ones((3, 3), bool),
            zero_division=lambda: 1.0,
        ),
        _unit_float,
    ),
    "box_jaccard": (
        metrics.box_jaccard,
        dict(boxes_a=lambda: [[0, 0, 2, 2]], boxes_b=lambda: [[1, 0, 3, 2], [5, 5, 6, 6]]),
        _boxes,
    ),
    "mse": (metrics.mse, GOOD_IMAGES, _per_image),
    "psnr": (metrics.psnr, {**GOOD_IMAGES, "data_range": lambda: 1.0}, _psnr),
    "ssim": (
        metrics.ssim,
        {
            **GOOD_IMAGES,
            "data_range": lambda: 1.0,
            "window_size": lambda: 7,
            "sigma": lambda: 1.5,
            "k1": lambda: 0.01,
            "k2": lambda: 0.03,
            "return_map": lambda: False,
        },  # fmt: skip
        _ssim,
    ),
    "data_range_from_bits": (
        metrics.data_range_from_bits,
        dict(bits=lambda: 8),
        lambda result, args: isinstance(result, int) and result >= 1,
    ),
}


def test_every_public_metric_is_covered():
    assert sorted(METRICS) == sorted(metrics.__all__)


def _call(function, defaults, replaced=None, value=None):
    args = {name: make() for name, make in defaults.items()}
    if replaced is not None:
        args[replaced] = value
    return args, (lambda: function(**args))


def _check_outcome(call, check, args, replaced, key, files=False):
    """The property itself: a good result, or a ValueError/TypeError that names ``replaced``.

    With ``files``, an OSError (a path that does not exist, a folder that cannot be
    written) is the documented answer too, as long as it names the path.
    """
    try:
        result = call()
    except (ValueError, TypeError) as err:
        # The parameter's name, or for a path the path itself ("class folder ab/x holds no images").
        path = args[replaced] if files and isinstance(args[replaced], str) and args[replaced] else None
        named = replaced in str(err) or (path is not None and f"{path}/" in str(err))
        assert named, f"{replaced}={key}: the message does not name {replaced!r}: {err}"
        return
    except OSError as err:
        assert files, f"{replaced}={key}: {type(err).__name__} from a function that touches no files: {err}"
        named = replaced in str(err) or str(args[replaced]) in str(err)
        assert named, (
            f"{replaced}={key}: {type(err).__name__} that names neither {replaced!r} nor the path: {err}"
        )
        return
    check(result, args)


@pytest.mark.parametrize("name", sorted(METRICS))
@PROPERTY
@given(drawn=st.data())
def test_a_metric_given_one_hostile_argument_returns_a_finite_result_or_names_it(name, drawn):
    function, defaults, check = METRICS[name]
    args, call = _call(function, defaults)
    check(call(), args)  # the good call works
    replaced = drawn.draw(st.sampled_from(sorted(defaults)), label="argument")
    key, value = drawn.draw(hostile_values, label="value")
    args, call = _call(function, defaults, replaced, value)
    _check_outcome(call, check, args, replaced, key)


# ---------------------------------------------------------------- data: files on disk


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    """A folder of images, a Kaggle layout, a MedMNIST file and a zip archive, made once."""
    root = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    for folder in (root / "images", root / "kaggle" / "dataset2-master" / "images" / "TRAIN"):
        names = ("a", "b") if folder.name == "images" else data.kaggle.KAGGLE_CLASSES
        for name in names:
            (folder / name).mkdir(parents=True)
            for k in range(2):
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
                    folder / name / f"{k}.png"
                )
    np.savez(
        root / "blood.npz",
        **{
            f"{part}_images": rng.integers(0, 256, (3, 28, 28, 3), dtype=np.uint8)
            for part in ("train", "val", "test")
        },
        **{f"{part}_labels": rng.integers(0, 8, (3, 1)) for part in ("train", "val", "test")},
    )
    with zipfile.ZipFile(root / "archive.zip", "w") as zf:
        zf.writestr("pkg/readme.txt", "ok")
    (root / "cache").mkdir()
    return root


def _inside(path, folder) -> bool:
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def _data_calls(disk):
    """name -> (function, good arguments, check of a result); every path argument points into ``disk``."""
    counter = iter(range(10**9))

    def fresh(name):  # a new target folder per call, inside the disk folder
        return lambda: disk / "out" / f"{name}-{next(counter)}"

    def as_float(result, args):
        # uint8 becomes float in [0, 1]; float images pass unchanged (documented: no copy, no check).
        if args["images"].dtype == torch.uint8:
            assert result.dtype == torch.float32 and _finite(result)
        else:
            assert result is args["images"]

    def path_of(result, args):
        assert isinstance(result, Path)

    def fetched(result, args):
        folder = args["path"] if args["path"] is not None else data.data_dir(sub="downloads")
        assert isinstance(result, Path) and _inside(result, folder)  # never outside its folder

    def unpacked(result, args):
        assert isinstance(result, Path) and (result / "pkg" / "readme.txt").read_text() == "ok"

    def smear_field(result, args):
        image, boxes, labels, classes = result
        assert (
            image.shape == (3, args["size"], args["size"])
            and boxes.shape == (len(labels), 4)
            and _finite(image)
        )

    def decoded(result, args):
        assert result.dtype == np.uint8 and result.shape[:2] == (args["size"], args["size"])

    def arrays(result, args):
        images, labels, classes = result
        assert images.ndim == 4 and len(images) == len(labels) and labels.max() < len(classes)

    def splits(result, args):
        assert len(result) == 3 and all(isinstance(part, data.ImageDataset) for part in result)
        assert sum(len(part) for part in result) == len(args["dataset"])

    folder = dict(
        root=lambda: disk / "images", size=lambda: 8, grayscale=lambda: False, classes=lambda: None,
        cache_dir=lambda: disk / "cache", n_jobs=lambda: 1,
    )  # fmt: skip
    return {
        "as_float": (
            data.as_float,
            dict(images=lambda: torch.zeros(1, 1, 2, 2, dtype=torch.uint8)),
            as_float,
        ),
        "dataset_loader": (
            data.dataset_loader,
            dict(name=lambda: "digits"),
            lambda result, args: callable(result),
        ),
        "data_dir": (data.data_dir, dict(cache_dir=lambda: disk / "cache", sub=lambda: "decoded"), path_of),
        "decode_image": (
            data.decode_image,
            dict(path=lambda: disk / "images" / "a" / "0.png", size=lambda: 4, grayscale=lambda: False),
            decoded,
        ),
        "load_image_folder": (data.load_image_folder, folder, _dataset),
        "read_image_folder": (data.read_image_folder, folder, arrays),
        "to_dataset": (
            data.folder.to_dataset,
            dict(
                images=lambda: np.zeros((2, 1, 4, 4), np.uint8),
                labels=lambda: [0, 1],
                classes=lambda: ["a", "b"],
            ),
            _dataset,
        ),
        "ImageDataset": (
            data.ImageDataset,
            dict(images=lambda: torch.rand(2, 1, 4, 4), labels=lambda: [0, 1], classes=lambda: ["a", "b"]),
            _dataset,
        ),
        "split": (
            data.split,
            dict(
                dataset=lambda: data.ImageDataset(torch.rand(20, 1, 2, 2), torch.arange(20) % 2, ["a", "b"]),
                val=lambda: 0.2,
                test=lambda: 0.2,
                seed=lambda: 0,
            ),  # fmt: skip
            splits,
        ),
        "find_kaggle_blood_cells": (
            data.find_kaggle_blood_cells,
            dict(root=lambda: disk / "kaggle"),
            path_of,
        ),
        "load_kaggle_blood_cells": (
            data.load_kaggle_blood_cells,
            dict(
                root=lambda: disk / "kaggle",
                split=lambda: "TRAIN",
                size=lambda: 8,
                grayscale=lambda: False,
                cache_dir=lambda: disk / "cache",
                n_jobs=lambda: 1,
            ),  # fmt: skip
            _dataset,
        ),
        "load_medmnist": (
            data.load_medmnist,
            dict(
                name=lambda: "bloodmnist",
                split=lambda: "test",
                size=lambda: 28,
                path=lambda: disk / "blood.npz",
                download=lambda: False,
                cache_dir=lambda: disk / "cache",
            ),  # fmt: skip
            _dataset,
        ),
        "medmnist_path": (
            data.medmnist_path,
            dict(name=lambda: "bloodmnist", size=lambda: 64, cache_dir=lambda: disk / "cache"),
            path_of,
        ),
        "medmnist_url": (
            data.medmnist_url,
            dict(name=lambda: "bloodmnist", size=lambda: 64),
            lambda result, args: result.startswith("https://"),
        ),
        "simulate_blood_smear": (
            data.simulate_blood_smear,
            dict(n_per_class=lambda: 1, size=lambda: 16, seed=lambda: 0),
            _dataset,
        ),
        "simulate_smear_field": (
            data.simulate_smear_field,
            dict(size=lambda: 64, n_cells=lambda: 1, cell_size=lambda: 16, seed=lambda: 0),
            smear_field,
        ),
        "extract_archive": (
            data.download.extract_archive,
            dict(archive=lambda: disk / "archive.zip", target=fresh("extract")),
            unpacked,
        ),
        "fetch_file": (
            data.fetch_file,
            dict(
                url=lambda: "https://example.org/file.bin",
                known_hash=lambda: "md5:" + "0" * 32,
                fname=lambda: "file.bin",
                path=fresh("fetch"),
                progress=lambda: False,
            ),  # fmt: skip
            fetched,
        ),
        "fetch_archive": (
            data.download.fetch_archive,
            dict(
                url=lambda: "https://example.org/archive.zip",
                known_hash=lambda: "md5:" + "0" * 32,
                folder=lambda: "unpacked",
                path=fresh("fetch-archive"),
                fname=lambda: "archive.zip",
            ),  # fmt: skip
            lambda result, args: unpacked(result, args) or fetched(result, args),
        ),
    }


# Functions of deepimaging.data that need the BCCD copy or a network, or take no argument; they are
# tested in test_data_loaders.py and test_downloads.py. Classes other than ImageDataset are not calls.
NOT_HERE = {
    "dataset_names",
    "download_bccd",
    "find_bccd",
    "load_bccd_crops",
    "load_bccd_images",
    "load_digits",
}
CALLABLE_DATA = sorted(
    name
    for name in data.__all__
    if callable(getattr(data, name)) and name not in NOT_HERE | {"BoxedImages", "UnsafeArchiveError"}
)


# Plumbing of the loaders, no longer in deepimaging.data's public list but still hostile-tested.
PLUMBING = {"to_dataset", "extract_archive", "fetch_archive"}


def test_every_public_data_function_is_covered(disk):
    assert sorted(set(_data_calls(disk)) - PLUMBING) == CALLABLE_DATA


@pytest.fixture
def offline(monkeypatch, disk):
    """pooch.retrieve replaced by a stand-in that "downloads" the archive into path/fname, as pooch would.

    The working folder and the default data folder move inside ``disk`` too, so relative paths
    drawn as hostile values, and defaults, land there.
    """
    import pooch

    (disk / "work" / "cwd").mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(disk / "work" / "cwd")
    monkeypatch.setenv(
        "DEEPIMAGING_DATA", str(disk / "work" / "default-data")
    )  # path=None: not the user's cache

    def retrieve(url, known_hash, fname=None, path=None, progressbar=False):
        target = Path(path) / (fname or url.rsplit("/", 1)[-1])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((disk / "archive.zip").read_bytes())
        return str(target)

    monkeypatch.setattr(pooch, "retrieve", retrieve)


@pytest.mark.parametrize("name", CALLABLE_DATA)
@PROPERTY
@given(drawn=st.data())
def test_a_data_function_given_one_hostile_argument_returns_a_good_result_or_names_it(
    name, drawn, disk, offline
):
    function, defaults, check = _data_calls(disk)[name]
    args, call = _call(function, defaults)
    check(call(), args)  # the good call works
    replaced = drawn.draw(st.sampled_from(sorted(defaults)), label="argument")
    key, value = drawn.draw(hostile_values, label="value")
    args, call = _call(function, defaults, replaced, value)
    _check_outcome(call, check, args, replaced, key, files=True)
