"""TinyAgent (``tinyagent-py``): each agent run, and each tool call, is a tokenmeter scope.

::

    from tinyagent import TinyAgent
    from tokenmeter.integrations.tinyagent import TokenmeterCallback

    agent = TinyAgent(model="gpt-4o-mini")
    agent.add_callback(TokenmeterCallback("main_agent"))

TinyAgent makes its LLM calls with ``litellm.acompletion``, which tokenmeter
attributes by itself; this callback only tells it *where* each call belongs.
On ``agent_start`` it enters a scope for the run, on ``tool_start`` one for the
tool call (named after the tool), and leaves them on ``tool_end`` and
``agent_end``. A sub-agent used as a tool (``agent.as_tool()`` or
``create_subagent_tool``) therefore runs inside the tool's scope, under the
main agent's, and the report is a tree::

    main_agent                  the main agent's own calls
    └── research                the tool call: the sub-agent's calls
        └── researcher          (only if the sub-agent has its own callback)

The scope state lives in a ContextVar, so concurrent runs (two agents in
``asyncio.gather``, parallel tool calls) never see each other's scopes.

Importing this module does not import ``tinyagent`` or ``litellm``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from tokenmeter._errors import internal_errors_swallowed
from tokenmeter._frame import Frame
from tokenmeter._meter import Meter
from tokenmeter._scope import CURRENT
from tokenmeter._track import Track, track

__all__ = ["CONTROL_TOOLS", "TokenmeterCallback"]

#: TinyAgent's built-in loop-control tools: they make no LLM call and get no scope.
CONTROL_TOOLS = frozenset({"final_answer", "ask_question", "notify_user"})


class _Open:
    """One scope (or skipped scope) this integration opened in the current context."""

    __slots__ = ("agent", "callback", "frame", "kind", "tool_call", "track")

    def __init__(
        self,
        callback: TokenmeterCallback,
        kind: str,
        agent: Any,
        tool_call: Any,
        track: Track | None,
        frame: Frame | None,
    ) -> None:
        self.callback = callback
        self.kind = kind  # "agent", "tool", or "nested" (a sub-agent run inside our tool scope)
        self.agent = agent
        self.tool_call = tool_call
        self.track = track
        self.frame = frame  # the frame current once opened: the entry is live while it is


#: The scopes opened by TinyAgent callbacks in this context, innermost last. Each
#: asyncio task has its own copy, so concurrent runs never see each other's entries.
_OPEN: ContextVar[tuple[_Open, ...]] = ContextVar("tokenmeter_tinyagent_open", default=())


class TokenmeterCallback:
    """A TinyAgent callback: a scope per agent run and per tool call.

    Add it with ``agent.add_callback(TokenmeterCallback("main_agent"))``.

    Args:
        name: the name of the agent's scope; None names it after the agent's
            class (``"TinyAgent"``).
        meter: the meter to record on; None uses the current scope's meter
            (the default meter outside any scope).
        tools: open a scope per tool call, named after the tool (TinyAgent's
            ``final_answer``, ``ask_question`` and ``notify_user`` excepted).
            A sub-agent used as a tool then shows under the tool's scope.
        **track_options: keyword arguments of :func:`tokenmeter.track` for the
            agent's scope: ``module=``, ``operation=``, budgets (``max_cost_usd=``,
            ``max_tokens=``, ``max_calls=``, ``on_exceed=``) and attributes.

    The same callback object may be shared by a main agent and its sub-agents
    (``SubagentConfig.from_parent_agent`` copies it to them): a sub-agent run
    started inside a tool scope that this callback opened is recorded on that
    tool scope rather than on a second scope of the same name. Give a sub-agent
    its own ``TokenmeterCallback("researcher")`` to see it as a scope of its own
    under the tool.

    A run that never reaches ``agent_end`` (TinyAgent sends it even after an
    error, but not when the run is cancelled, e.g. by a timeout) leaves its
    scope current in the coroutine that awaited ``agent.run()``, until the next
    run of the same agent, the end of an enclosing ``tm.track`` block, or
    :meth:`unwind`. A run in its own asyncio task leaves nothing behind.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        meter: Meter | None = None,
        tools: bool = True,
        **track_options: Any,
    ) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"name must be a non-empty string or None, got {name!r}")
        self.name = name
        self.meter = meter
        self.tools = bool(tools)
        self._options: Mapping[str, Any] = dict(track_options)
        self._new_track(name or "agent", self._options)  # bad options raise here, not mid-run

    def __repr__(self) -> str:
        return f"<tokenmeter TinyAgent callback {self.name!r}>"

    def __call__(self, event_name: str, agent: Any, *args: Any, **kwargs: Any) -> None:
        """Handle one TinyAgent event: ``cb(event_name, agent, **data)``.

        Synchronous on purpose: TinyAgent then calls it in the coroutine that
        runs the agent, so the ContextVar it sets is the one the agent's LLM calls
        read. ``llm_start`` (data as a positional dict) and other events are ignored.
        """
        handler = _HANDLERS.get(event_name)
        if handler is None:
            return
        with internal_errors_swallowed(f"TinyAgent callback ({event_name})"):
            handler(self, agent, kwargs)

    def unwind(self) -> None:
        """Leave every scope this callback opened in the current context (and any inside them).

        For code that awaited a run that was cancelled before ``agent_end``.
        """
        stack = _live(_OPEN.get())
        for i, entry in enumerate(stack):
            if entry.callback is self:
                stack = _close(stack, i)
                break
        _OPEN.set(stack)

    # -- internals --------------------------------------------------------------------

    def _new_track(self, name: str, options: Mapping[str, Any]) -> Track:
        if self.meter is not None:
            return self.meter.track(name, **options)
        return track(name, **options)

    def _agent_scope_name(self, agent: Any) -> str:
        if self.name is not None:
            return self.name
        own = getattr(agent, "name", None)
        return own if isinstance(own, str) and own else type(agent).__name__

    def _agent_start(self, agent: Any, data: Mapping[str, Any]) -> None:
        stack = _live(_OPEN.get())
        top = stack[-1] if stack else None
        if top is not None and top.callback is self and top.agent is agent and top.kind != "tool":
            # A run of this agent that never sent agent_end (cancelled): close it first.
            stack = _close(stack, len(stack) - 1)
            top = stack[-1] if stack else None
        if top is not None and top.callback is self and top.kind == "tool":
            entry = _Open(self, "nested", agent, None, None, top.frame)
        else:
            t = self._new_track(self._agent_scope_name(agent), self._options)
            t.__enter__()
            entry = _Open(self, "agent", agent, None, t, CURRENT.get())
        _OPEN.set((*stack, entry))

    def _agent_end(self, agent: Any, data: Mapping[str, Any]) -> None:
        stack = _live(_OPEN.get())
        for i in range(len(stack) - 1, -1, -1):
            e = stack[i]
            if e.callback is self and e.agent is agent and e.kind != "tool":
                stack = _close(stack, i)
                break
        _OPEN.set(stack)

    def _tool_start(self, agent: Any, data: Mapping[str, Any]) -> None:
        if not self.tools:
            return
        tool_call = data.get("tool_call")
        name = _tool_name(tool_call)
        if name is None or name in CONTROL_TOOLS:
            return
        stack = _live(_OPEN.get())
        t = self._new_track(name, {})
        t.__enter__()
        _OPEN.set((*stack, _Open(self, "tool", agent, tool_call, t, CURRENT.get())))

    def _tool_end(self, agent: Any, data: Mapping[str, Any]) -> None:
        tool_call = data.get("tool_call")
        if tool_call is None:
            return
        stack = _live(_OPEN.get())
        for i in range(len(stack) - 1, -1, -1):
            e = stack[i]
            if e.callback is self and e.kind == "tool" and e.tool_call is tool_call:
                stack = _close(stack, i)
                break
        _OPEN.set(stack)


_HANDLERS: dict[str, Callable[[TokenmeterCallback, Any, Mapping[str, Any]], None]] = {
    "agent_start": TokenmeterCallback._agent_start,
    "agent_end": TokenmeterCallback._agent_end,
    "tool_start": TokenmeterCallback._tool_start,
    "tool_end": TokenmeterCallback._tool_end,
}


def _live(stack: tuple[_Open, ...]) -> tuple[_Open, ...]:
    """The entries whose frame is still on the current scope chain.

    An entry drops off when code around it restored an older frame (the end of
    an enclosing ``with tm.track``) after its run was cancelled.
    """
    if not stack:
        return stack
    chain: set[int] = set()
    frame = CURRENT.get()
    while frame is not None:
        chain.add(id(frame))
        frame = frame.prev
    live = tuple(e for e in stack if id(e.frame) in chain)
    return live


def _close(stack: tuple[_Open, ...], index: int) -> tuple[_Open, ...]:
    """Leave the scopes of ``stack[index:]``, innermost first; return what stays open."""
    for entry in reversed(stack[index:]):
        if entry.track is not None:
            entry.track.__exit__(None, None, None)
    return stack[:index]


def _tool_name(tool_call: Any) -> str | None:
    """The tool's name from a LiteLLM tool call object (or its dict form)."""
    function = (
        tool_call.get("function")
        if isinstance(tool_call, Mapping)
        else getattr(tool_call, "function", None)
    )
    name = (
        function.get("name") if isinstance(function, Mapping) else getattr(function, "name", None)
    )
    return name if isinstance(name, str) and name else None
