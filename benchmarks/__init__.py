"""rnclassifier's benchmarks (issue #10): one command measures extraction, scoring, training,
model quality against the generator's oracle, scaling and the Dask path, each against a baseline
measured in the same run, and writes benchmarks/RESULTS.md.

    .venv/bin/python -m benchmarks            # the full run, about an hour on 2 cores
    .venv/bin/python -m benchmarks --quick    # a few minutes; the test suite's smoke test
"""
