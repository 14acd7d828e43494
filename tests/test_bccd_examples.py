"""The real-data project examples on BCCD run in smoke mode; a project's metric key is checked."""

import pytest

from deepimaging.project import BCCD_EXAMPLES, ProjectConfigError, load_project, new_project, run_project
from deepimaging.study import splits


@pytest.mark.slow
@pytest.mark.parametrize("example", BCCD_EXAMPLES)
def test_each_bccd_example_runs_in_smoke_mode_on_the_real_photos(tmp_path, example, bccd_root, monkeypatch):
    monkeypatch.setenv("DEEPIMAGING_BCCD", bccd_root)
    splits._load_split.cache_clear()
    path = new_project(tmp_path / example, example=example)
    config = path / "project.toml"
    config.write_text(config.read_text().replace("seeds = [0, 1, 2]", "seeds = [0]"))
    results = run_project(path, smoke=True, progress=False)
    assert results.complete and results.classes == ["RBC", "WBC", "Platelets"]
    assert results.metric == "balanced_accuracy"
    for point in results.points:
        counts = point["class_counts"]
        assert all(counts[part][c] > 0 for part in ("train", "val", "test") for c in results.classes)
        assert 0.0 <= point["balanced_accuracy"] <= 1.0


def test_a_project_metric_that_does_not_exist_names_the_line_and_the_allowed_values(tmp_path):
    path = new_project(tmp_path / "p")
    config = path / "project.toml"
    config.write_text(
        config.read_text().replace('parameter = "bits per pixel"', 'parameter = "bits"\nmetric = "f2"')
    )
    with pytest.raises(ProjectConfigError, match=r"metric must be one of .*'macro_f1'.*got 'f2'"):
        load_project(path)


def test_a_project_whose_first_run_fails_leaves_no_study_file_that_refuses_the_fixed_one(
    tmp_path, monkeypatch
):
    import torch

    from deepimaging.project import results_dir

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = new_project(tmp_path / "p")
    config = path / "project.toml"
    text = (
        config.read_text()
        .replace("seeds = [0, 1, 2]", "seeds = [0]")
        .replace("values = [1, 2, 3, 4, 8]", "values = [8]")
    )
    config.write_text(text.replace("batch_size = 64", 'batch_size = 64\ndevice = "cuda"'))
    with pytest.raises(ValueError, match="CUDA is not available"):
        run_project(path, smoke=True, progress=False)
    assert not (results_dir(path, smoke=True) / "study.json").exists()
    config.write_text(text.replace("batch_size = 64", 'batch_size = 64\ndevice = "cpu"'))
    assert run_project(path, smoke=True, progress=False).complete
