"""Every python block of the docs and the README runs, offline, in order per page.

Blocks of one page share a namespace and the default meter, like a doctest
session; each page starts with ``tm.reset()`` in a fresh temporary directory
(where ``tests/data`` is the repository's, so a page can use its sample files).
A block preceded by ``<!-- no-run -->`` is skipped. A ```text block preceded by
``<!-- output -->`` is what the python block before it must print, exactly.
Each block is one test named ``page:line``: when it fails, the page and line of
the fence say where; run alone, a block first replays the blocks before it.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import litellm
import pytest

import tokenmeter as tm
from tokenmeter._meter import DEFAULT_METER
from tokenmeter._scope import detach_child_locked

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]

NO_RUN = "<!-- no-run -->"
OUTPUT = "<!-- output -->"
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\s`{]*)")


@dataclass(frozen=True)
class Block:
    """A fenced python block of a page, and what it must print (if the page says)."""

    page: Path
    index: int
    line: int
    code: str
    output: str | None = None

    @property
    def name(self) -> str:
        """``docs/page.md:LINE``, the place to look."""
        return f"{self.page.relative_to(ROOT).as_posix()}:{self.line}"


def parse(text: str, page: Path = ROOT / "page.md") -> list[Block]:
    """The runnable python blocks of a markdown text, with their expected output."""
    lines = text.splitlines()
    blocks: list[Block] = []
    previous = ""  # the last non-blank line before the current one
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"].lower()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        i += 1  # the closing fence
        code = "\n".join(body) + "\n"
        if previous == OUTPUT:
            if not blocks or blocks[-1].output is not None:
                raise ValueError(f"{page.name}:{start + 1}: {OUTPUT} follows no python block")
            last = blocks[-1]
            blocks[-1] = Block(last.page, last.index, last.line, last.code, code)
        elif info in ("python", "py") and previous != NO_RUN:
            blocks.append(Block(page, len(blocks), start + 1, code))
        previous = lines[min(i, len(lines)) - 1].strip()
    return blocks


BLOCKS = {page: parse(page.read_text(encoding="utf-8"), page) for page in PAGES}
ALL_BLOCKS = [b for blocks in BLOCKS.values() for b in blocks]


@dataclass
class PageSession:
    """The namespace and working directory one page's blocks share."""

    workdir: Path
    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "__main__"})
    next_index: int = 0


_sessions: dict[Path, PageSession] = {}


def _restore_globals() -> None:
    """Put back every global setting a page may change, and give the default meter no scopes."""
    tm.instrument()
    tm.propagate_to_threads(True)
    tm.request_stream_usage(True)
    tm.clear_prices()
    litellm.cache = None
    tm.reset()
    # reset() zeroes usage but keeps the nodes, and with them any budget a page set
    # on them: a page must not inherit another page's `max_calls` on "pipeline".
    with DEFAULT_METER._lock:
        for name in list(DEFAULT_METER.root.children):
            detach_child_locked(DEFAULT_METER.root, name)


@pytest.fixture(autouse=True)
def _clean_meter() -> None:
    """Overrides conftest's: a page's blocks share the meter; each page starts clean instead."""


@pytest.fixture(scope="module", autouse=True)
def _leave_clean() -> Iterator[None]:
    """After the docs, the next test module finds the settings as they were."""
    yield
    _restore_globals()


def _workdir(factory: pytest.TempPathFactory, page: Path) -> Path:
    """A fresh directory for a page, with the repository's sample data at ``tests/data``."""
    workdir = factory.mktemp(page.stem)
    (workdir / "tests").mkdir()
    (workdir / "tests" / "data").symlink_to(ROOT / "tests" / "data", target_is_directory=True)
    return workdir


def _execute(block: Block, session: PageSession) -> str:
    """Run one block in the page's namespace; return what it printed."""
    # Pad with blank lines so a traceback's line numbers are the page's own.
    source = "\n" * block.line + block.code
    code = compile(source, str(block.page), "exec")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code, session.namespace)
    return out.getvalue()


def _strip(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[b.name for b in ALL_BLOCKS])
def test_doc_block(
    block: Block, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The block runs after the page's earlier blocks and prints what the page shows."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    session = _sessions.get(block.page)
    if session is None or session.next_index != block.index:
        _restore_globals()
        session = PageSession(_workdir(tmp_path_factory, block.page))
        _sessions[block.page] = session
        monkeypatch.chdir(session.workdir)
        for earlier in BLOCKS[block.page][: block.index]:
            try:
                _execute(earlier, session)
            except BaseException as e:
                pytest.fail(f"an earlier block failed: {earlier.name}: {e!r}", pytrace=False)
            session.next_index = earlier.index + 1
    monkeypatch.chdir(session.workdir)
    printed = _execute(block, session)
    if block.output is not None:
        assert _strip(printed) == _strip(block.output), f"{block.name} printed otherwise"
    session.next_index = block.index + 1


def test_pages_have_blocks() -> None:
    """The collector finds the python blocks of the getting-started page and the README."""
    assert BLOCKS[ROOT / "docs" / "index.md"]
    assert BLOCKS[ROOT / "README.md"]


def test_parse_markers() -> None:
    """no-run skips a block; output attaches to the block before; other languages are not run."""
    text = (
        "# t\n\n```python\nprint(1)\n```\n\n<!-- output -->\n```text\n1\n```\n\n"
        "<!-- no-run -->\n```python\nimport network\n```\n\n```sh\nls\n```\n\n"
        "- item\n\n    ```python\n    x = 2\n    ```\n"
    )
    blocks = parse(text)
    assert [(b.line, b.code, b.output) for b in blocks] == [
        (3, "print(1)\n", "1\n"),
        (23, "x = 2\n", None),
    ]
