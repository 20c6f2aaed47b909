"""The meråpent agreement: versioned texts in central/terms/, and who accepted which version when.

A version is a pair of files `v<N>.nb.md` and `v<N>.en.md`; the highest N is the current agreement. When a new
version is added, every resident accepts it again before their next use of the pages (an acceptance is for
one version, never "the latest"). The texts are a small subset of Markdown (headings, paragraphs, lists,
**bold**) rendered here with everything escaped, so a text file can never inject markup into the page.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from pathlib import Path

from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.models import TermsAcceptance
from central.services import audit
from protocol import i18n

TERMS_DIR = Path(__file__).resolve().parent.parent / "terms"
RETENTION_PLACEHOLDER = "{retention_days}"

_FILE = re.compile(r"v(?P<n>[0-9]{1,4})\.(?P<lang>[a-z]{2})\.md")


class TermsError(LookupError):
    """No agreement text for a version (or no versions at all): a deployment error worth a clear message."""


@cache
def versions(directory: Path = TERMS_DIR) -> tuple[str, ...]:
    """The versions that have a text in every language, oldest first ("v1", "v2", ...)."""
    found: dict[int, set[str]] = {}
    for path in directory.glob("v*.md"):
        match = _FILE.fullmatch(path.name)
        if match:
            found.setdefault(int(match["n"]), set()).add(match["lang"])
    complete = sorted(n for n, langs in found.items() if set(i18n.COMPLETE_LANGUAGES) <= langs)
    return tuple(f"v{n}" for n in complete)


def current_version(directory: Path = TERMS_DIR) -> str:
    known = versions(directory)
    if not known:
        raise TermsError(f"no meråpent agreement in {directory} (expected v1.nb.md and v1.en.md)")
    return known[-1]


def terms_markdown(version: str, lang: str, directory: Path = TERMS_DIR) -> str:
    lang = lang if lang in i18n.COMPLETE_LANGUAGES else i18n.DEFAULT_LANGUAGE
    path = directory / f"{version}.{lang}.md"
    if version not in versions(directory) or not path.is_file():
        raise TermsError(f"the meråpent agreement has no version {version!r}")
    return path.read_text("utf-8")


def terms_html(version: str, lang: str, *, retention_days: int, directory: Path = TERMS_DIR) -> Markup:
    """The agreement as HTML for the page, with the configured event retention filled in."""
    source = terms_markdown(version, lang, directory).replace(RETENTION_PLACEHOLDER, str(retention_days))
    return render_markdown(source)


# CommonMark without raw HTML: the agreement files are plain Markdown; markup in them is shown as text.
_MARKDOWN = MarkdownIt("commonmark", {"html": False})


def render_markdown(source: str) -> Markup:
    """The agreement's Markdown as HTML; raw HTML in the file is escaped, never passed through."""
    return Markup(_MARKDOWN.render(source))  # noqa: S704 (markdown-it escapes text; html=False)


def acceptance(session: Session, person_id: int, version: str) -> TermsAcceptance | None:
    stmt = select(TermsAcceptance).where(
        TermsAcceptance.person_id == person_id, TermsAcceptance.version == version
    )
    return session.scalars(stmt).one_or_none()


def has_accepted(session: Session, person_id: int, version: str) -> bool:
    return acceptance(session, person_id, version) is not None


def accepted_any(session: Session, person_id: int) -> bool:
    """Whether the person ever accepted a version (then a pending one is a new version, not a first)."""
    stmt = select(TermsAcceptance.id).where(TermsAcceptance.person_id == person_id).limit(1)
    return session.execute(stmt).first() is not None


def accept(session: Session, person_id: int, version: str, now: datetime) -> TermsAcceptance:
    """Record that the person accepted `version` now (accepting again keeps the first time)."""
    found = acceptance(session, person_id, version)
    if found is not None:
        return found
    row = TermsAcceptance(person_id=person_id, version=version, accepted_at=now)
    session.add(row)
    session.flush()
    audit.record(session, f"resident:{person_id}", "accept_terms", "person", person_id, {"version": version})
    return row
