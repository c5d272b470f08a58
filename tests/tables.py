"""Markdown tables read back as cells, so that tests check what a cell says, not whether a
string turns up somewhere in a report (or in a line padded to one particular width)."""

from __future__ import annotations


def section(text: str, heading: str) -> str:
    """The lines under the first heading that begins with `heading` (e.g. "## Scaling over
    devices") up to the next heading of the same or a higher level; an AssertionError when there
    is no such heading."""
    lines = text.splitlines()
    at = [i for i, line in enumerate(lines) if line.startswith("#") and line.startswith(heading)]
    assert at, f"no heading {heading!r}"
    start = at[0] + 1
    level = len(heading) - len(heading.lstrip("#"))
    end = next(
        (
            i
            for i in range(start, len(lines))
            if lines[i].startswith("#") and len(lines[i]) - len(lines[i].lstrip("#")) <= level
        ),
        len(lines),
    )
    return "\n".join(lines[start:end])


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def tables(text: str) -> list[list[dict]]:
    """Every markdown table in `text`, in order, each as rows of {header: cell}."""
    found, block = [], []
    for line in text.splitlines() + [""]:
        if line.lstrip().startswith("|"):
            block.append(line)
            continue
        if len(block) >= 2:
            header = _cells(block[0])
            assert set("".join(_cells(block[1]))) <= set("-:"), f"no rule under the header: {block[1]!r}"
            found.append([dict(zip(header, _cells(row), strict=True)) for row in block[2:]])
        block = []
    return found


def table(text: str, heading: str | None = None) -> list[dict]:
    """The one table in `text` (under `heading` when given): an AssertionError when there are
    none or several, so a test never reads the wrong one."""
    found = tables(section(text, heading) if heading else text)
    assert len(found) == 1, f"{len(found)} tables{f' under {heading!r}' if heading else ''}"
    return found[0]
