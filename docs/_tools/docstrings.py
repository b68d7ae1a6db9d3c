"""Griffe extension for the docs build: read the code base's docstrings as Markdown.

Two conventions of the code base that Griffe's Google parser does not know, adapted at build time
(the source is not changed):

- ``Example:`` (the team's Args/Returns/Example rule) is read as ``Examples:``. Griffe only knows
  the plural and would render ``Example:`` as an admonition of plain Markdown, where ``>>>`` lines
  become nested block quotes and a doctest's output such as ``[0.03, 0.06]`` becomes a broken
  reference link (a warning, so ``mkdocs build --strict`` fails).
- Sphinx roles (``:class:`~emotrace.inference.Recognizer```, ``:func:`read_image```) become inline
  code showing the name as Sphinx would (the last part after ``~``), instead of raw role text.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj):`(~?)([^`]+)`")


def _role_as_code(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def markdown(text: str) -> str:
    """The docstring ``text`` with ``Example:`` sections renamed and Sphinx roles as code.

    Example:
        >>> markdown("See :class:`~emotrace.inference.Recognizer`.")
        'See `Recognizer`.'
    """
    return _ROLE.sub(_role_as_code, _EXAMPLE.sub(r"\1Examples:", text))


class DocstringMarkup(griffe.Extension):
    """Apply :func:`markdown` to every docstring Griffe loads."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and not obj.is_alias:
            obj.docstring.value = markdown(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """The root package itself (``emotrace/__init__.py``) is not passed to ``on_object``."""
        self.on_object(obj=pkg)
