#!/usr/bin/env bash
# Mutation testing of one deepimaging subpackage with mutmut: do its tests catch small deliberate bugs?
#
#   bash benchmarks/mutation.sh metrics        # or physics, interpret, study, data
#   JOBS=2 bash benchmarks/mutation.sh physics # mutants tested at once (default 1: the cores are shared)
#
# mutmut (3.x) rather than cosmic-ray: one `mutmut run` with its configuration in a [tool.mutmut]
# table, no session database or distributor to set up; it records which tests reach each function and
# runs only those against that function's mutants, and it keeps its results between runs, so a
# second run after new tests re-tests only what changed. cosmic-ray mutates more operator kinds but
# runs the whole selected suite per mutant, which the shared CPUs here cannot afford.
#
# The run happens in a scratch copy of the working tree ($MUTATION_DIR/<package>, default
# /tmp/deepimaging-mutation), so the repository gets no mutants/ folder and the project's
# pyproject.toml stays as it is: the [tool.mutmut] table is added to the copy's. Each package is
# tested with the test files that specify it (TESTS below), -x so a mutant stops at its first failure.
# At the end it prints mutmut's per-mutant results (survivors only) and the kill rate:
#   killed / (killed + survived + timeout + suspicious); "no tests" mutants are listed apart
#   (code no selected test reaches).
# Look at a survivor with `cd $MUTATION_DIR/<package> && mutmut show <name>`.
#
# Sampling, to judge a package in minutes instead of hours:
#   SAMPLE=60 bash benchmarks/mutation.sh physics            # a seeded random sample of 60 mutants
#   SAMPLE=60 SEED=7 bash benchmarks/mutation.sh physics     # another sample (SEED defaults to 0)
#   SAMPLE=60 UNTESTED=1 bash benchmarks/mutation.sh metrics # drawn from mutants with no result yet
#   SAMPLE_FILE=names.txt bash benchmarks/mutation.sh metrics  # exactly these mutants (a re-run)
# benchmarks/mutation_sample.py generates the mutants without running tests, draws the sample from
# their sorted names with random.Random(SEED) (same seed, unchanged package: same mutants) and writes
# it to $work/sample.txt; only those mutants are run (mutmut still traces the selected tests once to
# learn which tests reach which function). The report is the sample's kill rate with its 95% Wilson
# interval, every sampled mutant in the denominator, and the number of mutants in the package.
#
# Time: a mutant costs about 1 to 3 s (most of it pytest start-up and torch imports), so a whole
# package (1,100 to 2,900 mutants) takes one to two hours on these 2 cores with JOBS=1; a free 8-core
# machine with JOBS=8 should take 10 to 20 minutes. Hence the sampling above.
# Too slow for CI: run it by hand before a release or after changing a package's tests. Re-running only
# the survivors after adding tests: `mutmut run $(mutmut results | grep survived | cut -d: -f1)` in $work.
# Quicker, one pytest per survivor against only the new file (mutmut's trampoline reads the variable):
#   cd $work/mutants && cp <repo>/tests/test_mutants_<package>.py tests/ &&
#   MUTANT_UNDER_TEST=<name> python -m pytest tests/test_mutants_<package>.py -q -p no:cacheprovider
# Sampled runs on this machine (benchmarks/mutation_results.md): 100 mutants of metrics in 70 to 85 s,
# 100 of data in about 2 min, 60 of physics in 6.5 min and of interpret in about 1 min, 60 of study in
# 44 min under heavy load (its mutants run training tests).
set -euo pipefail

package="${1:?usage: bash benchmarks/mutation.sh metrics|physics|interpret|study|data}"
case "$package" in
  metrics) tests="tests/test_metrics.py tests/test_oracles.py tests/test_hostile_metrics.py" ;;
  # physics: the module-length test reads the source files, which mutmut makes thousands of lines long
  # (every mutant is a copy of its function); it calls no physics function, so it kills no mutant.
  physics) tests="tests/test_physics.py tests/test_quantization_oracle.py
    --deselect=tests/test_physics.py::test_no_physics_module_is_longer_than_a_student_reads_in_one_pass" ;;
  interpret) tests="tests/test_interpret_attribution.py tests/test_interpret_features.py tests/test_oracles.py" ;;
  study) tests="tests/test_study.py tests/test_study_oracles.py tests/test_study_honest.py tests/test_weights.py tests/test_executors.py" ;;
  # data: the loaders' and downloads' files, the simulator's and dataset's tests in test_foundation.py,
  # the hostile inputs of test_hostile_data.py and the BCCD location tests. Two tests are left out:
  # test_foundation.py's page-fault test measures the process's page faults (physics memory, not data),
  # which mutmut's tracing and forking change, so it failed the tracing run; test_hostile_properties.py
  # draws its hostile values at random (Hypothesis, not derandomized), so a mutant's verdict would
  # depend on the run.
  data) tests="tests/test_data_loaders.py tests/test_downloads.py tests/test_foundation.py
    --deselect=tests/test_foundation.py::test_keep_freed_memory_reuses_freed_blocks_instead_of_faulting_them_in_again
    tests/test_hostile_data.py tests/test_bccd_location.py" ;;
  *) echo "unknown package '$package'; expected one of metrics, physics, interpret, study, data" >&2; exit 2 ;;
esac
repo="$(cd "$(dirname "$0")/.." && pwd)"
# The tests written to kill a package's survivors join its selection.
if [ -f "$repo/tests/test_mutants_$package.py" ]; then
  tests="$tests tests/test_mutants_$package.py"
fi
TESTS="${TESTS:-$tests}"
JOBS="${JOBS:-1}"
# mutmut forks each mutant's worker from its main process by default, after running the tests there to
# learn which reach what. The study's tests start local jobs (processes) that outlive their test; the
# main process then reaps one of those as if it were a worker and stops with a KeyError. "forkserver"
# keeps pytest out of the main process, so only workers are its children.
if [ "$package" = study ]; then isolation=forkserver; else isolation=fork; fi
ISOLATION="${ISOLATION:-$isolation}"
if [ -n "${SAMPLE_FILE:-}" ]; then SAMPLE_FILE="$(realpath "$SAMPLE_FILE")"; fi

python="${PYTHON:-$(command -v python)}"
if ! "$python" -c "import mutmut" 2>/dev/null; then
  echo "mutmut is not installed in $python; pip install 'mutmut==3.8.1'" >&2
  exit 2
fi

work="${MUTATION_DIR:-/tmp/deepimaging-mutation}/$package"
mkdir -p "$work"
# The tracked and untracked-but-not-ignored files, as they are now (mutmut's own results stay).
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$work"

toml_list() { printf '"%s", ' "$@" | sed 's/, $//'; }
# shellcheck disable=SC2086
cat >>"$work/pyproject.toml" <<EOF

[tool.mutmut]
source_paths = ["deepimaging/"]
only_mutate = ["deepimaging/$package/*"]
pytest_add_cli_args_test_selection = [$(toml_list $TESTS)]
pytest_add_cli_args = ["-x", "-q", "-p", "no:cacheprovider"]
process_isolation = "$ISOLATION"
EOF

cd "$work"
export OMP_NUM_THREADS=1 DEEPIMAGING_SMOKE=1 MPLBACKEND=Agg
# The tests find the real BCCD copy relative to the repository (../shared/data/BCCD), which the scratch
# copy does not have beside it: without this they skip, and every BCCD mutant "survives".
if [ -z "${DEEPIMAGING_BCCD:-}" ] && [ -d "$repo/../shared/data/BCCD" ]; then
  export DEEPIMAGING_BCCD="$(cd "$repo/../shared/data/BCCD" && pwd)"
fi
start=$(date +%s)
if [ -n "${SAMPLE:-}${SAMPLE_FILE:-}" ]; then
  # mutmut names every file it copies: keep that in a log, show the summary line (or the log on failure).
  "$python" "$repo/benchmarks/mutation_sample.py" draw "$package" "${SAMPLE:-0}" "${SEED:-0}" "${UNTESTED:-0}" \
    ${SAMPLE_FILE:+"$SAMPLE_FILE"} >mutmut-draw.log 2>&1 || { cat mutmut-draw.log; exit 1; }
  tail -n 1 mutmut-draw.log
  # shellcheck disable=SC2046
  "$python" -m mutmut run --max-children "$JOBS" $(cat sample.txt) >mutmut-run.log 2>&1 || true
  tail -n 3 mutmut-run.log
  echo "mutmut run took $(( $(date +%s) - start )) s for the $(wc -l <sample.txt) sampled mutants of deepimaging/$package"
  "$python" "$repo/benchmarks/mutation_sample.py" report
  exit 0
fi
"$python" -m mutmut run --max-children "$JOBS" || true
echo "mutmut run took $(( $(date +%s) - start )) s for deepimaging/$package"
"$python" -m mutmut results || true
"$python" -m mutmut export-cicd-stats >/dev/null
"$python" - <<'EOF'
import json

stats = json.load(open("mutants/mutmut-cicd-stats.json"))
caught = stats["killed"]
judged = caught + stats["survived"] + stats.get("timeout", 0) + stats.get("suspicious", 0)
print({k: v for k, v in stats.items() if v})
print(f"kill rate: {caught} of {judged} mutants reached by the tests = {caught / max(judged, 1):.1%}; "
      f"{stats.get('no_tests', 0)} mutants in code no selected test reaches")
EOF
