"""Input checks shared by every public function.

Each check raises a ``TypeError`` or ``ValueError`` whose message names the
argument, what was expected and what arrived, so that a student who passes the
wrong thing learns what to pass instead.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch


def check_images(
    images,
    name: str = "images",
    *,
    ndim: int | tuple[int, ...] = 4,
    channels: int | None = None,
    check_range: bool = True,
) -> torch.Tensor:
    """Check that ``images`` is a floating tensor of shape (N, C, H, W) in [0, 1].

    Returns the tensor unchanged so the call can be used inline.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (N, C, H, W) with values in [0, 1]; "
            f"got {type(images).__name__}"
        )
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if images.ndim not in ndims:
        expected = " or ".join({3: "(C, H, W)", 4: "(N, C, H, W)"}.get(d, f"{d}-D") for d in ndims)
        raise ValueError(f"{name} must have shape {expected}; got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor with values in [0, 1]; got dtype {images.dtype} "
            "(convert uint8 images with images.float() / 255)"
        )
    if channels is not None and images.shape[-3] != channels:
        raise ValueError(
            f"{name} must have {channels} channel(s) (dimension -3); got {images.shape[-3]} "
            f"in shape {tuple(images.shape)}"
        )
    if check_range and images.numel():
        # One pass over the pixels, written into one 2-element tensor: one device-to-host copy (a GPU
        # sync) for both values rather than one per value.
        extrema = images.new_empty(2)
        torch.aminmax(images.detach(), out=(extrema[0], extrema[1]))
        lo, hi = extrema.tolist()
        if not (lo >= 0.0 and hi <= 1.0):  # also catches NaN
            raise ValueError(f"{name} must have values in [0, 1]; got values in [{lo:.4g}, {hi:.4g}]")
    return images


def shape_of(value):
    """A tensor's shape as a tuple, or the type name of anything else: what an error message says arrived."""
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def check_int(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """Check that ``value`` is an integer in [low, high] and return it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r} ({type(value).__name__})")
    _check_bounds(value, name, low, high)
    return int(value)


def check_number(value, name: str, low=None, high=None, *, low_open: bool = False) -> float:
    """Check that ``value`` is a real number in [low, high] (or (low, high]) and return it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number; got {value!r} ({type(value).__name__})")
    value = float(value)
    if value != value:
        raise ValueError(f"{name} must be a number; got NaN")
    if low_open and low is not None and value <= low:
        raise ValueError(f"{name} must be greater than {low}; got {value}")
    _check_bounds(value, name, low, high)
    return value


def check_bool(value, name: str) -> bool:
    """Check that ``value`` is True or False (a numpy bool too); ``"no"`` or an array is not a flag."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r} ({type(value).__name__})")
    return bool(value)


def check_choice(value, name: str, choices) -> str:
    """Check that ``value`` is one of ``choices``."""
    # An array compares element-wise, and `in` would then raise numpy's "truth value is ambiguous".
    if isinstance(value, (np.ndarray, torch.Tensor, list, dict, set)) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices, key=repr)}; got {value!r}")
    return value


def _check_bounds(value, name, low, high):
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must be in [{lo}, {hi}]; got {value}")


def check_single_image(model, image) -> torch.Tensor:
    """A single image as (1, C, H, W), with the channel count the model expects when it says so."""
    check_images(image, "image", ndim=(3, 4))
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(
                f"image must be a single image (C, H, W) or (1, C, H, W); got a batch of shape "
                f"{tuple(image.shape)} (loop over the images, or pick one with images[i])"
            )
    else:
        image = image[None]
    expected = getattr(model, "in_channels", None)
    if expected is None and isinstance(getattr(model, "physics", None), torch.nn.Identity):
        expected = getattr(getattr(model, "cnn", None), "in_channels", None)
    if expected is not None and image.shape[1] != expected:
        raise ValueError(
            f"image must have {expected} channel(s), as the model was built for; got {image.shape[1]} "
            f"in shape {tuple(image.shape)}"
        )
    return image.float()


# --- labels and scores (the classification metrics, and the plots and widgets over them) ----------


# The largest number of classes a metric builds tables for. A confusion matrix is K x K
# numbers, so K is bounded before anything is allocated: a stray label such as an image ID
# (10**9) would otherwise ask for 10**18 cells. 4096 classes make a 128 MB matrix.
MAX_CLASSES = 4096


def to_numpy(values, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
        # NumPy has no bfloat16 (a common dtype of mixed-precision models): widen it to float32.
        values = (values.float() if values.dtype == torch.bfloat16 else values).numpy()
    try:
        return np.asarray(values)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} must be an array, list or tensor of numbers; got {type(values).__name__}"
        ) from err


def to_real(values, name: str) -> np.ndarray:
    """``values`` as a float64 array; a TypeError naming ``name`` for text, objects or complex numbers."""
    values = to_numpy(values, name)
    if values.dtype != bool and (
        not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.complexfloating)
    ):
        raise TypeError(f"{name} must hold real numbers; got dtype {values.dtype}")
    return values.astype(np.float64)


def check_labels(y, name: str, num_classes: int | None = None) -> np.ndarray:
    """1-D integer class indices >= 0 and < num_classes (default: < MAX_CLASSES), as int64."""
    y = to_numpy(y, name)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, shape (N,); got shape {y.shape}")
    if y.size == 0:
        raise ValueError(f"{name} is empty; metrics need at least one sample")
    if y.dtype == bool:
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold integer class indices 0, 1, ...; got dtype {y.dtype}")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            bad = y[~np.isfinite(y) | (y != np.round(y))][0]
            raise ValueError(
                f"{name} must hold integer class indices 0, 1, ...; got the value {bad!r} "
                "(to threshold scores into labels use (scores >= threshold).astype(int))"
            )
    # Range checks on the values as given, before the cast: 1e300 or 2**64 - 1 would wrap in int64.
    if y.min() < 0:
        raise ValueError(f"{name} must hold class indices >= 0; got {y.min()}")
    if num_classes is not None and y.max() >= num_classes:
        raise ValueError(
            f"{name} must hold class indices in range({num_classes}) for {num_classes} classes; got {y.max()}"
        )
    if y.max() >= MAX_CLASSES:
        raise ValueError(
            f"{name} holds the class index {y.max()}; class indices must be below {MAX_CLASSES} "
            "(a larger value is usually an ID rather than a class index: relabel the classes 0, 1, ... "
            "with np.unique(labels, return_inverse=True))"
        )
    return y.astype(np.int64)


def check_same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str):
    if len(a) != len(b):
        raise ValueError(f"{name_a} and {name_b} must have the same length; got {len(a)} and {len(b)}")


def check_binary_scores(y_true, scores):
    """Binary labels in {0, 1} and finite real scores of the same length, as numpy arrays."""
    y_true = to_numpy(y_true, "y_true")
    if y_true.ndim == 1 and y_true.size and y_true.dtype != bool and np.issubdtype(y_true.dtype, np.number):
        bad = (y_true != 0) & (y_true != 1)
        if np.any(bad):
            raise ValueError(
                f"y_true must hold binary labels 0 (negative) and 1 (positive); got the value {y_true[bad][0]!r} "
                "(for several classes use roc_auc_ovr / average_precision_ovr, or y_true == k for class k)"
            )
    y_true = check_labels(y_true, "y_true", 2)
    scores = to_real(scores, "scores")
    if scores.ndim != 1:
        raise ValueError(
            f"scores must be a 1-D array, shape (N,), one score per sample; got shape {scores.shape}"
        )
    check_same_length(y_true, scores, "y_true", "scores")
    if not np.all(np.isfinite(scores)):
        bad = scores[~np.isfinite(scores)][0]
        raise ValueError(
            f"scores must be finite; got {bad} at index {int(np.flatnonzero(~np.isfinite(scores))[0])} "
            "(a NaN usually means the model diverged or the data held NaN)"
        )
    return y_true, scores


def check_probabilities(y_true, probabilities):
    probabilities = to_real(probabilities, "probabilities")
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
        raise ValueError(
            "probabilities must have shape (N, K), one column per class, K >= 2; "
            f"got shape {probabilities.shape}"
        )
    k = probabilities.shape[1]
    y_true = check_labels(y_true, "y_true", k)
    check_same_length(y_true, probabilities, "y_true", "probabilities")
    if not np.all(np.isfinite(probabilities)):
        raise ValueError("probabilities must be finite; got NaN or infinite values")
    missing = np.setdiff1d(np.arange(k), y_true)
    if missing.size:
        raise ValueError(
            f"one-vs-rest curves need every class in y_true; classes {missing.tolist()} have no sample "
            f"(probabilities has {k} columns)"
        )
    return y_true, probabilities


# --- boxes (box_jaccard, and the detections of interpret.detection) ----------------------------

# The most box pairs box_jaccard compares at once. The IoU table is N x M float64 numbers and its
# intermediate tables (corners, sizes, unions) take about 16 times that, so two lists of 10**6 boxes
# would ask for terabytes before anything is computed. 10**7 pairs (a few hundred MB at the peak) is
# far more than one image needs: thousands of detections against a few hundred true boxes, or one
# box against the ten million windows of a 4096 x 4096 image at stride 1 (NMS compares one to many).
MAX_BOX_PAIRS = 10**7


def check_boxes(boxes, name: str) -> torch.Tensor:
    """Boxes (N, 4) as (x0, y0, x1, y1), finite, x0 <= x1 and y0 <= y1, as a float64 CPU tensor.

    One box (4,) is a list of one; an empty list ``[]`` is a list of none (no boxes, no IoUs).
    """
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu()
    else:
        array = to_numpy(boxes, name)
        if array.dtype != bool and not np.issubdtype(array.dtype, np.number):
            raise TypeError(
                f"{name} must be boxes of real numbers, shape (N, 4); got {type(boxes).__name__} "
                f"of dtype {array.dtype}"
            )
        boxes = torch.as_tensor(array)
    if boxes.is_complex():
        raise TypeError(f"{name} must hold real numbers; got dtype {boxes.dtype}")
    boxes = boxes.to(torch.float64)
    if boxes.ndim == 1:
        boxes = boxes.reshape(0, 4) if boxes.numel() == 0 else boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) as (x0, y0, x1, y1); got shape {tuple(boxes.shape)}")
    if not torch.all(torch.isfinite(boxes)):
        raise ValueError(f"{name} must hold finite coordinates; got NaN or infinite values")
    if torch.any(boxes[:, 2] < boxes[:, 0]) or torch.any(boxes[:, 3] < boxes[:, 1]):
        raise ValueError(
            f"{name} must be (x0, y0, x1, y1) with x0 <= x1 and y0 <= y1; got a box with x1 < x0 or y1 < y0"
        )
    return boxes


def check_box_pairs(n: int, m: int, name_a: str, name_b: str) -> None:
    """Refuse an IoU table of more than MAX_BOX_PAIRS pairs before it is allocated."""
    if n * m > MAX_BOX_PAIRS:
        raise ValueError(
            f"{name_a} and {name_b} hold {n} and {m} boxes: {n * m} pairs, more than the {MAX_BOX_PAIRS} "
            "an IoU table may have (its memory grows as N x M); compare the boxes of one image at a "
            "time, or keep fewer detections (a higher threshold)"
        )
