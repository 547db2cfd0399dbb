"""Helpers shared by the test files: mock LiteLLM responses, hypothesis strategies, subprocess runs.

Import them as ``from support import responses`` (pytest puts ``tests/`` on ``sys.path``).
"""
