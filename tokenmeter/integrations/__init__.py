"""Integrations with agent frameworks.

Each integration is a module imported explicitly, so that ``import tokenmeter``
never imports a framework:

- :mod:`tokenmeter.integrations.tinyagent`: a TinyAgent (``tinyagent-py``) callback
  that makes each agent run and each tool call a scope.
"""
