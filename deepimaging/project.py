"""Class projects: scaffold a project folder, run the study it configures, report the results.

A project is a folder with a ``project.toml`` that says which base dataset, which physical
layer(s) and values, which model and training settings. Three commands work on it::

    deepimaging new-project my_project     # the folder: config, notebook, proposal, paper skeleton
    deepimaging run my_project             # the study engine of deepimaging.study, resumable
    deepimaging report my_project          # report/index.html, paper/generated/*.pdf and *.tex

The report always reads the results on disk, so the page and the paper show the latest
numbers. Every key of ``project.toml`` is checked before anything trains: a missing or
misspelled key, an unknown layer or dataset, a value of the wrong type or range is a
:class:`ProjectConfigError` naming the file, the line and the allowed values.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .study import StudyConfig, Sweep, _write_text_atomic, load_results, run_study

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

__all__ = [
    "EXAMPLES",
    "Project",
    "ProjectConfigError",
    "latex_escape",
    "load_project",
    "new_project",
    "report_project",
    "results_dir",
    "run_project",
]

CONFIG_NAME = "project.toml"
PAPER_FIGURES = ("accuracy_vs_parameter", "confusion_matrices", "attribution_across")
EXAMPLES = ("resolution_binning", "colour_filters", "blur_psf", "sparse_sensor")
# Examples on the real BCCD photos: they need a copy of BCCD (see deepimaging.data.find_bccd).
BCCD_EXAMPLES = ("bccd_bit_depth", "bccd_binning")

# Each section: key -> (type or tuple of types, required?). Types are checked as written in TOML.
_SCHEMA = {
    "project": {
        "title": (str, True),
        "authors": (list, True),
        "description": (str, False),
        "code_url": (str, False),
        "data_url": (str, False),
    },
    "dataset": {
        "name": (str, False),
        "size": (int, False),
        "n_per_class": (int, False),
        "test": ((int, float), False),
        "val": ((int, float), False),
        "seed": (int, False),
        "options": (dict, False),
    },
    "sweep": {
        "layer": (str, True),
        "values": (list, True),
        "label": (str, False),
        "options": (dict, False),
    },
    "analysis": {"parameter": (str, False), "metric": (str, False)},
    "model": {"widths": (list, False)},
    "training": {
        "epochs": (int, False),
        "seeds": (list, False),
        "lr": ((int, float), False),
        "batch_size": (int, False),
        "weight_decay": ((int, float), False),
        "device": (str, False),
        "patience": (int, False),
        "save_weights": (bool, False),
    },
}
_REQUIRED_SECTIONS = ("project", "sweep")
# Where each project key goes in StudyConfig.
_STUDY_KEYS = {
    ("dataset", "name"): "dataset",
    ("dataset", "size"): "size",
    ("dataset", "n_per_class"): "n_per_class",
    ("dataset", "test"): "test",
    ("dataset", "val"): "val",
    ("dataset", "seed"): "data_seed",
    ("dataset", "options"): "dataset_options",
    ("analysis", "parameter"): "parameter",
    ("analysis", "metric"): "metric",
    ("model", "widths"): "widths",
    ("training", "epochs"): "epochs",
    ("training", "seeds"): "seeds",
    ("training", "lr"): "lr",
    ("training", "batch_size"): "batch_size",
    ("training", "weight_decay"): "weight_decay",
    ("training", "device"): "device",
    ("training", "patience"): "patience",
    ("training", "save_weights"): "save_weights",
}


class ProjectConfigError(ValueError):
    """A ``project.toml`` that cannot be run; the message names the file, line and allowed values."""


@dataclass
class Project:
    """A loaded project: its folder, the text of its page and paper, and the study to run."""

    path: Path
    title: str
    authors: list
    description: str
    code_url: str
    data_url: str
    study: StudyConfig


# ---------------------------------------------------------------------------------------------
# Scaffold
# ---------------------------------------------------------------------------------------------


def new_project(path, *, title: str | None = None, authors=None, example: str | None = None) -> Path:
    """Create a project folder from the template; refuse an existing non-empty folder.

    Parameters
    ----------
    path : str or Path
        The folder to create (it may exist if it is empty).
    title : str, optional
        Written into ``project.toml``, the README and the proposal.
    authors : list of str, optional
    example : str, optional
        Start from one of :data:`EXAMPLES` instead of the bit-depth template.

    Returns
    -------
    Path
        The project folder.
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(
            f"{path} already exists and is not an empty folder; new-project never overwrites. "
            "Choose a new path or empty the folder."
        )
    if example is not None and example not in EXAMPLES + BCCD_EXAMPLES:
        raise ValueError(f"example must be one of {list(EXAMPLES + BCCD_EXAMPLES)}; got {example!r}")
    template = resources.files("deepimaging") / "project_template"
    config = (template / "examples" / f"{example}.toml" if example else template / CONFIG_NAME).read_text()
    if title is not None:
        config = _set_toml_string(config, "title", title)
    if authors is not None:
        authors = [authors] if isinstance(authors, str) else list(authors)
        config = re.sub(r"(?m)^authors = .*$", "authors = " + _toml_list(authors), config, count=1)
    # Check the result parses before writing anything.
    data = tomllib.loads(config)
    shown_title = data["project"]["title"]
    shown_authors = ", ".join(data["project"]["authors"])

    # Build in a temporary sibling folder, then move it into place: no half-made project.
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        (staging / CONFIG_NAME).write_text(config)
        for name in ("README.md", "proposal.md"):
            text = (template / name).read_text()
            text = text.replace("{{TITLE}}", shown_title).replace("{{AUTHORS}}", shown_authors)
            (staging / name).write_text(text)
        (staging / "paper").mkdir()
        for name in ("main.tex", "references.bib"):
            (staging / "paper" / name).write_text((template / "paper" / name).read_text())
        (staging / "project.ipynb").write_text((template / "project.ipynb").read_text())
        if path.exists():
            path.rmdir()
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _set_toml_string(config: str, key: str, value: str) -> str:
    return re.sub(rf"(?m)^{key} = .*$", lambda _: f"{key} = {_toml_string(value)}", config, count=1)


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _toml_list(items) -> str:
    return "[" + ", ".join(_toml_string(str(i)) for i in items) + "]"


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


def load_project(path, *, smoke: bool | None = None) -> Project:
    """Read and check ``path/project.toml``; return the :class:`Project` it describes.

    In smoke mode (``smoke=True``, or :func:`deepimaging.train.smoke_mode`) the study
    shrinks to a few images per class and one epoch, keeping the same layers and values.
    """
    from .train import smoke_mode

    path = Path(path)
    file = path / CONFIG_NAME
    if not file.is_file():
        raise FileNotFoundError(
            f"no {CONFIG_NAME} in {path}: is this a project folder? Create one with `deepimaging new-project {path}`"
        )
    text = file.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ProjectConfigError(f"{file}: not valid TOML: {err}") from None
    _check_schema(data, text, file)

    project = data["project"]
    authors = project["authors"]
    if not authors or not all(isinstance(a, str) and a.strip() for a in authors):
        raise ProjectConfigError(_where(file, text, "project", "authors") + "authors must be a list of names")
    settings = {"sweeps": []}
    for (section, key), field_name in _STUDY_KEYS.items():
        if key in data.get(section, {}):
            settings[field_name] = data[section][key]
    for i, sweep in enumerate(data["sweep"]):
        try:
            settings["sweeps"].append(Sweep(**sweep))
        except (TypeError, ValueError) as err:
            raise ProjectConfigError(_where(file, text, "sweep", "values", i) + str(err)) from None
    try:
        study = StudyConfig(**settings)
    except (TypeError, ValueError) as err:
        key = _study_key_in(str(err))
        raise ProjectConfigError(_where(file, text, *key) + str(err)) from None
    if smoke if smoke is not None else smoke_mode():
        # Checked as written above; only then shrunk, so smoke mode never hides a bad value.
        study = dataclasses.replace(study, n_per_class=min(study.n_per_class or 12, 12), epochs=1)
    _check_layers(study, data, text, file)
    return Project(
        path=path,
        title=project["title"],
        authors=list(authors),
        description=project.get("description", "").strip(),
        code_url=project.get("code_url", ""),
        data_url=project.get("data_url", ""),
        study=study,
    )


def _check_schema(data: dict, text: str, file: Path) -> None:
    for section in data:
        if section not in _SCHEMA:
            hint = _did_you_mean(section, _SCHEMA)
            raise ProjectConfigError(
                f"{file}, line {_line_of(text, section)}: unknown section [{section}]{hint}; "
                f"allowed sections: {sorted(_SCHEMA)}"
            )
    for section in _REQUIRED_SECTIONS:
        if section not in data:
            header = "[[sweep]]" if section == "sweep" else f"[{section}]"
            raise ProjectConfigError(f"{file}: the section {header} is missing; it is required")
    if not isinstance(data["sweep"], list):
        raise ProjectConfigError(
            f"{file}, line {_line_of(text, 'sweep')}: write each sweep as a [[sweep]] table "
            "(double brackets), with layer and values"
        )
    for section, content in data.items():
        tables = content if section == "sweep" else [content]
        for index, table in enumerate(tables):
            if not isinstance(table, dict):
                raise ProjectConfigError(f"{file}: [{section}] must be a table of keys")
            schema = _SCHEMA[section]
            for key, value in table.items():
                if key not in schema:
                    hint = _did_you_mean(key, schema)
                    raise ProjectConfigError(
                        _where(file, text, section, key, index)
                        + f"unknown key {key!r} in [{section}]{hint}; allowed keys: {sorted(schema)}"
                    )
                expected, _ = schema[key]
                # A TOML true/false is a bool, which Python also counts as an int: only a bool key takes one.
                if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
                    names = " or ".join(
                        t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,))
                    )
                    raise ProjectConfigError(
                        _where(file, text, section, key, index)
                        + f"{key} must be {_article(names)} {names}; got {value!r} ({type(value).__name__})"
                    )
            for key, (_, required) in schema.items():
                if required and key not in table:
                    raise ProjectConfigError(
                        f"{file}, line {_line_of(text, section, None, index)}: [{section}] needs the key {key!r}"
                    )


def _check_layers(study: StudyConfig, data: dict, text: str, file: Path) -> None:
    """Build every layer once (for the built-in data, whose shape is known) so bad values fail now."""
    from . import physics

    for index, sweep in enumerate(study.sweeps):
        if sweep.layer not in physics.LAYERS:
            hint = _did_you_mean(sweep.layer, physics.LAYERS)
            raise ProjectConfigError(
                _where(file, text, "sweep", "layer", index)
                + f"unknown layer {sweep.layer!r}{hint}; allowed layers: {sorted(physics.LAYERS)}"
            )
        if study.dataset != "blood_smear":
            continue  # the image shape is known only once the data is loaded: `run` checks then
        for value in sweep.values:
            try:
                physics.make_layer(
                    sweep.layer, value, image_shape=(3, study.size, study.size), **sweep.options
                )
            except (TypeError, ValueError) as err:
                raise ProjectConfigError(_where(file, text, "sweep", "values", index) + str(err)) from None


def _study_key_in(message: str) -> tuple:
    """Map a StudyConfig error back to the project key it names, for the line number."""
    for (section, key), field_name in _STUDY_KEYS.items():
        if re.search(rf"\b{field_name}\b", message):
            return section, key
    return ("project", None)


def _where(file: Path, text: str, section: str, key: str | None, index: int = 0) -> str:
    return f"{file}, line {_line_of(text, section, key, index)}: "


def _line_of(text: str, section: str, key: str | None = None, index: int = 0) -> int:
    """1-based line of ``key`` in the ``index``-th ``[section]`` (or ``[[section]]``) of ``text``."""
    lines = text.splitlines()
    header = re.compile(rf"^\s*\[\[?\s*{re.escape(section)}\s*\]\]?\s*(#.*)?$")
    starts = [i for i, line in enumerate(lines) if header.match(line)]
    if not starts:
        return 1
    start = starts[min(index, len(starts) - 1)]
    if key is None:
        return start + 1
    for i in range(start + 1, len(lines)):
        if re.match(r"^\s*\[", lines[i]):
            break
        if re.match(rf"^\s*{re.escape(key)}\s*=", lines[i]):
            return i + 1
    return start + 1


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


# ---------------------------------------------------------------------------------------------
# Run and report
# ---------------------------------------------------------------------------------------------


def results_dir(path, smoke: bool | None = None) -> Path:
    """Where a project's results live: ``results/``, or ``results_smoke/`` in smoke mode."""
    from .train import smoke_mode

    smoke = smoke_mode() if smoke is None else smoke
    return Path(path) / ("results_smoke" if smoke else "results")


def run_project(path, *, jobs: int = 1, smoke: bool | None = None, progress: bool = True):
    """Run (or resume) the study of the project at ``path``; return its results."""
    project = load_project(path, smoke=smoke)
    return run_study(project.study, results_dir(path, smoke), jobs=jobs, progress=progress)


def report_project(path, *, smoke: bool | None = None) -> dict:
    """Render the results page and the paper's figures and table from the results on disk.

    Writes ``report/index.html`` (with its figures, by :func:`deepimaging.report.write_report`),
    and ``paper/generated/``: ``metadata.tex`` (title and authors, LaTeX-escaped),
    ``results_table.tex`` (a ``tabular``) and the page's figures as PDF.

    Returns
    -------
    dict
        Paths of the page, the table and the figures.
    """
    from .report import write_report

    project = load_project(path, smoke=smoke)
    folder = results_dir(path, smoke)
    if not (folder / "study.json").is_file():
        raise FileNotFoundError(
            f"no results in {folder} yet: run the study first with `deepimaging run {path}`"
            + (" --smoke" if folder.name.endswith("smoke") else "")
        )
    results = load_results(folder, allow_incomplete=True)
    if not results.points:
        raise FileNotFoundError(
            f"the study in {folder} has no finished point yet: run `deepimaging run {path}`"
        )

    page = write_report(
        results,
        Path(path) / "report",
        title=project.title,
        authors=project.authors,
        description=project.description,
        links={"code": project.code_url, "data": project.data_url},
    )
    generated = Path(path) / "paper" / "generated"
    generated.mkdir(parents=True, exist_ok=True)
    authors = r" \and ".join(latex_escape(a) for a in project.authors)
    _write_text_atomic(
        generated / "metadata.tex",
        f"\\newcommand{{\\projecttitle}}{{{latex_escape(project.title)}}}\n"
        f"\\newcommand{{\\projectauthors}}{{{authors}}}\n",
    )
    _write_text_atomic(generated / "results_table.tex", results_table_latex(results))
    figures = _paper_figures(Path(path) / "report", generated)
    return {"page": page, "table": generated / "results_table.tex", **figures}


def results_table_latex(results) -> str:
    """The summary of a study as a LaTeX ``tabular`` (booktabs rules), one row per (sweep, value)."""
    rows = results.summary()
    lines = [
        r"\begin{tabular}{llrrr}",
        r"\toprule",
        f"Layer & {latex_escape(results.config.parameter)} & {results.metric_name.capitalize()} & Macro AUC & Seeds \\\\",
        r"\midrule",
    ]
    for row in rows:
        auc = "--" if row["macro_auc_mean"] is None else f"{row['macro_auc_mean']:.3f}"
        lines.append(
            f"{latex_escape(row['sweep'])} & {row['value']} & "
            f"${row['mean']:.3f} \\pm {row['std']:.3f}$ & {auc} & {row['n_seeds']} \\\\"
        )
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def _paper_figures(report_dir: Path, folder: Path) -> dict:
    """Copy the page's PDF figures into the paper folder, so page and paper show the same run."""
    copied = {}
    for name in PAPER_FIGURES:
        source = report_dir / "figures" / f"{name}.pdf"
        if source.is_file():
            shutil.copyfile(source, folder / source.name)
            copied[name] = folder / source.name
    return copied


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}


def latex_escape(text: str) -> str:
    r"""Escape user text so LaTeX prints it as written: ``"50% & <b>"`` -> ``"50\% \& \textless{}b\textgreater{}"``.

    Examples
    --------
    >>> latex_escape("a_b & 100%")
    'a\\_b \\& 100\\%'
    """
    return "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def add_cli(subparsers) -> None:
    """Add ``new-project``, ``run`` and ``report`` to the ``deepimaging`` command."""
    p = subparsers.add_parser("new-project", help="scaffold a class-project folder")
    p.add_argument("path", help="the folder to create (must not exist, or be empty)")
    p.add_argument("--title", help="project title")
    p.add_argument("--authors", help="comma-separated author names")
    p.add_argument("--example", choices=EXAMPLES + BCCD_EXAMPLES, help="start from an example topic")
    p.set_defaults(run=_new_project_cli)

    p = subparsers.add_parser("run", help="run (or resume) the study a project.toml describes")
    p.add_argument("path", help="the project folder")
    p.add_argument("--jobs", type=int, default=1, help="points trained in parallel (processes)")
    p.add_argument("--smoke", action="store_true", help="tiny data and one epoch, to check the set-up")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=_run_cli)

    p = subparsers.add_parser("report", help="write the results page and the paper's figures and table")
    p.add_argument("path", help="the project folder")
    p.add_argument("--smoke", action="store_true", help="report the smoke run's results")
    p.set_defaults(run=_report_cli)


def _new_project_cli(args) -> int:
    authors = [a.strip() for a in args.authors.split(",")] if args.authors else None
    path = new_project(args.path, title=args.title, authors=authors, example=args.example)
    print(f"created {path}: edit {path / CONFIG_NAME}, then `deepimaging run {path}`")
    return 0


def _run_cli(args) -> int:
    results = run_project(args.path, jobs=args.jobs, smoke=args.smoke or None, progress=not args.no_progress)
    for row in results.summary():
        print(
            f"{row['sweep']}={row['value']}: accuracy {row['accuracy_mean']:.3f} ± {row['accuracy_std']:.3f}"
        )
    folder = results_dir(args.path, args.smoke or None)
    smoke = " --smoke" if folder.name.endswith("smoke") else ""
    print(f"results in {folder}; now `deepimaging report {args.path}{smoke}`")
    return 0


def _report_cli(args) -> int:
    written = report_project(args.path, smoke=args.smoke or None)
    print(f"results page: {written['page']}")
    print(f"paper table and figures: {written['table'].parent}")
    return 0
