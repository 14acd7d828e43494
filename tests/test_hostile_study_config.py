"""Hostile input to a study's configuration: bounds that hold at every entry point (issue 21).

``StudyConfig`` itself bounds what would exhaust memory (the image size, the network's
widths and depth) and refuses what would turn training into NaN (infinite values, learning
rates, weight decays), so that Python, a JSON ``--config``, the ``study`` command's flags and a
project's ``project.toml`` all get the same clear error before anything is written.
"""

from __future__ import annotations

import json

import pytest

from deepimaging import cli
from deepimaging.study import StudyConfig, Sweep
from deepimaging.study.config import MAX_BLOCKS, MAX_SIZE, MAX_WIDTH
from deepimaging.train import MAX_SEED


def _config(**overrides):
    return StudyConfig(sweeps=[Sweep("quantize", [1, 2])], **overrides)


def test_the_size_limit_is_the_same_for_a_study_and_a_project():
    # One constant, one home: the project refuses size = 10**9 through StudyConfig.
    assert MAX_SIZE == 1024
    assert _config(size=MAX_SIZE).size == MAX_SIZE
    with pytest.raises(ValueError, match=f"size must be at most {MAX_SIZE} pixels.*got {MAX_SIZE + 1}"):
        _config(size=MAX_SIZE + 1)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("size", 10**9, "size must be at most 1024 pixels"),
        ("widths", [16, 10**6], "widths must be in [1, 1024]; got 1000000"),
    ],
)
def test_a_json_config_file_with_a_bad_setting_is_refused_by_the_study_command(
    tmp_path, capsys, key, value, message
):
    # --config FILE skips the flags: the bound must live in StudyConfig for this path to get it.
    data = _config().to_dict()
    data[key] = value
    config = tmp_path / "study.json"
    config.write_text(json.dumps(data))
    out = tmp_path / "study"
    assert cli.main(["study", "--config", str(config), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--size", "1000000000"], "size must be at most 1024 pixels"),
        (["--lr", "inf"], "lr must be a finite number; got inf"),
        (["--seeds", str(2**70)], "seeds must be in [0, 9223372036854775807]"),
    ],
)
def test_the_study_command_refuses_bad_settings_in_one_line_and_writes_nothing(
    tmp_path, capsys, flags, message
):
    out = tmp_path / "study"
    argv = ["study", "--layer", "quantize", "--values", "1,2", "--out", str(out), "--no-progress", *flags]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "widths, error, message",
    [
        ([16, 10**6], ValueError, f"widths must be in [1, {MAX_WIDTH}]; got 1000000"),
        ([4] * (MAX_BLOCKS + 1), ValueError, f"widths must name 1 to {MAX_BLOCKS} CNN blocks"),
        ([], ValueError, f"widths must name 1 to {MAX_BLOCKS} CNN blocks.*got 0"),
        (16, TypeError, "widths must be a list of channel counts.*got 16"),
        ("16,32", TypeError, "widths must be a list of channel counts"),
    ],
)
def test_widths_that_exhaust_memory_or_never_fit_an_image_are_refused(widths, error, message):
    with pytest.raises(error, match=message.replace("[", r"\[").replace("]", r"\]")):
        _config(widths=widths)


def test_the_deepest_and_widest_allowed_network_is_accepted():
    # 2**MAX_BLOCKS = MAX_SIZE: the deepest network still fits the largest image.
    assert 2**MAX_BLOCKS == MAX_SIZE
    assert _config(widths=[MAX_WIDTH] + [1] * (MAX_BLOCKS - 1)).widths[0] == MAX_WIDTH


@pytest.mark.parametrize("key", ["lr", "weight_decay"])
@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_non_finite_training_settings_are_refused(key, value):
    with pytest.raises(ValueError, match=f"{key} must be"):
        _config(**{key: value})


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_a_sweep_refuses_non_finite_values(value):
    with pytest.raises(ValueError, match="values of sweep 'quantize' must be"):
        Sweep("quantize", [1, value])


@pytest.mark.parametrize("key", ["seeds", "data_seed"])
def test_seeds_beyond_what_the_generators_take_are_refused(key):
    too_big = [MAX_SEED + 1] if key == "seeds" else MAX_SEED + 1
    with pytest.raises(ValueError, match=f"{key} must be in \\[0, {MAX_SEED}\\]"):
        _config(**{key: too_big})
    fine = [MAX_SEED] if key == "seeds" else MAX_SEED
    assert getattr(_config(**{key: fine}), key) == fine


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"dataset_options": "size=32"}, "dataset_options must be a dict"),
        ({"dataset_options": [("size", 32)]}, "dataset_options must be a dict"),
        ({"seeds": "012"}, "seeds must be a list of integers; got '012'"),
        ({"seeds": None}, "seeds must be a list of integers; got None"),
    ],
)
def test_containers_of_the_wrong_type_are_named(overrides, message):
    with pytest.raises(TypeError, match=message):
        _config(**overrides)
