"""Every explorer of the course notebooks, driven in JupyterLab 4 by headless Chromium.

Each case opens the notebook (smoke mode), runs all its cells, checks that the
explorer renders as a live widget (not "Error displaying widget", not only its
static fallback), moves one control as a student would (keyboard, mouse, a
dropdown or a toggle button), and checks that the image changes and, where the
explorer shows numbers, that they are the right numbers: recomputed here, or in
the kernel with scikit-learn / a plain forward pass, from the explorer's inputs.
Screenshots before and after each move go to test-artifacts/browser/.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from _harness import (
    ExplorerCase,
    bind_explorer,
    check_explorer,
    click_toggle,
    drag_slider,
    press_slider,
    readout_text,
    select_option,
    slider_value,
)

NOTEBOOKS = Path(
    os.environ.get("DEEPIMAGING_BROWSER_NOTEBOOKS", Path(__file__).resolve().parents[2] / "notebooks")
)


def _kernel_json(run, root, code: str):
    """Bind ``_explorer`` to the explorer shown by ``root`` and return what ``code`` prints as JSON."""
    bind_explorer(run, root)
    return json.loads(run.kernel_exec("import json\n" + code).strip().splitlines()[-1])


def _numbers(pattern: str, text: str):
    match = re.search(pattern, text)
    return (
        None if match is None else [float(g) if re.fullmatch(r"[-+.\deE]+", g) else g for g in match.groups()]
    )


def _close(a, b, digits=3):
    """Equal to the precision the readout prints (``digits`` significant or decimal places)."""
    return math.isclose(a, b, rel_tol=10 ** (1 - digits), abs_tol=10**-digits)


# --- oracles --------------------------------------------------------------------------------


def physics_readout_is_right(run, root, before, after):
    """Levels = 2**bits for the bits the page shows; PSNR recomputed with scikit-image."""
    from skimage.metrics import peak_signal_noise_ratio

    data = _kernel_json(
        run,
        root,
        "print(json.dumps({'bits': int(_explorer.bits.value), 'scene': _explorer.scene.tolist(),"
        " 'sensor': _explorer.simulate().tolist()}))",
    )
    bits = int(slider_value(root, "bits"))
    scene, sensor = np.asarray(data["scene"], dtype=np.float64), np.asarray(data["sensor"], dtype=np.float64)
    text = readout_text(root, "PSNR")
    problems = []
    if data["bits"] != bits:
        problems.append(f"the page shows {bits} bits, the kernel holds {data['bits']}")
    if len(np.unique(sensor)) > 2**bits:
        problems.append(f"the sensor image has {len(np.unique(sensor))} levels, more than 2**{bits}")
    if f"levels: {2**bits};" not in text:
        problems.append(f"the readout should say 'levels: {2**bits}' for {bits} bits; it says {text!r}")
    psnr = peak_signal_noise_ratio(scene, sensor, data_range=1.0)
    shown = _numbers(r"PSNR against the scene: ([-\d.]+) dB", text)
    if shown is None or abs(shown[0] - psnr) > 0.051:
        problems.append(f"PSNR should be {psnr:.1f} dB (scikit-image); the readout says {text!r}")
    return problems


def threshold_readout_is_right(run, root, before, after):
    """Counts and rates recomputed here with scikit-learn from the explorer's labels and scores."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

    data = _kernel_json(
        run,
        root,
        "print(json.dumps({'t': float(_explorer.slider.value), 'y': _explorer.y_true.tolist(),"
        " 's': _explorer.scores.tolist()}))",
    )
    t, y, scores = data["t"], np.asarray(data["y"]), np.asarray(data["s"], dtype=float)
    if not _close(slider_value(root, "threshold"), t):
        return [f"the page's slider shows {slider_value(root, 'threshold')}, the kernel holds {t}"]
    predicted = (scores >= t).astype(int)  # the explorer's stated convention: score >= threshold
    tn, fp, fn, tp = confusion_matrix(y, predicted, labels=[0, 1]).ravel()
    expected = {
        "TP": tp,
        "FP": fp,
        "FN": fn,
        "TN": tn,
        "sensitivity": recall_score(y, predicted, zero_division=0),
        "specificity": tn / (tn + fp) if tn + fp else 0.0,
        "precision": precision_score(y, predicted, zero_division=0),
        "F1": f1_score(y, predicted, zero_division=0),
        "accuracy": accuracy_score(y, predicted),
    }
    text = readout_text(root, "sensitivity")
    problems = []
    for key, value in expected.items():
        shown = _numbers(rf"\b{key} ([-\d.]+)", text)
        if shown is None or not _close(shown[0], float(value)):
            problems.append(
                f"{key} should be {float(value):.3f} at threshold {t:.4f}; the readout says {text!r}"
            )
    return problems


def occlusion_readout_is_right(run, root, before, after):
    """The predicted class and its probability recomputed by a plain forward pass in the kernel."""
    data = _kernel_json(
        run,
        root,
        "import torch\n"
        "_i = _explorer.image_slider.value\n"
        "_m = _explorer.model\n"
        "_was = _m.training\n"
        "_m.eval()\n"
        "with torch.no_grad():\n"
        "    _p = torch.softmax(_m(_explorer.images[_i:_i + 1].to(next(_m.parameters()).device)), 1)[0].cpu()\n"
        "_m.train(_was)\n"
        "print(json.dumps({'i': _i, 'name': _explorer.classes[int(_p.argmax())], 'p': float(_p.max())}))",
    )
    text = readout_text(root, "predicted")
    shown = _numbers(r"predicted (.+?) \(p = ([\d.]+)\)", text)
    if int(slider_value(root, "image")) != data["i"]:
        return [f"the page shows image {slider_value(root, 'image')}, the kernel holds {data['i']}"]
    if shown is None or shown[0] != data["name"] or not _close(shown[1], data["p"]):
        return [
            f"image {data['i']}: expected predicted {data['name']} (p = {data['p']:.3f}); readout {text!r}"
        ]
    return []


_SKLEARN_NEIGHBOURS = """
from sklearn.neighbors import NearestNeighbors
def _sk_neighbours(points, query_points, q, k, metric, own, labels_db, label):
    nn = NearestNeighbors(n_neighbors=k + int(own), algorithm="brute",
                          metric={"l2": "euclidean", "cosine": "cosine"}[metric]).fit(points)
    d, idx = nn.kneighbors(query_points[q:q + 1])
    pairs = [(float(a), int(b)) for a, b in zip(d[0], idx[0]) if not (own and int(b) == q)][:k]
    same = sum(int(labels_db[b]) == label for _, b in pairs)
    return {"q": q, "k": k, "same": same, "distances": [a for a, _ in pairs]}
"""


def neighbors_pixel_readout_is_right(run, root, before, after):
    """Pixel-space neighbours of the shown query recomputed with scikit-learn (brute force)."""
    data = _kernel_json(
        run,
        root,
        _SKLEARN_NEIGHBOURS + "_e = _explorer\n"
        "_q = _e.query.value\n"
        "_own = _e.queries is _e.database\n"
        "print(json.dumps(dict(_sk_neighbours(_e.database.images.flatten(1).numpy(),"
        " _e.queries.images.flatten(1).numpy(), _q, _e.neighbors['pixel'].indices.shape[1], _e.metric, _own,"
        " _e.database.labels, int(_e.queries.labels[_q])), space=_e.space.value)))",
    )
    text = readout_text(root, "neighbours of the same class")
    shown = _numbers(r"query (\d+) .*?(\w+) space: (\d+)/(\d+) neighbours .*?distances (.*)$", text)
    if data["space"] != "pixel" or shown is None or shown[1] != "pixel":
        return [f"expected the pixel space after clicking it (kernel: {data['space']}); readout {text!r}"]
    distances = [float(x) for x in str(shown[4]).split(",")]
    ok = (
        int(shown[0]) == data["q"]
        and int(shown[2]) == data["same"]
        and int(shown[3]) == data["k"]
        and len(distances) == data["k"]
        and all(_close(a, b) for a, b in zip(distances, data["distances"]))
    )
    return [] if ok else [f"scikit-learn gives {data}; the readout says {text!r}"]


def embedding_readout_is_right(run, root, before, after):
    """The chosen point's class and same-class neighbour count recomputed with scikit-learn."""
    data = _kernel_json(
        run,
        root,
        _SKLEARN_NEIGHBOURS + "_e = _explorer\n"
        "_i = _e.point.value\n"
        "_F = _e.features.numpy()\n"
        "_r = _sk_neighbours(_F, _F, _i, _e.neighbors.indices.shape[1], 'l2', True, _e.data.labels,"
        " int(_e.data.labels[_i]))\n"
        "_r['name'] = _e.data.classes[int(_e.data.labels[_i])]\n"
        "print(json.dumps(_r))",
    )
    text = readout_text(root, "neighbours of the same class")
    shown = _numbers(r"point (\d+) \((.+?)\) at .*?(\d+)/(\d+) feature-space", text)
    ok = shown is not None and int(shown[0]) == data["q"] and shown[1] == data["name"]
    ok = ok and int(shown[2]) == data["same"] and int(shown[3]) == data["k"]
    return [] if ok else [f"scikit-learn gives {data}; the readout says {text!r}"]


def filters_readout_is_right(run, root, before, after):
    """The readout names the layer chosen in the page, with that layer's weight shape and range."""
    layer = root.locator(".widget-dropdown select").first.evaluate("s => s.options[s.selectedIndex].text")
    data = _kernel_json(
        run,
        root,
        f"print(json.dumps(_explorer.weights[{layer!r}].flatten().tolist() + [list(_explorer.weights[{layer!r}].shape)]))",
    )
    shape, weights = data[-1], np.asarray(data[:-1])
    text = readout_text(root, "filters of")
    expected = f"{layer}: {shape[0]} filters of {shape[1]}x{shape[2]}x{shape[3]}"
    shown = _numbers(r"weights in \[([-\d.e+]+), ([-\d.e+]+)\]", text)
    if not text.startswith(expected) or shown is None:
        return [f"expected the readout to start with {expected!r}; it says {text!r}"]
    if not (_close(shown[0], weights.min()) and _close(shown[1], weights.max())):
        return [f"weights of {layer} lie in [{weights.min():.3g}, {weights.max():.3g}]; readout {text!r}"]
    return []


# --- the cases: every explorer of every notebook ---------------------------------------------

CASES = [
    ExplorerCase(
        "01_physical_layers.ipynb",
        "physics",
        press_slider("bits", 3),
        physics_readout_is_right,
        id="physics-bits",
    ),
    ExplorerCase("01_physical_layers.ipynb", "physics", drag_slider("blur", 0.9), id="physics-blur"),
    ExplorerCase(
        "03_metrics.ipynb",
        "threshold",
        drag_slider("threshold", 0.3),
        threshold_readout_is_right,
        id="threshold-drag",
    ),
    ExplorerCase(
        "03_metrics.ipynb",
        "threshold",
        press_slider("threshold", jump=True),
        threshold_readout_is_right,
        id="threshold-keys",
    ),
    ExplorerCase(
        "04_filters.ipynb", "filters", select_option("layer"), filters_readout_is_right, id="filters-layer"
    ),
    ExplorerCase("04_filters.ipynb", "filters", click_toggle("scale"), id="filters-scale"),
    ExplorerCase("05_feature_space.ipynb", "neighbors", press_slider("query"), id="neighbors-query"),
    ExplorerCase(
        "05_feature_space.ipynb",
        "neighbors",
        click_toggle("space", index=0),
        neighbors_pixel_readout_is_right,
        id="neighbors-pixel",
    ),
    ExplorerCase(
        "05_feature_space.ipynb",
        "embedding",
        press_slider("point"),
        embedding_readout_is_right,
        id="embedding-point",
    ),
    ExplorerCase(
        "06_which_pixels_matter.ipynb",
        "occlusion",
        press_slider("image", 2),
        occlusion_readout_is_right,
        id="occlusion-image",
        timeout=60.0,
    ),
    ExplorerCase(
        "06_which_pixels_matter.ipynb",
        "occlusion",
        press_slider("patch size", 1),
        id="occlusion-patch",
        timeout=60.0,
    ),
]


@pytest.mark.browser
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_explorer_renders_and_follows_its_control(case, notebook_run, artifacts):
    check_explorer(notebook_run, case, artifacts)


# --- coverage: no explorer in a notebook goes untested --------------------------------------


def _explorers_used(path: Path) -> set[str]:
    """CSS names of the deepimaging explorers a notebook constructs."""
    import deepimaging.widgets as dw
    from deepimaging.widgets import Explorer

    classes = {
        name: cls
        for name, cls in vars(dw).items()
        if isinstance(cls, type) and issubclass(cls, Explorer) and cls is not Explorer
    }
    source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    return {cls.name for name, cls in classes.items() if re.search(rf"\b{name}\s*\(", source)}


def test_every_explorer_in_the_notebooks_has_a_browser_case():
    covered = {(c.notebook, c.name) for c in CASES}
    used = {(p.name, name) for p in sorted(NOTEBOOKS.glob("*.ipynb")) for name in _explorers_used(p)}
    assert used <= covered, f"explorers shown in notebooks without a browser case: {sorted(used - covered)}"


def test_every_browser_case_names_an_explorer_its_notebook_shows():
    for case in CASES:
        path = NOTEBOOKS / case.notebook
        if path.exists():
            assert case.name in _explorers_used(path), (
                f"{case.notebook} does not construct a {case.name!r} explorer"
            )


# --- clicking the t-SNE map (ipyevents) ----------------------------------------------------------

_IPYEVENTS_LOADED = """
() => {
  const app = window.jupyterapp;
  return {registered: app.hasPlugin('ipyevents'), active: app.isPluginActivated('ipyevents')};
}
"""


@pytest.mark.browser
@pytest.mark.notebook("05_feature_space.ipynb")
def test_embedding_map_click_selects_the_point_under_the_mouse(notebook_run, artifacts):
    """Click a point drawn on the t-SNE map: the explorer chooses it (slider and readout follow).

    The ipyevents JupyterLab 4 extension must be registered and active in the page; the
    point's pixel in the PNG comes from the kernel's explorer, and the click lands on it
    after scaling by the size at which the page shows the image.
    """
    run, chosen = notebook_run, {}
    run.wait()
    loaded = run.page.evaluate(_IPYEVENTS_LOADED)
    assert loaded == {"registered": True, "active": True}, f"ipyevents lab extension: {loaded}"

    def click_point(root, page):
        data = _kernel_json(
            run,
            root,
            "print(json.dumps({'i': _explorer.point.value, 'pixels': _explorer.point_pixels.tolist()}))",
        )
        pixels = np.asarray(data["pixels"])
        gaps = np.hypot(*(pixels[:, None] - pixels[None]).transpose(2, 0, 1))
        np.fill_diagonal(gaps, np.inf)
        # The most isolated point other than the chosen one: nothing else lies under the mouse.
        target = int(next(i for i in np.argsort(-gaps.min(1)) if i != data["i"]))
        image = root.locator("img.deepimaging-embedding-map").first
        box = image.bounding_box()
        natural = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        x = box["x"] + pixels[target, 0] * box["width"] / natural[0]
        y = box["y"] + pixels[target, 1] * box["height"] / natural[1]
        page.mouse.click(x, y)
        chosen.update(target=target, was=data["i"])
        return f"clicking point {target} of the map at PNG pixel {pixels[target].round(1).tolist()} (was {data['i']})"

    def selected(run, root, before, after):
        text = readout_text(root, "neighbours of the same class")
        shown = _numbers(r"point (\d+) ", text)
        problems = []
        if shown is None or int(shown[0]) != chosen["target"]:
            problems.append(f"expected point {chosen['target']} chosen by the click; readout {text!r}")
        if int(slider_value(root, "point")) != chosen["target"]:
            problems.append(f"the slider shows {slider_value(root, 'point')}, not {chosen['target']}")
        return problems + embedding_readout_is_right(run, root, before, after)

    case = ExplorerCase("05_feature_space.ipynb", "embedding", click_point, selected, id="embedding-click")
    check_explorer(run, case, artifacts)
    assert not [m for m in run.console if "ipyevents" in m], run.console
