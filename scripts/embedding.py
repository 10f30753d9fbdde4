"""What scripts/embed-template.py and scripts/embed-web.py share: files as
Swift raw string literals, and writing (or, with --check, comparing) the
generated Swift file."""
import os, sys


def literal(text):
    """A Swift raw multi-line string literal holding `text`."""
    assert '"""##' not in text
    return '##"""\n' + text + '\n"""##'


def write_or_check(out, lines):
    """Writes the generated file; with --check, exits 1 when it differs."""
    text = "\n".join(lines + ["]", ""])
    if "--check" in sys.argv:
        current = open(out).read() if os.path.exists(out) else ""
        sys.exit(0 if current == text else 1)
    with open(out, "w") as f:
        f.write(text)
