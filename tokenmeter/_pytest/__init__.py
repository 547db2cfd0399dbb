"""The pytest plugin proper, imported only once a run uses it (see ``pytest_tokenmeter``).

``settings`` (options and tolerances), ``results`` (per-test usage), ``budgets``
(markers and verdicts), ``baselines`` (the run on disk), ``tables`` (the terminal
summary), ``session`` (the run as a whole) and ``plugin`` (the hooks); ``_core`` is
the plugin's only way into tokenmeter's internals. Documentation: docs/pytest-plugin.md.
"""
