"""Results web page and paper figures for a study.

:func:`render_report` fills the course's project web template (title, authors,
description, figures with captions, a results table, links to code and data)
with Jinja2, autoescaping every user-supplied text: a title such as
``<script>alert(1)</script>`` appears as text, never as markup. Figures are
embedded as PNG data, so ``index.html`` is one self-contained file that can be
mailed or uploaded; the PDF versions beside it are for the paper.

:func:`make_figures` draws the standard figures of any study, and
:func:`write_report` does both. The worked bit-depth study from run to page
(``deepimaging demo``) is :func:`deepimaging.project.run_demo`.
"""

from __future__ import annotations

import base64
import datetime
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ._util import package_version, write_text_atomic
from .study import StudyResults, load_data

__all__ = ["ReportFigure", "save_figure", "make_figures", "render_report", "write_report"]

FIGURES_DIR = "figures"
CODE_URL = "https://pypi.org/project/deepimaging/"


@dataclass
class ReportFigure:
    """A figure of the report: file paths (relative to the report folder) by format, and a caption."""

    name: str
    caption: str
    files: dict = field(default_factory=dict)


def save_figure(fig, folder, name: str, formats=("png", "pdf"), *, dpi: int = 150) -> dict:
    """Save a matplotlib Figure as ``folder/name.<fmt>`` for each format; close it; return ``{fmt: path}``."""
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for fmt in formats:
        path = folder / f"{name}.{fmt}"
        # Fixed metadata so that the same numbers give byte-identical PDFs.
        metadata = {"CreationDate": None} if fmt == "pdf" else None
        fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata=metadata)
        paths[fmt] = path
    plt.close(fig)
    return paths


def make_figures(
    results: StudyResults, out_dir, *, formats=("png", "pdf"), examples: int = 4, inside: bool = True
) -> list[ReportFigure]:
    """Draw the standard figures of a study into ``out_dir/figures/``.

    - accuracy vs the parameter, one line per sweep, error bars over seeds;
    - confusion matrices of the first sweep at its first, second and last value
      (1, 2 and 8 bits in the bit-depth study);
    - example sensor images of the first sweep at each value;
    - the learned bits map of every sweep whose layer has one (at its first value);
    - with ``inside`` (default) and the first sweep's networks saved: where they
      look (occlusion maps across the values, :func:`~deepimaging.plots.plot_attribution_across`),
      their first-layer filters, and the nearest-neighbour agreement of their
      features against the parameter. Read from the saved points, never retrained.

    Returns
    -------
    list of ReportFigure
        Paths relative to ``out_dir``.
    """
    import matplotlib.pyplot as plt

    from . import plots

    out = Path(out_dir)
    folder = out / FIGURES_DIR
    config = results.config
    first = config.sweeps[0]
    figures = []

    def add(fig, name, caption):
        paths = save_figure(fig, folder, name, formats)
        figures.append(ReportFigure(name, caption, {k: str(p.relative_to(out)) for k, p in paths.items()}))

    ax = plots.plot_accuracy_vs_parameter(results)
    seeds = len(config.seeds)
    add(
        ax.figure,
        "accuracy_vs_parameter",
        f"Test {results.metric_name} against {config.parameter}: mean over {seeds} seeds, error bars ± one "
        f"standard deviation; {len(results.classes)} classes, chance level dotted. {results.metric_note()}",
    )

    done = {float(p["value"]) for p in results.select(first.name)}
    shown = [
        v for v in dict.fromkeys([first.values[0], *first.values[1:2], first.values[-1]]) if float(v) in done
    ]
    if shown:
        fig = plots.plot_study_confusion_matrices(results, first.name, shown)
        add(
            fig,
            "confusion_matrices",
            f"Confusion matrices of {first.name.replace('_', ' ')} at {', '.join(map(str, shown))} "
            "(summed over seeds; rows are the true class, normalised to the class's recall).",
        )

    if examples:
        train, test, _ = load_data(config)
        picks = [
            int((test.labels == k).nonzero()[0])
            for k in range(min(examples, test.num_classes))
            if (test.labels == k).any()
        ]
        fig = plots.plot_sensor_examples(
            test.images_at(picks),
            first.layer,
            first.values,
            options=first.options,
            labels=test.labels[picks],
            classes=test.classes,
            parameter=config.parameter,
        )
        add(
            fig,
            "sensor_examples",
            f"What the sensor records: one test image per class (rows) through {first.layer.replace('_', ' ')} "
            f"at each {config.parameter} (columns).",
        )

    for sweep in config.sweeps:
        maps = {v: results.bits_map(sweep.name, v) for v in sweep.values}
        maps = {v: m for v, m in maps.items() if m is not None}
        if not maps:
            continue
        # One map per sweep: the budget where the learned map varies most shows the choice most clearly.
        value = max(maps, key=lambda v: float(maps[v].std()))
        fig, ax = plt.subplots(figsize=(4.5, 4))
        plots.plot_bits_map(
            maps[value], ax=ax, title=f"{sweep.name.replace('_', ' ')}: learned bits per pixel"
        )
        add(
            fig,
            f"bits_map_{sweep.name}",
            f"Where the network put its bits: the learned (fractional) bits per pixel of "
            f"{sweep.name.replace('_', ' ')} under a budget of {value} {config.parameter} on average, "
            "mean over seeds; the sensor rounds them to whole bits.",
        )
    if inside:
        _inside_figures(results, add, examples)
    return figures


def _inside_figures(results: StudyResults, add, examples: int) -> None:
    """Add the figures drawn from the first sweep's saved networks (none, with a warning, when they are not saved)."""
    import warnings

    from . import plots

    config = results.config
    first = config.sweeps[0]
    points = results.select(first.name)
    if results.folder is None or len(points) < len(first.values) * len(config.seeds):
        return
    unsaved = [p for p in points if "weights" not in p]
    if unsaved:
        warnings.warn(
            f"{len(unsaved)} point(s) of {first.name!r} have no saved network (save_weights was off), so the "
            "page leaves out what the networks look at; rerun those points with saving on to add it",
            stacklevel=3,
        )
        return
    seed = config.seeds[0]
    _, test, _ = load_data(config)
    k = max(1, min(examples or 4, len(test)))
    fig = plots.plot_attribution_across(results, method="occlusion", images=k, seed=seed)
    add(
        fig,
        "attribution_across",
        f"What the networks look at across {config.parameter}: the same {k} test images (one per class where "
        f"possible), one column per value of {first.name.replace('_', ' ')}. Above, the sensor image the network "
        "of that column saw; below, its occlusion map: how much the probability of the true class drops when a "
        f"patch is hidden (red: the network relies on it; one colour scale per image). Networks of seed {seed}, "
        "reopened from the saved points.",
    )
    fig = plots.plot_filters_across(results, seed=seed)
    add(
        fig,
        "filters_across",
        f"First-layer filters of the network trained at each {config.parameter} (seed {seed}; mid-grey is 0). "
        "Every network of one seed starts from the same filters, so the differences are what training at "
        "that value changed.",
    )
    ax = plots.plot_neighbor_agreement(results)
    add(
        ax.figure,
        "neighbor_agreement",
        f"How well the features separate the classes at each {config.parameter}: the fraction of each test "
        "image's 5 nearest neighbours in feature space (penultimate layer) that share its class, mean ± one "
        "standard deviation over seeds; dotted, what features that ignore the class would give.",
    )


def _results_table(results: StudyResults) -> dict:
    """The summary as a table of the study's metric, with notes saying which metric, which interval,
    and which differences between sweeps are within the spread over seeds."""
    metric, name = results.metric, results.metric_name
    header = [
        "sweep",
        results.config.parameter,
        "seeds",
        f"test {name} (mean ± s.d.)",
        "95% interval",
        *(["accuracy"] if metric != "accuracy" else []),
        *(["balanced accuracy"] if metric != "balanced_accuracy" else []),
        "macro-F1",
        "macro AUC",
        "seeds with warnings",
    ]
    rows = []
    for r in results.summary():
        rows.append(
            [
                r["sweep"].replace("_", " "),
                str(r["value"]),
                str(r["n_seeds"]),
                f"{r['mean']:.3f} ± {r['std']:.3f}" if r["mean"] is not None else "–",
                _interval(r["ci_low"], r["ci_high"]),
                *([f"{r['accuracy_mean']:.3f}"] if metric != "accuracy" else []),
                *([_number(r.get("balanced_accuracy_mean"))] if metric != "balanced_accuracy" else []),
                _number(r.get("macro_f1_mean")),
                _number(r.get("macro_auc_mean")),
                str(r.get("warnings", 0)),
            ]
        )
    notes = [
        results.metric_note(),
        "The 95% interval is a t-interval over seeds (Student's t, n - 1 degrees of freedom): "
        "it shows how much the mean moves with the training seed on this one split, not over other test images.",
        *comparison_sentences(results),
    ]
    return {"header": header, "rows": rows, "notes": notes}


def comparison_sentences(results: StudyResults) -> list:
    """One sentence per value two sweeps share: the paired difference and whether it is within the spread."""
    sentences = []
    for c in results.comparisons():
        if c["n_seeds"] < 2:
            continue
        verdict = (
            "within the spread over seeds"
            if c["within_spread"]
            else "beyond the spread over seeds (the 95% interval excludes 0)"
        )
        sentences.append(
            f"{c['a'].replace('_', ' ')} minus {c['b'].replace('_', ' ')} at {c['value']} "
            f"{results.config.parameter}: {c['difference_mean']:+.3f} {results.metric_name} "
            f"(paired over {c['n_seeds']} seeds, 95% interval {_interval(c['ci_low'], c['ci_high'])}): {verdict}."
        )
    return sentences


def _number(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def _interval(low, high) -> str:
    return "–" if low is None or high is None else f"{low:.3f} to {high:.3f}"


def render_report(
    out_dir,
    results: StudyResults | None = None,
    *,
    title: str,
    authors=(),
    description: str = "",
    figures=(),
    table: dict | None = None,
    links: dict | None = None,
    filename: str = "index.html",
    embed_images: bool = True,
) -> Path:
    """Write a self-contained results web page ``out_dir/filename`` and return its path.

    Parameters
    ----------
    out_dir : path
        The report folder; figure paths are relative to it.
    results : StudyResults, optional
        Fills the results table (unless ``table`` is given) and the settings line.
    title, description : str
        Shown as text: every user-supplied string is HTML-escaped by Jinja2's
        autoescaping (``<script>`` shows as ``&lt;script&gt;``).
    authors : str or list of str
    figures : list of ReportFigure (or dicts with name, caption, files)
        Shown in order with their captions; the PNG is embedded (``embed_images``)
        or linked, and the other formats (PDF) are linked for the paper.
    table : dict, optional
        ``{"header": [...], "rows": [[...], ...]}``; default: the study summary.
    links : dict, optional
        ``{label: url}`` shown under "Code and data"; default: the results files
        in the folder and the deepimaging package. Only ``http``, ``https`` and
        relative URLs become links; any other (``javascript:``, ``data:``, ``file:``)
        is shown as inert text, with a warning.
    filename : str
    embed_images : bool
        Embed PNGs as ``data:`` URIs so the page is one file.
    """
    from jinja2 import Environment, PackageLoader

    out = Path(out_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"report folder {out} does not exist; run the study first")
    if isinstance(authors, str):
        authors = [authors]
    authors = [str(a) for a in authors]
    figures = [f if isinstance(f, ReportFigure) else ReportFigure(**f) for f in figures]
    shown = []
    for fig in figures:
        png = fig.files.get("png")
        src = None
        if png is not None:
            path = out / png
            if not path.exists():
                raise FileNotFoundError(f"figure {fig.name!r}: {path} does not exist")
            src = (
                "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
                if embed_images
                else png
            )
        others = {fmt.upper(): p for fmt, p in fig.files.items() if fmt != "png"}
        shown.append({"name": fig.name, "caption": fig.caption, "src": src, "png": png, "others": others})
    if table is None and results is not None:
        table = _results_table(results)
    if links is None:
        links = {
            name: name
            for name in ("results.json", "results.csv", "points.csv", "study.json")
            if (out / name).exists()
        }
        links["deepimaging (code)"] = CODE_URL
    settings = None
    if results is not None:
        c = results.config
        settings = (
            f"dataset {c.dataset}, {c.size}x{c.size} pixels, {c.n_per_class or 'all'} images per class, "
            f"validation fraction {c.val}, test fraction {c.test}; BasicCNN widths {c.widths}, {c.epochs} epochs, lr {c.lr}, "
            f"batch {c.batch_size}; seeds {c.seeds}; BatchNorm statistics recomputed after training; "
            f"devices {sorted({p.get('device', '?') for p in results.points})}; configuration hash {c.hash()}"
        )
        if len({p.get("device", "?").split(":")[0] for p in results.points}) > 1:
            # A study finished on a cluster's GPUs after starting on a laptop: allowed, but GPU kernels
            # round differently, so one seed's numbers can differ slightly between the devices.
            settings += (
                "; mixed devices: points trained on different devices, so seeds agree closely, not exactly"
            )

    for label, url in links.items():
        if not _is_safe_link(url):
            warnings.warn(
                f"links[{label!r}] = {url!r} is not an http, https or relative URL; it is shown as text, "
                "not as a link",
                UserWarning,
                stacklevel=2,
            )
    # Autoescaping on for everything this template renders: user text can never become markup;
    # the test safe_link keeps URLs of other schemes (javascript:) out of every href.
    env = Environment(loader=PackageLoader("deepimaging", "templates"), autoescape=True)
    env.tests["safe_link"] = _is_safe_link
    page = env.get_template("results.html.j2").render(
        title=title,
        authors=authors,
        description=description,
        figures=shown,
        table=table,
        links=links,
        settings=settings,
        generated=datetime.date.today().isoformat(),
        version=package_version(),
    )
    path = out / filename
    write_text_atomic(path, page)
    return path


def write_report(
    results: StudyResults,
    out_dir,
    *,
    title=None,
    authors=None,
    description=None,
    links=None,
    formats=("png", "pdf"),
) -> Path:
    """Draw the standard figures (:func:`make_figures`) and render ``index.html``; return the page's path."""
    figures = make_figures(results, out_dir, formats=formats)
    return render_report(
        out_dir,
        results,
        title=title or f"Test accuracy vs {results.config.parameter}",
        authors=authors or [],
        description=description or "",
        figures=figures,
        links=links,
    )


def _is_safe_link(url) -> bool:
    r"""Whether ``url`` may become a link on the page: ``http``, ``https``, or relative (no scheme).

    Autoescaping keeps text from becoming markup, but not a ``javascript:`` (or ``data:``,
    ``file:``) URL in an ``href`` from running when clicked. Browsers drop ASCII whitespace and
    control characters inside a URL ("java\tscript:" is "javascript:", WHATWG URL standard),
    so they are removed before the scheme is read.
    """
    text = re.sub(r"[\x00-\x20\x7f]", "", str(url))
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*):", text)
    return scheme is None or scheme.group(1).lower() in ("http", "https")
