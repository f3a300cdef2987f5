"""Parse failures and server refusals.

A ``ParseError`` is raised for anything the grammar does not accept; its ``reason_phrase`` is what a
server puts in the ``400`` it answers (RFC 3261 §21.4.1: "The request could not be understood due to
malformed syntax. The Reason-Phrase SHOULD identify the syntax problem in more detail").

A ``Refusal`` is attached to a message that parses but that a server must refuse with a specific code
(unknown URI scheme → 416, unknown SIP version → 505, CSeq method mismatch → 400, ...).
"""

from __future__ import annotations

from dataclasses import dataclass


class ParseError(ValueError):
    """Malformed SIP syntax. Names the header (or the start line) and the grammar rule that failed."""

    def __init__(
        self,
        problem: str,
        *,
        header: str | None = None,
        rule: str | None = None,
        line: str | None = None,
        column: int | None = None,
    ) -> None:
        self.problem = problem
        self.header = header
        self.rule = rule
        self.line = line
        self.column = column
        super().__init__(self.reason_phrase + (f" [rule {rule}]" if rule else ""))

    @property
    def reason_phrase(self) -> str:
        """A one-line, ASCII reason phrase for the 400 response."""
        where = f"Bad {self.header} header" if self.header else "Malformed message"
        text = f"{where}: {self.problem}"
        text = text.replace("§", "")  # "RFC 3261 20.42": the phrase stays ASCII for every client
        return "".join(c if " " <= c <= "~" else "?" for c in text)[:200]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A well-formed message that a server must refuse with ``status`` (reason phrase ``reason``)."""

    status: int
    reason: str
    rfc: str

    def __str__(self) -> str:
        return f"{self.status} {self.reason} ({self.rfc})"
