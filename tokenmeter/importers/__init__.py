"""Load usage recorded by other trackers into tokenmeter reports.

Import explicitly (``import tokenmeter.importers``); ``import tokenmeter`` does not
load this package.

- :func:`load_llm_ppopt`: an LLM-PPOpt ``TokenTracker`` JSON export as a
  :class:`tokenmeter.Report` (tree, breakdowns, cost).
- :func:`read_llm_ppopt`: the same export as a list of :class:`tokenmeter.CallRecord`.
- :func:`llm_ppopt_statistics`: a report's numbers in LLM-PPOpt's ``statistics``
  shape, to check an import or to keep feeding scripts that read that block.
"""

from __future__ import annotations

from .llm_ppopt import llm_ppopt_statistics, load_llm_ppopt, read_llm_ppopt

__all__ = ["llm_ppopt_statistics", "load_llm_ppopt", "read_llm_ppopt"]
