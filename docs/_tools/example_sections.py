"""Griffe extension for the docs build: read a Google-style ``Example:`` section as ``Examples:``.

The code base writes ``Example:`` (the team's Args/Returns/Example rule); Griffe's Google parser
only knows ``Examples:`` and would render ``Example:`` as an admonition of plain Markdown, where
``>>>`` lines become nested block quotes and a doctest's output such as ``[0.03, 0.06]`` becomes a
broken reference link (a warning, so ``mkdocs build --strict`` fails). The source is not changed.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` section headers to ``Examples:`` in every docstring Griffe loads."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and not obj.is_alias:
            obj.docstring.value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
