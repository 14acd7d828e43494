"""The paper's generated files: LaTeX-escaped title and authors, the results table, the figures as PDF."""

from __future__ import annotations

import shutil
from pathlib import Path

from .._util import write_text_atomic

__all__ = ["latex_escape", "results_table_latex", "write_paper_files"]

PAPER_FIGURES = ("accuracy_vs_parameter", "confusion_matrices", "attribution_across")


def write_paper_files(title: str, authors, results, report_dir, folder) -> dict:
    """Write ``metadata.tex``, ``results_table.tex`` and the page's PDF figures into ``folder``.

    Returns
    -------
    dict
        ``{"table": path, <figure name>: path, ...}``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = r" \and ".join(latex_escape(a) for a in authors)
    write_text_atomic(
        folder / "metadata.tex",
        f"\\newcommand{{\\projecttitle}}{{{latex_escape(title)}}}\n"
        f"\\newcommand{{\\projectauthors}}{{{names}}}\n",
    )
    write_text_atomic(folder / "results_table.tex", results_table_latex(results))
    return {"table": folder / "results_table.tex", **_paper_figures(Path(report_dir), folder)}


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
