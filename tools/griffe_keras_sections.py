"""Keras docstring sections as real sections on the API pages.

A griffe extension, loaded by mkdocstrings (mkdocs.yml, `extensions:`).
The layers' docstrings are plain Keras docstrings, as `help()` shows them,
with the sections Keras writes that the Google style does not know:
`Call arguments:`, `Input shape:` and `Output shape:`. Griffe's Google
parser reads such an unknown `Title:` block as an admonition, which the site
renders as one run-on paragraph in a box. On the site only, this extension
turns

- `Call arguments:` into a table like `Parameters`, each argument with the
  type and default of the class's `call` signature;
- `Input shape:`, `Output shape:` and `References:` into titled sections
  whose body (a list or a paragraph) renders as Markdown;
- a line `Example:` or `Examples:` before an example into the same kind of
  section title.

The docstrings themselves are not changed.
"""

import re
import textwrap
from typing import Any

import griffe

#: Admonition titles that become plain titled sections.
TITLED = ("Input shape", "Output shape", "References")
CALL_ARGUMENTS = "Call arguments"
_EXAMPLE_LINE = re.compile(r"^(Examples?):[ \t]*$", re.M)


def _title(title: str) -> str:
    """A section title as mkdocstrings writes `Parameters:`."""
    return f'<p><span class="doc-section-title">{title}:</span></p>\n\n'


class KerasDocstring(griffe.Docstring):
    """A docstring whose Keras sections parse into proper sections."""

    def parse(self, parser: Any = None, **options: Any) -> list:
        sections = super().parse(parser, **options)
        return [self._convert(s, parser, options) for s in sections]

    def _convert(self, section: Any, parser: Any, options: dict) -> Any:
        kind = section.kind
        if kind is griffe.DocstringSectionKind.text:
            value = _EXAMPLE_LINE.sub(
                lambda m: _title(m.group(1)).strip(), section.value
            )
            return griffe.DocstringSectionText(value, title=section.title)
        if kind is not griffe.DocstringSectionKind.admonition:
            return section
        text = section.value.description
        if section.title in TITLED:
            return griffe.DocstringSectionText(_title(section.title) + text)
        if section.title == CALL_ARGUMENTS:
            return self._call_arguments(text, parser, options)
        return section

    def _call_arguments(self, text: str, parser: Any, options: dict) -> Any:
        """`Call arguments:` parsed as Google `Args:` of the `call` method,
        so that the types and defaults come from its signature."""
        owner = self.parent
        call = None
        if isinstance(owner, griffe.Class):
            call = owner.all_members.get("call")
        # A summary line first: the parser reads sections after it only.
        args = griffe.Docstring(
            "Call arguments.\n\nArgs:\n" + textwrap.indent(text, "    "),
            lineno=self.lineno,
            endlineno=self.endlineno,
            parent=call if call is not None else owner,
        )
        options = options or self.parser_options
        for parsed in args.parse(parser or self.parser, **options):
            if parsed.kind is griffe.DocstringSectionKind.parameters:
                return griffe.DocstringSectionParameters(
                    parsed.value, title=f"{CALL_ARGUMENTS}:"
                )
        return griffe.DocstringSectionText(_title(CALL_ARGUMENTS) + text)


class KerasSections(griffe.Extension):
    """Gives every docstring of the loaded package the Keras sections."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is not None and type(docstring) is griffe.Docstring:
            docstring.__class__ = KerasDocstring
