"""Every study point keeps its trained network: saved, verified, reopened, and drawn across the sweep."""

import functools
import hashlib
import json
import pickle

import matplotlib

matplotlib.use("Agg")

import _study
import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix
from sklearn.neighbors import NearestNeighbors

from deepimaging import plots
from deepimaging.interpret import extract_features, filter_weights, occlusion_map, saliency_map
from deepimaging.models import PhysicalModel
from deepimaging.study import (
    StudyResults,
    Sweep,
    WeightsFileError,
    load_data,
    load_results,
    run_point,
    run_study,
)
from deepimaging.train import predict

# A learned layer besides quantize, so that the saved physics has parameters.
tiny_config = functools.partial(
    _study.tiny_config,
    sweeps=[Sweep("quantize", [1, 8]), Sweep("learned_discretization", [2])],
    seeds=[0, 1],
    device="cpu",
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("weights") / "out"
    run_study(tiny_config(), out, progress=False)
    return out, load_results(out)


def _copy_study(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return load_results(dst)


# --- saving ---------------------------------------------------------------------------------------


def test_every_point_saves_its_weights_with_the_hash_and_size_of_the_file(finished):
    out, results = finished
    for record in results.points:
        entry = record["weights"]
        path = out / "points" / entry["file"]
        data = path.read_bytes()
        assert entry["bytes"] == len(data) == path.stat().st_size
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert not list((out / "points").glob(".*")), "no temporary file is left behind"


def test_the_file_holds_the_whole_physical_model_state_dict_including_learned_physics(finished):
    out, results = finished
    record = results.select("learned_discretization", 2)[0]
    state = torch.load(out / "points" / record["weights"]["file"], weights_only=True)
    model = results.load_model("learned_discretization", 2, record["seed"])
    assert set(state) == set(model.state_dict())
    assert any(name.startswith("physics.") for name in state), "the physical layer's parameters are saved"
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[name])


def test_save_weights_off_writes_no_file_and_leaves_the_hash_unchanged(tmp_path):
    config = tiny_config(sweeps=[Sweep("quantize", [8])], seeds=[0], save_weights=False)
    assert config.hash() == tiny_config(sweeps=[Sweep("quantize", [8])], seeds=[0]).hash()
    record = run_point(config, "quantize", 8, 0, out_dir=tmp_path)
    assert "weights" not in record
    assert not list((tmp_path / "points").glob("*.pt"))


def test_save_weights_must_be_a_bool():
    with pytest.raises(TypeError, match="save_weights must be True or False; got 'no'"):
        tiny_config(save_weights="no")


def test_points_csv_reports_the_size_of_each_weights_file(finished):
    out, results = finished
    rows = (out / "points.csv").read_text().splitlines()
    header = rows[0].split(",")
    sizes = [int(r.split(",")[header.index("weights_bytes")]) for r in rows[1:]]
    assert sizes == [p["weights"]["bytes"] for p in results.points]


# --- reloading ------------------------------------------------------------------------------------


def test_reloaded_models_reproduce_every_recorded_confusion_matrix(finished):
    _, results = finished
    _, test, _ = load_data(results.config)
    for record in results.points:
        model = results.load_model(record["sweep"], record["value"], record["seed"])
        assert isinstance(model, PhysicalModel) and not model.training
        predicted = predict(model, test, device="cpu").predicted.numpy()
        expected = confusion_matrix(test.labels.numpy(), predicted, labels=range(len(test.classes)))
        assert expected.tolist() == record["confusion_matrix"], (
            record["sweep"],
            record["value"],
            record["seed"],
        )


def test_a_reloaded_model_works_with_the_interpretation_tools(finished):
    _, results = finished
    _, test, _ = load_data(results.config)
    model = results.load_model("quantize", 8)
    assert occlusion_map(model, test.images_at(0), sliding_window_shapes=4).shape == (16, 16)
    assert saliency_map(model, test.images_at(0)).shape == (16, 16)
    assert filter_weights(model).shape[0] == 4
    assert extract_features(model, test, device="cpu").shape == (len(test), 8)


def test_load_model_leaves_the_callers_random_state_alone(finished):
    import random

    _, results = finished
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    results.load_model("quantize", 8, 1)
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_the_report_draws_the_networks_from_the_saved_points_without_training(
    finished, tmp_path, monkeypatch
):
    from deepimaging.report import make_figures
    from deepimaging.study import point as study_point

    def no_training(*args, **kwargs):
        raise AssertionError("the report must not train")

    monkeypatch.setattr(study_point, "_train_point", no_training)
    names = [f.name for f in make_figures(load_results(finished[0]), tmp_path, formats=("png",))]
    assert {"attribution_across", "filters_across", "neighbor_agreement"} <= set(names)


def test_the_report_without_saved_networks_says_so_and_leaves_their_figures_out(tmp_path):
    from deepimaging.report import make_figures

    results = run_study(tiny_config(seeds=[0], save_weights=False), tmp_path / "s", progress=False)
    with pytest.warns(UserWarning, match="no saved network"):
        names = [f.name for f in make_figures(results, tmp_path / "r", formats=("png",))]
    assert "accuracy_vs_parameter" in names and "attribution_across" not in names


def test_load_model_of_an_unknown_point_names_the_points(finished):
    _, results = finished
    with pytest.raises(ValueError, match="no finished point sweep='quantize', value=3, seed=0"):
        results.load_model("quantize", 3, 0)


def test_load_model_without_a_folder_says_how_to_open_the_results(finished):
    _, results = finished
    with pytest.raises(ValueError, match="load_results"):
        StudyResults(results.config, results.points).load_model("quantize", 1)


def test_a_point_without_saved_weights_says_how_to_rerun_that_point_only(tmp_path):
    config = tiny_config(sweeps=[Sweep("quantize", [1, 8])], seeds=[0], save_weights=False)
    results = run_study(config, tmp_path, progress=False)
    with pytest.raises(FileNotFoundError, match=r"--point 1\b") as err:
        results.load_model("quantize", 8, 0)
    assert "save_weights off" in str(err.value)
    # The advice works: rerunning that point with saving on makes it loadable.
    run_point(tiny_config(sweeps=[Sweep("quantize", [1, 8])], seeds=[0]), "quantize", 8, 0, out_dir=tmp_path)
    assert load_results(tmp_path).load_model("quantize", 8, 0) is not None


def test_the_command_in_the_no_weights_error_reruns_that_point_with_saving_on(tmp_path, capsys):
    import shlex

    from deepimaging.cli import main

    out = tmp_path / "s"
    flags = "--layer quantize --values 1,8 --seeds 0 --size 16 --n-per-class 8 --epochs 1 --device cpu"
    assert main(["study", *shlex.split(flags), "--out", str(out), "--no-save-weights", "--no-progress"]) == 0
    assert not list((out / "points").glob("*.pt"))
    with pytest.raises(FileNotFoundError) as err:
        load_results(out).load_model("quantize", 8, 0)
    command = str(err.value).split("`")[1]
    assert command.startswith("deepimaging study ")
    assert main(shlex.split(command)[1:]) == 0  # exactly what the message says to run
    assert [p.name for p in (out / "points").glob("*.pt")] == ["quantize__v8__s0.pt"], "that point only"
    model = load_results(out).load_model("quantize", 8, 0)
    assert not model.training


def test_a_project_can_turn_saving_off(tmp_path):
    from deepimaging import project

    path = project.new_project(tmp_path / "p")
    toml = path / "project.toml"
    toml.write_text(toml.read_text().replace("[training]\n", "[training]\nsave_weights = false\n"))
    assert project.load_project(path).study.save_weights is False
    toml.write_text(toml.read_text().replace("save_weights = false", "save_weights = 1"))
    with pytest.raises(project.ProjectConfigError, match="save_weights must be a bool; got 1"):
        project.load_project(path)


def test_a_missing_weights_file_is_a_clear_error(finished, tmp_path):
    results = _copy_study(finished[0], tmp_path / "copy")
    (tmp_path / "copy" / "points" / results.points[0]["weights"]["file"]).unlink()
    with pytest.raises(FileNotFoundError, match="is missing.*--point 0"):
        results.load_model(results.points[0]["sweep"], results.points[0]["value"], results.points[0]["seed"])


def _weights_path(results, record):
    return results.folder / "points" / record["weights"]["file"]


def test_an_altered_weights_file_is_refused(finished, tmp_path):
    results = _copy_study(finished[0], tmp_path / "copy")
    record = results.points[0]
    path = _weights_path(results, record)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte flipped: same size, different content
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsFileError, match="SHA-256.*altered"):
        results.load_model(record["sweep"], record["value"], record["seed"])


def test_a_truncated_weights_file_is_refused(finished, tmp_path):
    results = _copy_study(finished[0], tmp_path / "copy")
    record = results.points[0]
    path = _weights_path(results, record)
    path.write_bytes(path.read_bytes()[: record["weights"]["bytes"] // 2])
    with pytest.raises(WeightsFileError, match="truncated"):
        results.load_model(record["sweep"], record["value"], record["seed"])


class _Payload:
    """Unpickling this object calls open(marker, "w"): it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant_payload(results, record, marker, *, fix_record):
    """Replace a point's weights by a pickled payload; optionally make the record's hash and size match it."""
    path = _weights_path(results, record)
    torch.save({"cnn.classifier.bias": _Payload(marker)}, path)
    if fix_record:
        data = path.read_bytes()
        record["weights"].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
        point_file = path.with_suffix(".json")
        on_disk = json.loads(point_file.read_text())
        on_disk["weights"] = record["weights"]
        point_file.write_text(json.dumps(on_disk))
    return path


def test_the_payload_of_the_pickle_tests_is_live(tmp_path):
    """The oracle: plain unpickling of the planted file does create the marker."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(marker))).close()  # what it unpickles to is the open marker file
    assert marker.exists()


@pytest.mark.parametrize("fix_record", [False, True], ids=["hash-mismatch", "hash-matches"])
def test_a_weights_file_holding_a_pickled_object_is_refused_without_running_it(
    finished, tmp_path, fix_record
):
    results = _copy_study(finished[0], tmp_path / "copy")
    record = results.points[0]
    marker = tmp_path / "code-ran"
    _plant_payload(results, record, marker, fix_record=fix_record)
    if fix_record:  # even with a record that vouches for the file, weights_only refuses the object
        results = load_results(tmp_path / "copy")
    with pytest.raises(
        WeightsFileError, match="refused" if not fix_record else "does not hold plain tensors"
    ):
        results.load_model(record["sweep"], record["value"], record["seed"])
    assert not marker.exists()


# --- across the sweep -----------------------------------------------------------------------------


def test_pick_test_images_takes_one_per_class_first():
    labels = [2, 0, 0, 1, 2, 1]
    assert plots.pick_test_images(labels, 3) == [1, 3, 0]
    assert sorted(np.asarray(labels)[plots.pick_test_images(labels, 6)]) == sorted(labels)


def test_attribution_across_has_one_column_per_value_and_the_maps_of_the_reloaded_models(finished):
    _, results = finished
    fig = plots.plot_attribution_across(results, method="occlusion", images=3, seed=1)
    values = results.config.sweeps[0].values
    axes = np.array(fig.axes[: 2 * 3 * len(values)]).reshape(2 * 3, len(values))  # colour bars come after
    assert axes.shape[1] == len(values) == 2
    _, test, _ = load_data(results.config)
    chosen = plots.pick_test_images(test.labels.numpy(), 3)
    assert sorted(test.labels[chosen].tolist()) == [0, 1, 2], "one image per class"
    for j, value in enumerate(values):
        model = results.load_model("quantize", value, 1)
        for i, index in enumerate(chosen):
            expected = occlusion_map(
                model,
                test.images_at(index),
                target=int(test.labels[index]),
                sliding_window_shapes=2,
                strides=1,
            )
            drawn = axes[2 * i + 1, j].images[0].get_array()
            np.testing.assert_allclose(np.asarray(drawn), expected.numpy(), rtol=0, atol=1e-6)
            sensor = model.physics(test.images_at(index)[None])[0]
            np.testing.assert_allclose(
                axes[2 * i, j].images[0].get_array(), sensor.detach().numpy().transpose(1, 2, 0), atol=1e-6
            )


def test_attribution_across_averages_saliency_over_seeds(finished):
    _, results = finished
    fig = plots.plot_attribution_across(results, method="saliency", images=1, seed="mean", sweep="quantize")
    _, test, _ = load_data(results.config)
    (index,) = plots.pick_test_images(test.labels.numpy(), 1)
    image, label = test.images_at(index), int(test.labels[index])
    expected = np.mean(
        [saliency_map(results.load_model("quantize", 1, s), image, target=label).numpy() for s in (0, 1)],
        axis=0,
    )
    np.testing.assert_allclose(fig.maps[0, 0], expected, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "gradcam"}, r"method must be one of \['occlusion', 'saliency'\]; got 'gradcam'"),
        ({"images": 10_000}, "images=10000 is more than the .* images of the test set"),
        ({"images": 0}, "images must be a positive integer; got 0"),
        ({"seed": 7}, r"seed must be one of the study's seeds \[0, 1\] or 'mean'; got 7"),
    ],
)
def test_attribution_across_bad_input(finished, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plots.plot_attribution_across(finished[1], **kwargs)


def test_filters_across_shows_one_panel_per_value(finished):
    _, results = finished
    fig = plots.plot_filters_across(results, sweep="quantize")
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title().split("\n")[0] for ax in panels] == ["bits = 1", "bits = 8"]


def test_neighbor_agreement_matches_scikit_learn():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 5))
    labels = rng.integers(0, 3, 40)
    features[:, 0] += 3 * labels  # classes partly separated
    _, idx = NearestNeighbors(n_neighbors=5).fit(features).kneighbors(features, n_neighbors=6)
    expected = np.mean(labels[idx[:, 1:]] == labels[:, None])
    assert plots.neighbor_agreement(torch.as_tensor(features), labels, k=5) == pytest.approx(expected)


def test_neighbor_agreement_across_gives_one_row_per_value_with_each_seeds_number(finished):
    _, results = finished
    rows = plots.neighbor_agreement_across(results, k=3, sweep="quantize")
    assert [r["value"] for r in rows] == [1, 8]
    _, test, _ = load_data(results.config)
    features = extract_features(results.load_model("quantize", 8, 1), test, device="cpu").numpy()
    _, idx = NearestNeighbors(n_neighbors=4).fit(features).kneighbors(features)
    others = np.array([[j for j in row if j != i][:3] for i, row in enumerate(idx)])  # itself left out
    labels = test.labels.numpy()
    assert rows[1]["per_seed"][1] == pytest.approx(np.mean(labels[others] == labels[:, None]))
    ax = plots.plot_neighbor_agreement(results, k=3, sweep="quantize")
    assert len(ax.lines[0].get_xdata()) == 2
