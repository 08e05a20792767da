"""rnclassifier's benchmarks (issue #10): one command measures extraction, scoring, training,
model quality against the generator's oracle, scaling and the Dask path, each against a baseline
measured in the same run, and writes benchmarks/RESULTS.md.

    .venv/bin/python -m benchmarks            # the full run, ~45 min on 2 shared cores
    .venv/bin/python -m benchmarks --quick    # small sizes; the test suite's smoke test
"""
