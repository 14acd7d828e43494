"""The tiny study configuration the study tests share: a point trains in a fraction of a second."""

from deepimaging.study import StudyConfig, Sweep


def tiny_config(*, seeds=(0, 1, 2), **overrides) -> StudyConfig:
    """Two bit depths of ``quantize`` on 16 x 16 simulated smears, 8 images per class, one epoch, a tiny CNN.

    Parameters
    ----------
    seeds : sequence of int
        The study's seeds; each test file picks as few as its properties need.
    **overrides
        Any other :class:`~deepimaging.study.StudyConfig` field (``sweeps``, ``n_per_class``, ``val``, ...).
    """
    settings = dict(
        sweeps=[Sweep("quantize", [1, 8])],
        seeds=list(seeds),
        size=16,
        n_per_class=8,
        epochs=1,
        batch_size=16,
        widths=[4, 8],
        test=0.5,
        parameter="bits",
    )
    settings.update(overrides)
    return StudyConfig(**settings)
