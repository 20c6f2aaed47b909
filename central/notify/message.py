"""What the caretaker reads: the e-mail and the webhook body for one alarm notification. Pure, no I/O.

Bokmål first with English below, every word from the catalogue (console-notify.po). A notification names the
site, the door, the kind of alarm in words, when it was raised in the site's local time, and the console's
alarm page; never a card, a PIN or a person (the alarm's comment, written at the door or by a caretaker,
is left out for the same reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any
from zoneinfo import ZoneInfo

from central.webhooks.payload import rfc3339
from protocol.i18n import catalogue, text

CONSOLE_ALARMS_PATH = "/drift/alarmer"
LANGUAGES = ("nb", "en")
_DATE_FORMATS = {"nb": "%d.%m.%Y", "en": "%Y-%m-%d"}
RULE = "-" * 40


@dataclass(frozen=True)
class AlarmFacts:
    """A notification's alarm as the message tells it (names, not ids, except for the receiver's use)."""

    alarm_id: int
    kind: str
    severity: str
    site: str
    site_name: str
    timezone: str
    door: str | None
    door_name: str | None
    raised_at: datetime
    cleared_at: datetime | None
    repeats: int
    last_repeat_at: datetime | None


def console_url(public_url: str) -> str:
    return public_url.rstrip("/") + CONSOLE_ALARMS_PATH


def kind_words(kind: str, lang: str) -> str:
    key = f"console.notify.kind.{kind}"
    return text(key, lang) if key in catalogue() else text("console.notify.kind.other", lang, kind=kind)


def local_time(moment: datetime, timezone: str, lang: str) -> str:
    """E.g. "23.11.2026 kl. 18:04" (bokmål) or "2026-11-23 at 18:04" (English), in the site's time zone."""
    local = moment.astimezone(ZoneInfo(timezone))
    return text(
        "console.notify.time", lang, date=local.strftime(_DATE_FORMATS[lang]), clock=local.strftime("%H:%M")
    )


def subject(facts: AlarmFacts, *, escalated: bool) -> str:
    """One line, both languages: "[Meråpent] Dør brutt opp / Door forced open: Holmen, Hovedinngang"."""
    what = " / ".join(kind_words(facts.kind, lang) for lang in LANGUAGES)
    if escalated:
        tag = " / ".join(text("console.notify.not_acknowledged", lang) for lang in LANGUAGES)
        what = f"{tag} – {what}"
    where = facts.site_name if facts.door_name is None else f"{facts.site_name}, {facts.door_name}"
    return f"[Meråpent] {what}: {where}"


def text_in(facts: AlarmFacts, lang: str, *, escalated: bool, escalate_minutes: int, url: str) -> str:
    """The message in one language: what and where, escalation, when, still active or not, repeats, link."""
    kind = kind_words(facts.kind, lang)
    if facts.door_name is None:
        lines = [text("console.notify.intro_site", lang, kind=kind, site=facts.site_name)]
    else:
        lines = [text("console.notify.intro", lang, kind=kind, site=facts.site_name, door=facts.door_name)]
    if escalated:
        lines.append(text("console.notify.escalated", lang, minutes=escalate_minutes))
    lines.append("")
    lines.append(text("console.notify.raised", lang, time=local_time(facts.raised_at, facts.timezone, lang)))
    if facts.cleared_at is None:
        lines.append(text("console.notify.active", lang))
    else:
        when = local_time(facts.cleared_at, facts.timezone, lang)
        lines.append(text("console.notify.cleared", lang, time=when))
    if facts.repeats and facts.last_repeat_at is not None:
        last = local_time(facts.last_repeat_at, facts.timezone, lang)
        lines.append(text("console.notify.repeats", lang, count=facts.repeats, time=last))
    lines.append("")
    lines.append(text("console.notify.action", lang, url=url))
    return "\n".join(lines)


def body(facts: AlarmFacts, *, escalated: bool, escalate_minutes: int, url: str) -> str:
    """Bokmål, a rule, English, a rule, the footer in both."""
    parts = [
        text_in(facts, lang, escalated=escalated, escalate_minutes=escalate_minutes, url=url)
        for lang in LANGUAGES
    ]
    footer = "\n".join(text("console.notify.footer", lang) for lang in LANGUAGES)
    return f"\n\n{RULE}\n\n".join([*parts, footer]) + "\n"


def email(
    facts: AlarmFacts,
    *,
    sender: str,
    recipients: list[str],
    message_id: str,
    escalated: bool,
    escalate_minutes: int,
    url: str,
) -> EmailMessage:
    """The e-mail; `message_id` (the outbox row's) travels in X-Meraapent-Notification for the curious."""
    message = EmailMessage()
    message["Subject"] = subject(facts, escalated=escalated)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = sender.rpartition("@")[2] or None
    message["Message-ID"] = make_msgid("alarm", domain=domain)
    message["X-Meraapent-Notification"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body(facts, escalated=escalated, escalate_minutes=escalate_minutes, url=url))
    return message


def webhook_payload(
    message_id: str, facts: AlarmFacts, sent_at: datetime, *, escalated: bool, escalate_minutes: int, url: str
) -> dict[str, Any]:
    """The JSON document POSTed: the alarm's facts for a machine, and the same words as the e-mail."""
    return {
        "id": message_id,
        "kind": "alarm_escalated" if escalated else "alarm",
        "escalated": escalated,
        "sent_at": rfc3339(sent_at),
        "console_url": url,
        "alarm": {
            "id": facts.alarm_id,
            "kind": facts.kind,
            "severity": facts.severity,
            "site": facts.site,
            "site_name": facts.site_name,
            "door": facts.door,
            "door_name": facts.door_name,
            "raised_at": rfc3339(facts.raised_at),
            "cleared_at": None if facts.cleared_at is None else rfc3339(facts.cleared_at),
            "repeats": facts.repeats,
            "last_repeat_at": None if facts.last_repeat_at is None else rfc3339(facts.last_repeat_at),
        },
        "subject": subject(facts, escalated=escalated),
        "text": {
            lang: text_in(facts, lang, escalated=escalated, escalate_minutes=escalate_minutes, url=url)
            for lang in LANGUAGES
        },
    }
