"""The pure rules of alarm notifications: which alarms need a person, repeats folded into one notification,
escalation when nobody acknowledges in time (on an injectable clock), when an agent counts as offline, and
what the caretaker reads (bokmål with English below, local time, a link, nothing about people)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from central.config import ConfigError, Settings
from central.models import NotifyChannel
from central.notify import message
from central.notify.job import Notifier
from central.notify.outbox import Channels, addresses
from central.notify.rules import (
    PERSON_KINDS,
    AgentVerdict,
    Earlier,
    Rules,
    Standing,
    Verdict,
    agent_verdict,
    escalation_due,
    finished,
    needs_person,
    place,
    worth_sending,
)
from central.notify.senders import notify_webhook_secret
from central.webhooks.sender import webhook_secret

T0 = datetime(2030, 1, 15, 17, 4, tzinfo=UTC)  # 18:04 in Oslo (winter time)
RULES = Rules(escalate_after=timedelta(minutes=15), fold_window=timedelta(minutes=30))


def fresh(kind: str, *, acknowledged: bool = False, cleared: bool = False) -> Standing:
    return Standing(kind, acknowledged=acknowledged, cleared=cleared)


# --- which alarms need a person ----------------------------------------------------------------------------


def test_the_kinds_the_caretaker_must_hear_about_and_the_ones_left_to_the_console() -> None:
    for kind in ("forced_open", "held_open", "agent_offline", "fire", "pin_brute_force", "tailgating"):
        assert needs_person(kind), kind
    assert needs_person("tamper") and needs_person("intruder")
    for kind in ("lock_fault", "reader_offline", "disk_low", "clock_unset", "something_new"):
        assert not needs_person(kind), kind
        assert place(fresh(kind), [], T0, RULES).verdict is Verdict.SKIP


def test_a_forced_door_that_closed_again_is_still_news_but_a_held_door_that_closed_is_not() -> None:
    assert place(fresh("forced_open", cleared=True), [], T0, RULES).verdict is Verdict.NOTIFY
    assert place(fresh("fire", cleared=True), [], T0, RULES).verdict is Verdict.NOTIFY
    assert place(fresh("held_open", cleared=True), [], T0, RULES).verdict is Verdict.SKIP
    assert place(fresh("agent_offline", cleared=True), [], T0, RULES).verdict is Verdict.SKIP
    assert place(fresh("forced_open", acknowledged=True), [], T0, RULES).verdict is Verdict.SKIP
    assert not worth_sending(fresh("forced_open", acknowledged=True, cleared=True))


# --- de-duplication ----------------------------------------------------------------------------------------


def test_a_repeat_within_the_window_is_folded_into_the_newest_unacknowledged_notification() -> None:
    earlier = [
        Earlier(1, T0 - timedelta(minutes=20), acknowledged=False),
        Earlier(2, T0 - timedelta(minutes=5), acknowledged=False),
    ]
    assert place(fresh("forced_open"), earlier, T0, RULES) == place(
        fresh("forced_open"), earlier[::-1], T0, RULES
    )
    placement = place(fresh("forced_open"), earlier, T0, RULES)
    assert (placement.verdict, placement.into) == (Verdict.FOLD, 2)


def test_a_repeat_after_the_window_or_after_an_acknowledgement_is_told_again() -> None:
    old = [Earlier(1, T0 - timedelta(minutes=30), acknowledged=False)]
    assert place(fresh("pin_brute_force"), old, T0, RULES).verdict is Verdict.NOTIFY
    just_inside = [Earlier(1, T0 - timedelta(minutes=29, seconds=59), acknowledged=False)]
    assert place(fresh("pin_brute_force"), just_inside, T0, RULES).verdict is Verdict.FOLD
    seen = [Earlier(1, T0 - timedelta(minutes=1), acknowledged=True)]
    assert place(fresh("pin_brute_force"), seen, T0, RULES).verdict is Verdict.NOTIFY


# --- escalation on the clock -------------------------------------------------------------------------------


def test_escalation_comes_when_the_minutes_have_passed_and_nobody_acknowledged() -> None:
    created = T0
    active = fresh("forced_open")
    assert not escalation_due(active, created, T0 + timedelta(minutes=14, seconds=59), RULES)
    assert escalation_due(active, created, T0 + timedelta(minutes=15), RULES)
    assert not escalation_due(
        fresh("forced_open", acknowledged=True), created, T0 + timedelta(hours=1), RULES
    )


def test_a_cleared_incident_still_escalates_but_a_passing_state_that_ended_does_not() -> None:
    later = T0 + timedelta(minutes=20)
    assert escalation_due(fresh("forced_open", cleared=True), T0, later, RULES)
    assert escalation_due(fresh("fire", cleared=True), T0, later, RULES)
    assert not escalation_due(fresh("held_open", cleared=True), T0, later, RULES)
    assert not escalation_due(fresh("agent_offline", cleared=True), T0, later, RULES)
    assert escalation_due(fresh("held_open"), T0, later, RULES)
    assert finished(fresh("held_open", cleared=True), escalated=False)
    assert finished(fresh("forced_open"), escalated=True)
    assert not finished(fresh("forced_open", cleared=True), escalated=False)


def test_the_rules_take_the_escalation_minutes_from_the_settings(tmp_path: Path) -> None:
    rules = Rules.from_settings(Settings(data_dir=tmp_path, notify_escalate_minutes=5))
    assert rules.escalate_after == timedelta(minutes=5)
    assert escalation_due(fresh("fire"), T0, T0 + timedelta(minutes=5), rules)


# --- the agent watch ---------------------------------------------------------------------------------------


def test_an_agent_offline_past_the_grace_raises_and_back_online_clears() -> None:
    grace = timedelta(minutes=2)
    assert (
        agent_verdict(False, T0, False, T0 + timedelta(minutes=1, seconds=59), grace) is AgentVerdict.NOTHING
    )
    assert agent_verdict(False, T0, False, T0 + timedelta(minutes=2), grace) is AgentVerdict.RAISE
    assert agent_verdict(False, T0, True, T0 + timedelta(minutes=9), grace) is AgentVerdict.NOTHING
    assert agent_verdict(True, T0, True, T0, grace) is AgentVerdict.CLEAR
    assert agent_verdict(True, T0, False, T0, grace) is AgentVerdict.NOTHING
    assert agent_verdict(False, None, False, T0, grace) is AgentVerdict.RAISE


# --- channels from the settings ----------------------------------------------------------------------------


def test_channels_need_a_mail_server_and_addresses_or_a_webhook(tmp_path: Path) -> None:
    assert Channels.from_settings(Settings(data_dir=tmp_path)) == Channels()
    no_server = Settings(data_dir=tmp_path, notify_email="vakt@asker.kommune.no")
    assert not Channels.from_settings(no_server).email
    full = Settings(
        data_dir=tmp_path,
        smtp_host="smtp.asker.kommune.no",
        notify_email=" vakt@asker.kommune.no, ,reserve@asker.kommune.no ",
        notify_webhook_url="https://vakt.example/alarm",
    )
    channels = Channels.from_settings(full)
    assert (channels.email, channels.escalation_email, channels.webhook) == (True, False, True)
    assert channels.for_message(escalation=False) == [NotifyChannel.EMAIL, NotifyChannel.WEBHOOK]
    assert channels.for_message(escalation=True) == [NotifyChannel.WEBHOOK]
    assert addresses(full.notify_email) == ["vakt@asker.kommune.no", "reserve@asker.kommune.no"]


# --- what the caretaker reads ------------------------------------------------------------------------------

FACTS = message.AlarmFacts(
    alarm_id=7,
    kind="forced_open",
    severity="critical",
    site="holmen",
    site_name="Holmen innbyggertorg",
    timezone="Europe/Oslo",
    door="hovedinngang",
    door_name="Hovedinngang",
    raised_at=T0,
    cleared_at=None,
    repeats=0,
    last_repeat_at=None,
)
URL = "https://drift.asker.example/drift/alarmer"


def test_the_email_says_what_where_and_when_in_bokmal_then_english_with_a_link() -> None:
    mail = message.email(
        FACTS,
        sender="meraapent@asker.example",
        recipients=["vakt@asker.example", "reserve@asker.example"],
        message_id="m-1",
        escalated=False,
        escalate_minutes=15,
        url=message.console_url("https://drift.asker.example/"),
    )
    assert (
        mail["Subject"] == "[Meråpent] Dør brutt opp / Door forced open: Holmen innbyggertorg, Hovedinngang"
    )
    assert mail["To"] == "vakt@asker.example, reserve@asker.example"
    text = mail.get_content()
    nb, en = (
        text.index("Dør brutt opp – Holmen innbyggertorg, Hovedinngang."),
        text.index("Door forced open –"),
    )
    assert nb < en
    assert "Utløst: 15.01.2030 kl. 18:04" in text and "Raised: 2030-01-15 at 18:04" in text
    assert "Alarmen er fortsatt aktiv." in text and "The alarm is still active." in text
    assert f"Se og kvitter alarmen: {URL}" in text and f"See and acknowledge the alarm: {URL}" in text
    assert "Ingen har kvittert" not in text


def test_an_escalation_says_nobody_acknowledged_and_counts_the_repeats() -> None:
    facts = message.AlarmFacts(
        **{
            **vars(FACTS),
            "kind": "held_open",
            "cleared_at": T0 + timedelta(minutes=3),
            "repeats": 2,
            "last_repeat_at": T0 + timedelta(minutes=9),
        }
    )
    subject = message.subject(facts, escalated=True)
    assert subject.startswith("[Meråpent] IKKE KVITTERT / NOT ACKNOWLEDGED – Dør holdt åpen for lenge")
    text = message.body(facts, escalated=True, escalate_minutes=15, url=URL)
    assert "Ingen har kvittert for alarmen på 15 minutter" in text
    assert "Nobody has acknowledged this alarm within 15 minutes" in text
    assert "Opphørt: 15.01.2030 kl. 18:07" in text and "Cleared: 2030-01-15 at 18:07" in text
    assert "Utløst på nytt etter første varsel: 2 (sist 15.01.2030 kl. 18:13)" in text


def test_a_site_wide_alarm_names_the_site_and_summer_time_is_local_time() -> None:
    summer = datetime(2030, 6, 1, 20, 30, tzinfo=UTC)
    facts = message.AlarmFacts(
        **{**vars(FACTS), "kind": "agent_offline", "door": None, "door_name": None, "raised_at": summer}
    )
    assert message.subject(facts, escalated=False).endswith(": Holmen innbyggertorg")
    text = message.body(facts, escalated=False, escalate_minutes=15, url=URL)
    assert "Stedet har mistet forbindelsen – Holmen innbyggertorg." in text
    assert "Utløst: 01.06.2030 kl. 22:30" in text


def test_an_unknown_kind_still_reads_as_an_alarm() -> None:
    assert message.kind_words("smoke_in_lift", "en") == "Alarm (smoke_in_lift)"


def test_the_webhook_carries_the_facts_for_a_machine_and_the_words_for_a_person() -> None:
    doc = message.webhook_payload(
        "m-2", FACTS, T0 + timedelta(seconds=8), escalated=True, escalate_minutes=15, url=URL
    )
    assert (doc["id"], doc["kind"], doc["escalated"]) == ("m-2", "alarm_escalated", True)
    assert doc["alarm"]["raised_at"] == "2030-01-15T17:04:00Z" and doc["alarm"]["cleared_at"] is None
    assert (doc["alarm"]["site"], doc["alarm"]["door"], doc["alarm"]["kind"]) == (
        "holmen",
        "hovedinngang",
        "forced_open",
    )
    assert doc["console_url"] == URL and doc["text"]["en"].startswith("Door forced open")
    assert set(doc) == {"id", "kind", "escalated", "sent_at", "console_url", "alarm", "subject", "text"}


@pytest.mark.parametrize("lang", ["nb", "en"])
def test_every_alarm_kind_that_needs_a_person_has_words(lang: str) -> None:
    for kind in PERSON_KINDS:
        assert not message.kind_words(kind, lang).startswith("Alarm ("), kind


def test_a_bad_webhook_address_is_refused_naming_its_setting_and_the_secret_is_its_own(
    tmp_path: Path,
) -> None:
    bad = Settings(data_dir=tmp_path, notify_webhook_url="ftp://vakt.example/alarm")
    with pytest.raises(ConfigError, match="MERAAPENT_NOTIFY_WEBHOOK_URL must be an http"):
        Notifier(sessionmaker(), bad)
    good = Settings(data_dir=tmp_path, notify_webhook_url="https://vakt.example/alarm")
    Notifier(sessionmaker(), good)
    secret_file = tmp_path / "secrets" / "notify-webhook.key"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert notify_webhook_secret(good) == secret_file.read_text().strip() != webhook_secret(good)
