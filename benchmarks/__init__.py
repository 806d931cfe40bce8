"""chatrepl's benchmarks: ``python -m benchmarks.run`` (see benchmarks/README.md).

Not part of the package, the test suite or CI: timing belongs here, never in a test.
"""
