"""Sampling helper for ``benchmarks/mutation.sh``: draw mutmut mutants, then report on the sample.

Run by ``mutation.sh`` inside its scratch copy (the folder holding ``mutants/``), never by hand::

    python mutation_sample.py draw PACKAGE SAMPLE SEED UNTESTED [SAMPLE_FILE]
    python mutation_sample.py report

``draw`` generates the mutants the way ``mutmut run`` does before it runs any test (copy the
sources, write the mutated files and their ``.meta`` records), lists every mutant's name, and picks
``SAMPLE`` of them with ``random.Random(SEED).sample`` from the sorted names, so the same seed on an
unchanged package draws the same mutants. With ``UNTESTED=1`` it draws only from the mutants mutmut
has no result for yet (to extend an earlier partial run); with a ``SAMPLE_FILE`` it takes exactly the
names listed there (to re-run a sample after new tests). The names go to ``sample.txt``.

``report`` reads mutmut's results for the sampled names and prints the kill rate of the sample with
its 95 % Wilson interval. Every sampled mutant counts in the denominator: a mutant that survived,
timed out, or that no selected test reaches is not a killed one.
"""

import random
import sys
from pathlib import Path

from mutmut.__main__ import (
    SourceFileMutationData,
    copy_also_copy_files,
    copy_src_dir,
    create_mutants,
    setup_source_paths,
    walk_mutatable_files,
)
from mutmut.stats import status_by_exit_code
from scipy.stats import binomtest


def exit_codes():
    """Return ``{mutant name: mutmut exit code or None (not tested yet)}`` for the mutated files."""
    codes = {}
    for path in walk_mutatable_files():
        data = SourceFileMutationData(path=path)
        data.load()
        codes.update(data.exit_code_by_key)
    return codes


def draw(package, sample, seed, untested, sample_file=""):
    """Generate the mutants (no tests run), pick the sample and write its names to ``sample.txt``."""
    Path("mutants").mkdir(exist_ok=True)
    # The same steps, in the same order, as the start of `mutmut run`.
    copy_src_dir()
    copy_also_copy_files()
    setup_source_paths()
    create_mutants(1)
    codes = exit_codes()
    names = sorted(codes)
    not_tested = [name for name in names if codes[name] is None]
    if sample_file:
        chosen = Path(sample_file).read_text().split()
        unknown = sorted(set(chosen) - set(names))
        if unknown:
            sys.exit(
                f"SAMPLE_FILE names {len(unknown)} mutants deepimaging/{package} does not have, e.g. {unknown[:3]}"
            )
        how = f"the {len(chosen)} listed in {sample_file}"
    else:
        pool = not_tested if untested else names
        if not 0 < sample <= len(pool):
            sys.exit(f"SAMPLE must be between 1 and {len(pool)} (the mutants to draw from); got {sample}")
        chosen = sorted(random.Random(seed).sample(pool, sample))
        how = f"{sample} drawn with seed {seed}" + (" from those not yet tested" if untested else "")
    Path("sample.txt").write_text("\n".join(chosen) + "\n")
    Path("package_size.txt").write_text(f"{len(names)}\n")
    print(f"deepimaging/{package}: {len(names)} mutants ({len(not_tested)} not yet tested); testing {how}")


def report():
    """Print the sample's non-killed mutants, its counts by status and its kill rate with a Wilson interval."""
    chosen = Path("sample.txt").read_text().split()
    codes = exit_codes()
    counts = {}
    for name in chosen:
        status = "not checked" if codes[name] is None else status_by_exit_code[codes[name]]
        counts[status] = counts.get(status, 0) + 1
        if status != "killed":
            print(f"    {name}: {status}")
    print(dict(sorted(counts.items())))
    killed = counts.get("killed", 0)
    # Wilson's interval rather than p +- 1.96 sd: it stays inside [0, 1] and keeps its coverage
    # when the rate is near 100 %, which is where a good suite's kill rate is.
    interval = binomtest(killed, len(chosen)).proportion_ci(confidence_level=0.95, method="wilson")
    total = int(Path("package_size.txt").read_text())
    print(
        f"sample kill rate: {killed} of {len(chosen)} = {killed / len(chosen):.1%}, "
        f"95% Wilson interval {interval.low:.1%} to {interval.high:.1%}; the package has {total} mutants"
    )


if __name__ == "__main__":
    if sys.argv[1] == "draw":
        draw(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1", *sys.argv[6:7])
    else:
        report()
