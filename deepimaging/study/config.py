"""What decides a study's numbers: :class:`Sweep`, :class:`StudyConfig` and the bit-depth study's defaults."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import numbers
from dataclasses import dataclass, field

from .._checks import check_choice, check_int, check_number
from ..train import MAX_SEED

#: Metrics every point records; ``StudyConfig.metric`` picks the one plots and tables show.
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc")
#: Readable names of the metrics, for axis labels, tables and captions.
METRIC_NAMES = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "macro_f1": "macro-F1",
    "macro_auc": "macro ROC AUC",
}
#: Test classes count as imbalanced when the largest holds more than this many times the smallest.
IMBALANCE_RATIO = 1.5
#: The largest image side a study may ask for: 1024 x 1024 x 3 float32 is 12 MB per image, and a
#: study holds thousands of images (projects use the same limit, deepimaging.project.config).
MAX_SIZE = 1024
#: The most channels of one CNN block. The course's networks use 16 to 128; a 1024 -> 1024 block
#: is already 38 MB of 3 x 3 weights, and 10**6 (a typo) would ask for terabytes.
MAX_WIDTH = 1024
#: The most CNN blocks: each halves the image, so more than log2(MAX_SIZE) never fit an image.
MAX_BLOCKS = int(math.log2(MAX_SIZE))

# ---------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Sweep:
    """One physical layer and the values of its parameter to try.

    Parameters
    ----------
    layer : str
        A name in ``deepimaging.physics.LAYERS`` (e.g. ``"quantize"``, ``"binning"``).
    values : list of int or float
        The parameter values; each becomes ``make_layer(layer, value, image_shape, **options)``.
    options : dict
        Further keyword arguments of the layer (fixed for the whole sweep).
    label : str, optional
        Name of the sweep in tables and legends; defaults to ``layer``. Labels must
        be unique within a study (e.g. the same layer with two option sets).
    """

    layer: str
    values: list
    options: dict = field(default_factory=dict)
    label: str | None = None

    def __post_init__(self):
        if not isinstance(self.layer, str) or not self.layer:
            raise TypeError(f"layer must be a non-empty string naming a physical layer; got {self.layer!r}")
        if isinstance(self.values, (str, bytes)) or not hasattr(self.values, "__iter__"):
            raise TypeError(f"values must be a list of numbers; got {self.values!r}")
        values = list(self.values)
        if not values:
            raise ValueError(f"values of sweep {self.layer!r} must hold at least one value; got []")
        for v in values:
            # An infinite value is no setting of any layer (inf bits, inf photons): refused here, where
            # the sweep is written, rather than when its point trains.
            if not math.isfinite(check_number(v, f"values of sweep {self.layer!r}")):
                raise ValueError(f"values of sweep {self.layer!r} must be finite numbers; got {values}")
        # Integers stay ints (also NumPy ones) so that file names and tables read "4", not "4.0".
        self.values = [int(v) if isinstance(v, numbers.Integral) else float(v) for v in values]
        if len(set(map(float, self.values))) != len(self.values):
            raise ValueError(f"values of sweep {self.layer!r} must not repeat; got {self.values}")
        if not isinstance(self.options, dict):
            raise TypeError(f"options must be a dict of layer keyword arguments; got {self.options!r}")
        self.options = dict(self.options)
        if self.label is None:
            self.label = self.layer
        if not isinstance(self.label, str) or not self.label:
            raise TypeError(f"label must be a non-empty string; got {self.label!r}")

    @property
    def name(self) -> str:
        """The sweep's key in results and file names (its label)."""
        return self.label


@dataclass
class StudyConfig:
    """Everything that decides a study's numbers; its hash names the output folder's contents.

    Parameters
    ----------
    sweeps : list of Sweep (or dicts with the same keys)
        The layers and values to sweep. Several sweeps share the x axis of the
        accuracy plot (e.g. fixed vs learned discretization, both in bits).
    seeds : list of int
        One training per seed and value (model initialisation and batch order);
        the spread over seeds gives the error bars. Use at least 3.
    dataset : str
        ``"blood_smear"`` (built in, simulated) or the name of a loader in
        :mod:`deepimaging.data` (called with ``dataset_options``).
    dataset_options : dict
        Keyword arguments of the loader.
        A loader with a ``split`` option (e.g. ``bccd_crops``) gets
        ``split="all"`` unless the options name one: the study splits the
        whole set itself.
    size : int
        Image height and width in pixels, 8 to :data:`MAX_SIZE` (passed to loaders that take ``size``).
    n_per_class : int or None
        Images per class: simulated ones for ``blood_smear``, otherwise a seeded
        subsample (None keeps all).
    data_seed : int
        Seed of the simulation, the subsample and the train/test split. It is
        fixed across points so that points differ only by the layer and ``seeds``.
    val, test : float
        Fractions of the data for validation and test, stratified by class.
        Validation (15% by default) gives the learning curves and early
        stopping; the test set is used once, at the end of each point. Every
        class must keep at least one image in each non-empty part.
    epochs, lr, batch_size, weight_decay : training settings of :func:`deepimaging.train.fit`.
    patience : int or None
        Early stopping on the validation loss (see :func:`deepimaging.train.fit`);
        None (default) trains every epoch.
    widths : list of int
        Channels of the :class:`~deepimaging.models.BasicCNN` blocks: 1 to :data:`MAX_BLOCKS`
        blocks of at most :data:`MAX_WIDTH` channels.
    device : str
        ``"auto"`` (default: CUDA, then MPS, then the CPU), ``"cpu"``, ``"cuda"``
        or ``"mps"``. Each point records the device it trained on; the same seed
        on the same device gives the same numbers, another device may differ in
        the last digits.
    parameter : str
        Axis label of the swept parameter, e.g. ``"sensor bits"``.
    metric : str
        The metric of plots, tables and captions: ``"auto"`` (default: balanced
        accuracy when the test classes are imbalanced, largest/smallest > 1.5,
        else accuracy), ``"accuracy"``, ``"balanced_accuracy"``, ``"macro_f1"``
        or ``"macro_auc"``. Every point records all of them either way.
    save_weights : bool
        Keep each point's trained network (``points/<point>.pt``, about 100 KB for
        the basic CNN) so that it can be reopened with
        :meth:`~deepimaging.study.StudyResults.load_model` (default True).
        It does not change the numbers, so it is not part of the hash.
    """

    sweeps: list
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    dataset: str = "blood_smear"
    dataset_options: dict = field(default_factory=dict)
    size: int = 32
    n_per_class: int | None = 300
    data_seed: int = 0
    val: float = 0.15
    test: float = 0.3
    epochs: int = 8
    lr: float = 3e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    patience: int | None = None
    widths: list = field(default_factory=lambda: [16, 32, 64])
    device: str = "auto"
    parameter: str = "value"
    metric: str = "auto"
    save_weights: bool = True

    def __post_init__(self):
        if isinstance(self.sweeps, (Sweep, dict)):
            self.sweeps = [self.sweeps]
        if not self.sweeps:
            raise ValueError("sweeps must hold at least one Sweep(layer, values)")
        self.sweeps = [s if isinstance(s, Sweep) else Sweep(**s) for s in self.sweeps]
        names = [s.name for s in self.sweeps]
        if len(set(names)) != len(names):
            raise ValueError(f"sweep labels must be unique; got {names} (set label= to tell them apart)")
        if isinstance(self.seeds, int):
            self.seeds = [self.seeds]
        if isinstance(self.seeds, (str, bytes, dict)) or not hasattr(self.seeds, "__iter__"):
            raise TypeError(f"seeds must be a list of integers; got {self.seeds!r}")
        self.seeds = [check_int(s, "seeds", 0, MAX_SEED) for s in self.seeds]
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers; got {self.seeds}")
        if not isinstance(self.dataset, str):
            raise TypeError(f"dataset must be a string; got {self.dataset!r}")
        if not isinstance(self.dataset_options, dict):
            raise TypeError(
                f"dataset_options must be a dict of loader keyword arguments; got {self.dataset_options!r}"
            )
        self.dataset_options = dict(self.dataset_options)
        check_int(self.size, "size", 8)
        if self.size > MAX_SIZE:
            raise ValueError(
                f"size must be at most {MAX_SIZE} pixels (images are size x size x 3 floats each, and a "
                f"study holds thousands of them); got {self.size}"
            )
        if self.n_per_class is not None:
            check_int(self.n_per_class, "n_per_class", 1)
        check_int(self.data_seed, "data_seed", 0, MAX_SEED)
        for key in ("val", "test"):
            fraction = check_number(getattr(self, key), key)
            if not 0.0 <= fraction < 1.0 or (key == "test" and fraction == 0.0):
                allowed = "(0, 1)" if key == "test" else "[0, 1)"
                raise ValueError(f"{key} must be a fraction of the data in {allowed}; got {fraction}")
        if self.val + self.test >= 1.0:
            raise ValueError(
                f"val + test must be below 1 so that training keeps images; got {self.val + self.test}"
            )
        check_int(self.epochs, "epochs", 1)
        # inf passes a range check; an infinite step or decay turns every weight into NaN.
        for key, low_open in (("lr", True), ("weight_decay", False)):
            value = check_number(getattr(self, key), key, 0.0, low_open=low_open)
            if not math.isfinite(value):
                raise ValueError(f"{key} must be a finite number; got {value}")
        check_int(self.batch_size, "batch_size", 1)
        if self.patience is not None:
            check_int(self.patience, "patience", 1)
            if self.val == 0:
                raise ValueError("patience (early stopping) needs a validation split: set val > 0")
        if isinstance(self.widths, (str, bytes, dict)) or not hasattr(self.widths, "__iter__"):
            raise TypeError(
                f"widths must be a list of channel counts, one per CNN block; got {self.widths!r}"
            )
        self.widths = [check_int(w, "widths", 1, MAX_WIDTH) for w in self.widths]
        if not 1 <= len(self.widths) <= MAX_BLOCKS:
            raise ValueError(
                f"widths must name 1 to {MAX_BLOCKS} CNN blocks (each halves the image, and images are at "
                f"most {MAX_SIZE} pixels); got {len(self.widths)}: {self.widths}"
            )
        if self.device not in ("cpu", "auto", "cuda", "mps") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be 'cpu', 'auto', 'cuda' or 'mps'; got {self.device!r}")
        if not isinstance(self.parameter, str):
            raise TypeError(f"parameter must be a string (axis label); got {self.parameter!r}")
        check_choice(self.metric, "metric", ("auto", *METRICS))
        if not isinstance(self.save_weights, bool):
            raise TypeError(f"save_weights must be True or False; got {self.save_weights!r}")

    # -- identity --------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """A JSON-ready dict; ``StudyConfig.from_dict(config.to_dict()) == config``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> StudyConfig:
        """Build a configuration from a dict (as read from ``study.json`` or a TOML file).

        Unknown keys are an error that names them and the allowed keys.
        """
        if not isinstance(data, dict):
            raise TypeError(f"a study configuration must be a dict; got {type(data).__name__}")
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"unknown study configuration key(s) {unknown}; allowed keys: {sorted(allowed)}")
        return cls(**copy.deepcopy(data))

    def hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the canonical JSON of the configuration.

        Two configurations with the same hash give the same numbers (same machine);
        the ``parameter`` axis label, the shown ``metric`` and ``save_weights`` are
        left out because they do not change them.
        """
        data = self.to_dict()
        data.pop("parameter")
        data.pop("metric")
        data.pop("save_weights")
        for sweep in data["sweeps"]:
            sweep["values"] = [float(v) for v in sweep["values"]]
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def points(self) -> list[tuple[str, int | float, int]]:
        """All (sweep name, value, seed) triples in a fixed order (sweep, then value, then seed)."""
        return [(s.name, v, seed) for s in self.sweeps for v in s.values for seed in self.seeds]

    def sweep(self, name: str) -> Sweep:
        """The sweep called ``name``."""
        for s in self.sweeps:
            if s.name == name:
                return s
        raise ValueError(f"no sweep called {name!r}; sweeps: {[s.name for s in self.sweeps]}")


def bit_depth_config(smoke: bool | None = None, **overrides) -> StudyConfig:
    """The worked class project's study: sensor bits 1..8 at default settings.

    Three sweeps share the x axis "bits per pixel":

    - ``quantize``: a fixed uniform quantizer with 1..8 bits;
    - ``learned_discretization``: the same bit depths, with a learnable per-pixel
      gain and threshold in front of the quantizer;
    - ``bit_allocation``: a learned per-pixel bit depth under a budget of mean
      bits per pixel (its bits map shows where the network wants bits).

    Parameters
    ----------
    smoke : bool, optional
        A tiny version (few images, 1 epoch) for CI and notebooks; defaults to
        :func:`deepimaging.train.smoke_mode`.
    **overrides
        Any :class:`StudyConfig` field.
    """
    from ..train import smoke_mode

    if smoke is None:
        smoke = smoke_mode()
    if smoke:
        settings = dict(
            sweeps=[
                Sweep("quantize", [1, 8]),
                Sweep("learned_discretization", [1]),
                Sweep("bit_allocation", [2]),
            ],
            seeds=[0, 1, 2],
            n_per_class=24,
            epochs=1,
            parameter="bits per pixel",
        )
    else:
        settings = dict(
            sweeps=[
                Sweep("quantize", list(range(1, 9))),
                Sweep("learned_discretization", [1, 2, 3]),
                Sweep("bit_allocation", [2]),
            ],
            seeds=[0, 1, 2],
            parameter="bits per pixel",
        )
    settings.update(overrides)
    return StudyConfig(**settings)
