"""Griffe extension: render doctest blocks of Keras-style docstrings as code.

Keras docstrings put `>>>` examples unindented after `Example:`; Markdown
would read them as block quotes (and `['a']` outputs as link references).
This wraps each run of doctest lines, up to the next blank line, in a
`pycon` fence, leaving text already inside a fence alone.
"""

import griffe


def fence_doctests(text):
    """Returns `text` with every doctest block wrapped in a ```pycon fence."""
    out = []
    in_fence = in_doctest = False
    for line in text.splitlines():
        stripped = line.strip()
        if in_doctest and not stripped:
            out.append("```")
            in_doctest = False
        if not in_doctest and stripped.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and not in_doctest and stripped.startswith(">>>"):
            out.append("```pycon")
            in_doctest = True
        out.append(line)
    if in_doctest:
        out.append("```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
