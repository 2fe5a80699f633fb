"""Plushify's benchmarks against its peers; run with ``python -m benchmarks`` (``nox -s bench``).

Every comparison is measured in the same run and reported as a ratio; absolute times on a shared
machine are noise. Results are printed as tables and written as JSON under ``bench-results/``.
"""
