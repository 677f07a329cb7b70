"""netra-nb's benchmarks: ``python -m bench`` (``make bench``); see ``bench/__main__.py`` and ``bench/RESULTS.md``.

Every figure is measured against the reference platform running in a process of its own
(:mod:`bench.refplatform`), so that the platform's CPU and the kit's are measured apart.
"""
