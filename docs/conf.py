"""Sphinx configuration of the course site: guides, the notebooks with their outputs, the API.

Build it with ``bash run.sh docs`` (or ``python -m sphinx -W --keep-going docs docs/_build/html``).

Three things happen here before Sphinx reads a page, so that the site follows the code without
hand-kept lists:

- the course notebooks are copied from ``notebooks/`` into ``docs/notebooks/`` (only those
  whose bytes changed, so Sphinx re-reads only what changed);
- one API page per public module is written into ``docs/api/``, listing the names in that
  module's ``__all__`` (a name renamed or added in the code appears on the next build), and
  the pages of names that left are removed;
- executed notebooks are cached with jupyter-cache in a folder named after the run mode
  (quick ``DEEPIMAGING_SMOKE=1`` or full settings) and a hash of the package's source, so an
  unchanged notebook is not executed again, and a change to the package executes them all
  (``notebook_cache.py``; the test run's nbval pass fills the quick-mode cache).
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import shutil
import sys
from pathlib import Path

from docutils import nodes

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(DOCS))

from notebook_cache import cache_folder, remove_stale_caches  # noqa: E402

import deepimaging  # noqa: E402
from deepimaging.train import smoke_mode  # noqa: E402

# -- Project -------------------------------------------------------------------------------------

project = "deepimaging"
author = "the deepimaging authors"
copyright = "the deepimaging authors, MIT licence"
release = version = deepimaging.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx.ext.napoleon",
]
exclude_patterns = ["_build", "notebooks/README.md", "**.ipynb_checkpoints", "jupyter_execute"]
templates_path = ["_templates"]

# -- The subpackages of the API reference --------------------------------------------------------

# Every public part of the package, lowest floor first (the order of DESIGN.md). A public module
# the package gains later is found and added at the end; the command line (`deepimaging.cli`)
# is parsing and printing only, and its commands are documented on the guide pages.
FLOORS = ["data", "physics", "models", "metrics", "train", "interpret", "study", "plots", "widgets", "report"]
FLOORS += ["project"]


def public_modules() -> list[str]:
    """The public modules and subpackages of deepimaging, in the order of :data:`FLOORS`."""
    found = {m.name for m in pkgutil.iter_modules(deepimaging.__path__) if not m.name.startswith("_")}
    found.discard("cli")
    return [m for m in FLOORS if m in found] + sorted(found - set(FLOORS))


SUBPACKAGES = public_modules()


def public_names(module) -> list[str]:
    """The names a module exports: its ``__all__``, or else what it defines without a leading ``_``.

    The fallback keeps a module without ``__all__`` documented: the names in the ``__all__`` of
    its own submodules that it re-exports, and the functions and classes whose ``__module__``
    lies inside it (names it merely imported from elsewhere are left out).
    """
    if hasattr(module, "__all__"):
        return sorted(dict.fromkeys(module.__all__), key=str.lower)
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if inspect.ismodule(value):
            if value.__name__.startswith(module.__name__ + "."):
                names.update(n for n in getattr(value, "__all__", ()) if hasattr(module, n))
        elif (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__.startswith(
            module.__name__
        ):
            names.add(name)
    return sorted(names, key=str.lower)


# What the API reference documents: each public module's names, and every name's full dotted form.
PUBLIC = {short: public_names(importlib.import_module(f"deepimaging.{short}")) for short in SUBPACKAGES}
FULL_NAMES = [f"deepimaging.{short}.{name}" for short, names in PUBLIC.items() for name in names]


def write_if_changed(path: Path, text: str) -> None:
    """Write only when the content differs, so Sphinx does not re-read an unchanged page."""
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def write_api_pages() -> list[str]:
    """One page per public module (``docs/api/<name>.md``) with an autosummary of its public names.

    The index of the API reference (``docs/api/index.md``) lists them, so that a module the
    package gains is on the site without an edit here.
    """
    api = DOCS / "api"
    pages = []
    for short, names in PUBLIC.items():
        lines = [
            f"# `deepimaging.{short}`",
            "",
            "```{eval-rst}",
            f".. automodule:: deepimaging.{short}",
            "   :no-members:",
            "",
            f".. currentmodule:: deepimaging.{short}",
            "",
            ".. autosummary::",
            "   :toctree: generated",
            "   :nosignatures:",
            "",
            *[f"   {name}" for name in names],
            "```",
            "",
        ]
        write_if_changed(api / f"{short}.md", "\n".join(lines))
        pages.append(short)
    index = [
        "# API reference",
        "",
        "Every public function and class of deepimaging, generated from its docstring. Each part of",
        "the package is one page, lowest floor first: the data and the physical layers know nothing",
        "of what is built on them; the plots and widgets draw what the lower parts compute.",
        "",
        "```{toctree}",
        ":maxdepth: 1",
        "",
        *pages,
        "```",
        "",
    ]
    write_if_changed(api / "index.md", "\n".join(index))
    # A module that left the list leaves no stale page behind.
    for old in api.glob("*.md"):
        if old.stem not in pages and old.stem != "index":
            old.unlink()
    return pages


def copy_notebooks() -> None:
    """Copy ``notebooks/*.ipynb`` into ``docs/notebooks/`` (byte-changed ones only; stale ones removed)."""
    target = DOCS / "notebooks"
    target.mkdir(exist_ok=True)
    sources = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for source in sources:
        copy = target / source.name
        if not copy.exists() or copy.read_bytes() != source.read_bytes():
            shutil.copyfile(source, copy)
    for copy in target.glob("*.ipynb"):
        if not (REPO / "notebooks" / copy.name).exists():
            copy.unlink()


write_api_pages()
copy_notebooks()

# -- Notebooks (MyST-NB) -------------------------------------------------------------------------

SMOKE = smoke_mode()
MODE = "smoke" if SMOKE else "full"
# The test run's nbval pass stores what it executed in the same cache (see notebook_cache.py).
nb_execution_cache_path = str(cache_folder(SMOKE))
remove_stale_caches(SMOKE)

nb_execution_mode = "cache"
nb_execution_raise_on_error = True  # a notebook that fails fails the build
nb_execution_show_tb = True  # ... and the log shows where
nb_execution_timeout = 600 if SMOKE else 3600  # per cell, in seconds
# A temporary working folder: notebook 07 writes its study folder into the working directory at
# full settings, and that folder must not land among the site's sources.
nb_execution_in_temp = True
# The explorers' outputs carry a live widget and a PNG of its starting state. No kernel runs
# behind the site, so the widget cannot work there: show the PNG instead.
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# The notebooks look for the BCCD photos relative to notebooks/ (or in DEEPIMAGING_BCCD); they run
# here in a temporary folder, so resolve that lookup once, as the notebooks would from notebooks/.
if not os.environ.get("DEEPIMAGING_BCCD"):
    for candidate in ("../../shared/data/BCCD", "../shared/data/BCCD"):
        bccd = (REPO / "notebooks" / candidate).resolve()
        if (bccd / "Annotations").is_dir():
            os.environ["DEEPIMAGING_BCCD"] = str(bccd)
            break
# The kernels must draw with matplotlib's inline backend, whose figures become the outputs shown
# on the site; an MPLBACKEND such as Agg (set for the test suite) would make them draw nothing.
os.environ.pop("MPLBACKEND", None)

# -- API reference -------------------------------------------------------------------------------

autosummary_generate = True


def _case_safe_filenames() -> dict[str, str]:
    """Distinct page names for public names that differ only in case (``Quantize``, ``quantize``).

    On macOS and Windows the two generated pages would be one file; the lower-case one (the
    function) gets a ``-function`` suffix there and everywhere.
    """
    lowered: dict[str, list[str]] = {}
    for full in FULL_NAMES:
        lowered.setdefault(full.lower(), []).append(full)
    return {
        full: f"{full}-function"
        for group in lowered.values()
        if len(group) > 1
        for full in group
        if full.rsplit(".", 1)[1][0].islower()
    }


autosummary_filename_map = _case_safe_filenames()


def remove_stale_pages() -> None:
    """Delete generated pages of names that are no longer public (autosummary never deletes any).

    A stale page would still document its object, twice if the name moved to another page.
    """
    generated = DOCS / "api" / "generated"
    expected = {autosummary_filename_map.get(full, full) + ".rst" for full in FULL_NAMES}
    for page in generated.glob("*.rst") if generated.is_dir() else ():
        if page.name not in expected:
            page.unlink()


remove_stale_pages()
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
# A method without its own docstring (say, a layer's `forward`) is left out rather than shown
# with the docstring of torch's nn.Module.
autodoc_inherit_docstrings = False
autodoc_typehints = "none"  # the Parameters section already says each type
# The docstrings are numpydoc-style; napoleon (part of Sphinx) reads them. It was chosen over the
# numpydoc extension because numpydoc drops a section it does not know (the Kornia-style "Shape"
# of BasicCNN) without an error, while napoleon renders the sections listed here and leaves any
# other underlined heading to docutils, which fails the build on it.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_custom_sections = ["Shape"]  # a generic section with its own heading
napoleon_use_ivar = True  # "Attributes" as fields: autodoc documents the members themselves
napoleon_use_rtype = False
napoleon_preprocess_types = True

# -- Math ----------------------------------------------------------------------------------------


def bundle_mathjax() -> str | None:
    """Copy MathJax 3 (from the ``django-static-mathjax`` wheel) into a static folder of the site.

    The site then renders its equations without reaching a CDN: offline, in a classroom, and in
    the browser test. Only what the TeX-to-HTML renderer loads is copied (about 3 MB): the
    combined ``tex-chtml.js``, its fonts, the TeX extensions it loads on demand and the menu.
    Returns the static folder, or None when the package is missing (Sphinx then uses its CDN).
    """
    try:
        import mathjax  # django-static-mathjax: MathJax's files, no Django needed to read them
    except ImportError:
        return None
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    static = DOCS / "_build" / "mathjax_static"
    target = static / "mathjax"
    if not (target / "tex-chtml.js").exists():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(es5 / "tex-chtml.js", target / "tex-chtml.js")
        for part in ("output/chtml", "input/tex", "ui", "a11y"):
            shutil.copytree(es5 / part, target / part, dirs_exist_ok=True)
    return str(static)


_mathjax_static = bundle_mathjax()
if _mathjax_static:
    mathjax_path = "mathjax/tex-chtml.js"

# -- HTML ----------------------------------------------------------------------------------------

html_theme = "sphinx_book_theme"
html_title = "deepimaging"
html_static_path = [_mathjax_static] if _mathjax_static else []
html_theme_options = {
    "show_toc_level": 2,
    # The sidebar lists the pages and the API's module pages, not each of the ~200 function pages
    # (every module page lists those): with them every page carried 200 more links, and writing
    # those sidebars was half the build's time (the pydata theme's "Build performance" advice).
    "max_navbar_depth": 2,
    "navigation_with_keys": False,
    "use_download_button": True,
}


# -- Links from the notebooks' text to the API ---------------------------------------------------


def _api_targets() -> dict[str, str]:
    """Every way the notebooks' text names a public object -> its full dotted name.

    ``deepimaging.physics.Quantize``, ``physics.Quantize`` and, where only one subpackage has the
    name, plain ``Quantize``; a trailing ``()`` is ignored.
    """
    targets: dict[str, str] = {}
    bare: dict[str, set[str]] = {}
    for short, names in PUBLIC.items():
        for name in names:
            full = f"deepimaging.{short}.{name}"
            targets[full] = full
            targets[f"{short}.{name}"] = full
            bare.setdefault(name, set()).add(full)
    for name, fulls in bare.items():
        if len(fulls) == 1 and name not in targets:
            targets[name] = next(iter(fulls))
    return targets


API_TARGETS = _api_targets()


def link_api_names(app, doctree, docname) -> None:
    """Turn inline code in the notebooks' markdown that names a public object into a link to its page.

    The notebooks are plain Jupyter files (no Sphinx roles in them), so the link is made here:
    an inline literal such as ``fit`` or ``physics.Quantize`` whose text is a public name becomes a
    reference to that name's API page, and ``deepimaging.metrics`` to the module's page. Code
    cells and outputs are literal blocks, left alone.
    """
    if not docname.startswith("notebooks/") or app.builder.format != "html":
        return
    for literal in list(doctree.findall(nodes.literal)):
        if isinstance(literal.parent, nodes.reference):
            continue
        text = literal.astext().strip()
        text = text[:-2] if text.endswith("()") else text
        module = text.removeprefix("deepimaging.")
        if text.startswith("deepimaging.") and module in PUBLIC:  # a module: its API page
            full = f"deepimaging.{module}"
            uri = app.builder.get_relative_uri(docname, f"api/{module}") + f"#module-{full}"
        elif text in API_TARGETS:
            full = API_TARGETS[text]
            page = autosummary_filename_map.get(full, full)
            uri = app.builder.get_relative_uri(docname, f"api/generated/{page}") + f"#{full}"
        else:
            continue
        reference = nodes.reference("", "", internal=True, refuri=uri, reftitle=full)
        literal.replace_self(reference)
        reference.append(literal)


def describe_constants(app, what, name, obj, options, lines) -> None:
    """A public constant without a doc comment gets a line saying what it holds, not its type's docstring.

    autodoc falls back to the docstring of the value's type, so ``LAYERS`` (a dict) would be
    documented as ``dict() -> new empty dictionary``. Say instead what kind of value it is and
    what it holds: a dict's keys, a short sequence's items.
    """
    if what not in ("data", "attribute") or not lines:
        return
    if "\n".join(lines).strip() != (inspect.getdoc(type(obj)) or "").strip():
        return  # a real doc comment: keep it
    if isinstance(obj, dict):
        keys = ", ".join(f"``{key}``" for key in obj)
        text = f"A ``dict`` of {len(obj)} entries, keyed by {keys}."
    elif isinstance(obj, (tuple, list)) and len(repr(obj)) < 300:
        text = f"A ``{type(obj).__name__}``: ``{obj!r}``."
    else:
        text = f"A ``{type(obj).__name__}``."
    lines[:] = [text]


def setup(app):
    app.connect("autodoc-process-docstring", describe_constants)
    app.connect("doctree-resolved", link_api_names)
    return {"parallel_read_safe": True}
