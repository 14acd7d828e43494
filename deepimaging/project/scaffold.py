"""``deepimaging new-project``: a new project folder from the template, made whole or not at all."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from .._util import atomic_folder
from .config import CONFIG_NAME

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

__all__ = ["BCCD_EXAMPLES", "EXAMPLES", "new_project"]

EXAMPLES = ("resolution_binning", "colour_filters", "blur_psf", "sparse_sensor")
# Examples on the real BCCD photos: they need a copy of BCCD (see deepimaging.data.find_bccd).
BCCD_EXAMPLES = ("bccd_bit_depth", "bccd_binning")


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
    with atomic_folder(path) as staging:
        (staging / CONFIG_NAME).write_text(config)
        for name in ("README.md", "proposal.md"):
            text = (template / name).read_text()
            text = text.replace("{{TITLE}}", shown_title).replace("{{AUTHORS}}", shown_authors)
            (staging / name).write_text(text)
        (staging / "paper").mkdir()
        for name in ("main.tex", "references.bib"):
            (staging / "paper" / name).write_text((template / "paper" / name).read_text())
        (staging / "project.ipynb").write_text((template / "project.ipynb").read_text())
    return path


def _set_toml_string(config: str, key: str, value: str) -> str:
    return re.sub(rf"(?m)^{key} = .*$", lambda _: f"{key} = {_toml_string(value)}", config, count=1)


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _toml_list(items) -> str:
    return "[" + ", ".join(_toml_string(str(i)) for i in items) + "]"
