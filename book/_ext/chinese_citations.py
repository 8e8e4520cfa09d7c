"""Chinese author-year citations for sphinxcontrib-bibtex 2.7.

Registers three plugins that _config.yml selects by name:

- reference style ``author_year_zh``: {cite:p} renders as （Devlin 等，2019）, {cite:t} as
  Devlin 等（2019）, two authors as “Jain 与 Wallace”;
- label style ``author_year_zh``: bibliography labels read like the in-text citation;
- formatting style ``plain_zh``: pybtex's ``plain`` style (sorted by author, year, title)
  with that label style.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pybtex.plugin
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from sphinxcontrib.bibtex.plugin import register_plugin
from sphinxcontrib.bibtex.style.referencing import BracketStyle, PersonStyle
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle

STYLE_NAME = "author_year_zh"
FORMATTING_STYLE_NAME = "plain_zh"

# Full-width punctuation, as the book's prose uses next to Chinese text.
OPEN, CLOSE, COMMA, SEMICOLON = "（", "）", "，", "；"
TWO_AUTHORS_SEP = " 与 "
ET_AL = " 等"


def _brackets() -> BracketStyle:
    return BracketStyle(left=OPEN, right=CLOSE, sep=SEMICOLON)


def _persons() -> PersonStyle:
    # With `other` set, three or more authors render as the first author plus ET_AL.
    return PersonStyle(sep="、", sep2=TWO_AUTHORS_SEP, last_sep=TWO_AUTHORS_SEP, other=ET_AL)


@dataclass
class ChineseAuthorYearReferenceStyle(AuthorYearReferenceStyle):
    """Author-year references with Chinese brackets, separators and “等” for et al."""

    bracket_textual: BracketStyle = field(default_factory=_brackets)
    bracket_parenthetical: BracketStyle = field(default_factory=_brackets)
    bracket_author: BracketStyle = field(default_factory=_brackets)
    bracket_label: BracketStyle = field(default_factory=_brackets)
    bracket_year: BracketStyle = field(default_factory=_brackets)
    person: PersonStyle = field(default_factory=_persons)
    author_year_sep: str = COMMA
    text_reference_sep: str = ""
    pre_text_sep: str = ""
    post_text_sep: str = COMMA


def _last_names(person) -> str:
    return " ".join(Text.from_latex(name).render_as("text") for name in person.last_names)


def author_year_label(entry) -> str:
    """Return "Devlin 等，2019" for an entry: its first author or editor, and its year."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    if not persons:
        raise ValueError(
            f"bibliography entry {entry.key!r} has neither author nor editor; "
            "add one (an organisation goes in double braces, e.g. {{NVIDIA}})"
        )
    names = [_last_names(p) for p in persons]
    if len(names) == 1:
        authors = names[0]
    elif len(names) == 2:
        authors = names[0] + TWO_AUTHORS_SEP + names[1]
    else:
        authors = names[0] + ET_AL
    return f"{authors}{COMMA}{entry.fields['year']}"


class ChineseAuthorYearLabelStyle(BaseLabelStyle):
    """Bibliography labels that repeat the in-text author-year citation.

    Two entries with the same label get a, b, … after the year in the bibliography.
    NOTE: the in-text citation comes from the reference style and shows no such suffix.
    """

    def format_labels(self, sorted_entries):
        labels = [author_year_label(entry) for entry in sorted_entries]
        totals = Counter(labels)
        seen: Counter[str] = Counter()
        for label in labels:
            if totals[label] > 1:
                suffix = chr(ord("a") + seen[label])
                seen[label] += 1
                yield label + suffix
            else:
                yield label


class ChinesePlainStyle(PlainStyle):
    """pybtex ``plain`` entries (sorted by author, year, title) with author-year labels."""

    default_label_style = STYLE_NAME


def setup(app):
    pybtex.plugin.register_plugin("pybtex.style.labels", STYLE_NAME, ChineseAuthorYearLabelStyle)
    pybtex.plugin.register_plugin(
        "pybtex.style.formatting", FORMATTING_STYLE_NAME, ChinesePlainStyle
    )
    register_plugin(
        "sphinxcontrib.bibtex.style.referencing", STYLE_NAME, ChineseAuthorYearReferenceStyle
    )
    app.setup_extension("sphinxcontrib.bibtex")
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
