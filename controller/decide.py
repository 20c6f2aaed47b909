"""May this card or phone token open this door now? Pure decisions, each with a reason from a fixed list.

No I/O and no clock: the caller passes `now`, the credential and bookings it looked up in the replica, and
flags it keeps (lock-down, PIN lock-out, whether the wall clock can be trusted). `SiteView` precomputes the
site config once, so a decision is a handful of dict lookups.

Card checks, first failing one wins: unknown credential, lock-down, blocked, validity window, consent missing
(a minor without a guardian's consent), PIN locked, clock policy; then access (an any-time group for the
door's zone, the site open and the group's schedule, a booking) and, when all would grant, the PIN.
A refused access says what would help: site closed or outside schedule to someone with a group for the zone,
no booking at a room door or to a holder whose booking for this door is at another time, else no access.

PIN: central decides per credential whether a PIN is needed by storing a PIN hash or not. A card with a
`pin_hash` opens only with the right PIN; one without opens with the card alone.

Unset clock: a Pi booted without network says 1970. Then the validity window is not checked (central stamps
every credential with a `valid_from`, so a 1970 clock would call every card not yet valid) and the clock
policy decides: `staff_only` (default) lets staff and caretakers through any door of a zone one of their
groups covers, schedules and bookings ignored (reason any_time); `deny_all` refuses every card; `normal`
decides as usual with the time given. A phone token is never honoured on an unset clock: its validity window
is all that limits it.

Phone tokens bound to the holder's phone (a cnf key, see protocol/holder.py) come with a fresh signature of
the phone. Such a token is a proof of who is at the door, not a pass: once the token's own checks pass (site,
door or zone, revocation, lock-down, clock), the holder is judged by their own rules in the replica as by
`decide_phone_holder`, so a blocked person, a person outside their schedule or a closed site is refused
however fresh the code. Unbound tokens (visitors, printed codes) grant by themselves as before.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from controller.schedule import ScheduleConfigError, SiteCalendar
from protocol import messages as m
from protocol.holder import verify_presentation
from protocol.keys import PublicKeySet
from protocol.token import DEFAULT_SKEW, TokenClaims, TokenError, TokenRefusal, deny_reason

BUILD_DATE = date(2026, 11, 23)
DEFAULT_BOOKING_MARGIN = timedelta(minutes=15)
CLOCK_EXEMPT_KINDS = frozenset({m.PersonKind.STAFF, m.PersonKind.CARETAKER})
LIVE_BOOKING_STATUSES = frozenset({m.BookingStatus.CONFIRMED, m.BookingStatus.CHECKED_IN})
_TIME_REFUSALS = frozenset(
    {TokenRefusal.NOT_YET_VALID, TokenRefusal.EXPIRED, TokenRefusal.KEY_NOT_VALID, TokenRefusal.PROOF_STALE}
)

HolderRecords = tuple[Sequence[m.Credential], Sequence[m.Booking]]
HolderLookup = Callable[[str], HolderRecords]
"""A person ref to the person's credentials and bookings in the replica (what `decide_phone_holder` needs)."""


class ClockPolicy(StrEnum):
    """What cards may do while the wall clock cannot be trusted."""

    STAFF_ONLY = "staff_only"
    DENY_ALL = "deny_all"
    NORMAL = "normal"


class UnknownDoorError(KeyError):
    """The caller asked about a door the site config does not have: a wiring/config bug, not a denial."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown door"


class SiteConfigError(ValueError):
    """A site config whose parts do not fit together (a door in an unknown zone, a duplicate slug...)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A decision with its reason and who it was about; `needs_pin` asks the caller for the PIN first."""

    decision: m.Decision
    reason: m.Reason
    credential_ref: str | None = None
    person_ref: str | None = None
    booking_ref: str | None = None
    needs_pin: bool = False

    @property
    def granted(self) -> bool:
        return self.decision is m.Decision.GRANT


def denied(reason: m.Reason, credential: m.Credential | None = None) -> Verdict:
    """A denial for `credential`, e.g. PIN_TIMEOUT when the PIN entry ran out (see controller.pin)."""
    if credential is None:
        return Verdict(m.Decision.DENY, reason)
    return Verdict(m.Decision.DENY, reason, credential.ref, credential.person)


def _granted(reason: m.Reason, credential: m.Credential, booking_ref: str | None = None) -> Verdict:
    return Verdict(m.Decision.GRANT, reason, credential.ref, credential.person, booking_ref)


@dataclass(frozen=True, slots=True)
class SiteView:
    """The site config as the decision engine needs it: lookups by slug, built once per config revision."""

    site: str
    doors: dict[str, m.Door]
    rooms: dict[str, m.Room]
    zones: frozenset[str]
    groups: dict[str, m.AccessGroup]
    calendar: SiteCalendar
    room_doors: frozenset[str]  # doors that are the own door of a room or of kind room

    @classmethod
    def from_config(cls, config: m.SiteConfig) -> SiteView:
        """SiteConfigError (one line) when the config's parts do not fit together."""
        zones = _unique(config.site, "zone", [z.slug for z in config.zones])
        doors = {d.slug: d for d in config.doors}
        rooms = {r.slug: r for r in config.rooms}
        groups = {g.slug: g for g in config.groups}
        _unique(config.site, "door", [d.slug for d in config.doors])
        _unique(config.site, "room", [r.slug for r in config.rooms])
        _unique(config.site, "group", [g.slug for g in config.groups])
        for door in config.doors:
            _known(config.site, f"door {door.slug}", "zone", door.zone, zones)
        for room in config.rooms:
            _known(config.site, f"room {room.slug}", "zone", room.zone, zones)
            if room.door is not None:
                _known(config.site, f"room {room.slug}", "door", room.door, doors)
        for group in config.groups:
            for zone in group.zones:
                _known(config.site, f"group {group.slug}", "zone", zone, zones)
        room_doors = {r.door for r in config.rooms if r.door is not None}
        room_doors |= {d.slug for d in config.doors if d.kind is m.DoorKind.ROOM}
        try:
            calendar = SiteCalendar.from_config(config)
        except ScheduleConfigError as exc:
            raise SiteConfigError(str(exc)) from None
        return cls(
            site=config.site,
            doors=doors,
            rooms=rooms,
            zones=frozenset(zones),
            groups=groups,
            calendar=calendar,
            room_doors=frozenset(room_doors),
        )

    def door(self, slug: str) -> m.Door:
        """The door by slug; UnknownDoorError (a KeyError) if the config has no such door."""
        try:
            return self.doors[slug]
        except KeyError:
            raise UnknownDoorError(f"site {self.site} has no door {slug!r}") from None

    def booking_opens(self, booking: m.Booking, door: m.Door) -> bool:
        """Whether `door` leads to the booked room: a site entrance, a door of its zone, or its own door."""
        room = self.rooms.get(booking.room)
        if room is None:
            return False
        return door.kind is m.DoorKind.ENTRANCE or door.zone == room.zone or room.door == door.slug


def _unique(site: str, what: str, slugs: list[str]) -> set[str]:
    seen: set[str] = set()
    for slug in slugs:
        if slug in seen:
            raise SiteConfigError(f"site {site}: {what} {slug!r} appears twice")
        seen.add(slug)
    return seen


def _known(site: str, owner: str, what: str, slug: str, known: Container[str]) -> None:
    if slug not in known:
        raise SiteConfigError(f"site {site}: {owner} names {what} {slug!r}, which the site does not have")


def clock_trusted(now: datetime, build_date: date = BUILD_DATE) -> bool:
    """False when the wall clock is before the software's build date (a Pi without network says 1970)."""
    return now >= datetime.combine(build_date, time(0), tzinfo=UTC)


def _require_aware(now: datetime) -> None:
    if now.utcoffset() is None:
        raise ValueError(f"naive datetime {now.isoformat()} refused: give a timezone-aware (UTC) datetime")


# --- cards --------------------------------------------------------------------------------------------------


def decide_card(
    view: SiteView,
    door: str,
    credential: m.Credential | None,
    bookings: Sequence[m.Booking],
    now: datetime,
    *,
    pin_ok: bool | None,
    clock_trusted: bool = True,
    clock_policy: ClockPolicy = ClockPolicy.STAFF_ONLY,
    lockdown: bool = False,
    pin_locked: bool = False,
    booking_margin: timedelta = DEFAULT_BOOKING_MARGIN,
) -> Verdict:
    """The verdict for a card (looked up by its UID hash; None when unknown) at `door` at `now`.

    `pin_ok` is None until the PIN was asked for, then whether it matched. `bookings` are the replica's
    bookings for the credential's person (others are ignored).
    """
    _require_aware(now)
    target = view.door(door)
    if credential is None:
        return denied(m.Reason.UNKNOWN_CREDENTIAL)
    refusal = card_refusal(credential, now, clock_trusted, lockdown, pin_locked)
    if refusal is not None:
        return denied(refusal, credential)
    if not clock_trusted and clock_policy is not ClockPolicy.NORMAL:
        if clock_policy is ClockPolicy.DENY_ALL or credential.person_kind not in CLOCK_EXEMPT_KINDS:
            return denied(m.Reason.CLOCK_UNSET, credential)
        verdict = _zone_access(view, target, credential)
    else:
        verdict = _access(view, target, credential, bookings, now, booking_margin)
    return _with_pin(verdict, credential, pin_ok)


def card_refusal(
    credential: m.Credential, now: datetime, clock_trusted: bool, lockdown: bool, pin_locked: bool
) -> m.Reason | None:
    """Why this credential may not be used at all now (before any door is considered), or None."""
    if lockdown:
        return m.Reason.LOCKDOWN
    if credential.status is m.CredentialStatus.BLOCKED:
        return m.Reason.CREDENTIAL_BLOCKED
    if clock_trusted:
        if credential.valid_from is not None and now < credential.valid_from:
            return m.Reason.CREDENTIAL_NOT_YET_VALID
        if credential.valid_until is not None and now >= credential.valid_until:
            return m.Reason.CREDENTIAL_EXPIRED
    if credential.consent_missing:
        return m.Reason.CONSENT_MISSING
    if pin_locked:
        return m.Reason.PIN_LOCKED
    return None


def _zone_groups(view: SiteView, door: m.Door, credential: m.Credential) -> list[m.AccessGroup]:
    """The credential's groups at this site that include the door's zone (other sites' groups are ignored)."""
    found = []
    for slug in credential.groups:
        group = view.groups.get(slug)
        if group is not None and door.zone in group.zones:
            found.append(group)
    return found


def _zone_access(view: SiteView, door: m.Door, credential: m.Credential) -> Verdict:
    """Unset clock, staff or caretaker: any group covering the zone will do, its schedule cannot be read."""
    if _zone_groups(view, door, credential):
        return _granted(m.Reason.ANY_TIME, credential)
    return denied(m.Reason.NO_ACCESS_TO_ZONE, credential)


def _access(
    view: SiteView,
    door: m.Door,
    credential: m.Credential,
    bookings: Sequence[m.Booking],
    now: datetime,
    margin: timedelta,
) -> Verdict:
    groups = _zone_groups(view, door, credential)
    if any(group.any_time for group in groups):
        return _granted(m.Reason.ANY_TIME, credential)
    site_open = bool(groups) and view.calendar.is_open(now)
    if site_open and any(view.calendar.in_group_intervals(group, now) for group in groups):
        return _granted(m.Reason.SCHEDULE, credential)
    booked_any_time = False
    for booking in bookings:
        if credential.person not in booking.holders or not view.booking_opens(booking, door):
            continue
        live = booking.status in LIVE_BOOKING_STATUSES
        if live and booking.starts_at - margin <= now <= booking.ends_at + margin:
            return _granted(m.Reason.BOOKING, credential, booking.ref)
        booked_any_time = True
    if groups:
        return denied(m.Reason.OUTSIDE_SCHEDULE if site_open else m.Reason.SITE_CLOSED, credential)
    if door.slug in view.room_doors or booked_any_time:
        return denied(m.Reason.NO_BOOKING, credential)
    return denied(m.Reason.NO_ACCESS_TO_ZONE, credential)


def _with_pin(verdict: Verdict, credential: m.Credential, pin_ok: bool | None) -> Verdict:
    """A would-be grant for a card with a PIN needs the right PIN; denials stand as they are."""
    if not verdict.granted or credential.pin_hash is None or pin_ok is True:
        return verdict
    if pin_ok is None:
        return replace(verdict, decision=m.Decision.DENY, needs_pin=True)
    return replace(verdict, decision=m.Decision.DENY, reason=m.Reason.WRONG_PIN)


def phone_credential(credentials: Sequence[m.Credential]) -> m.Credential | None:
    """The credential a person's phone acts as: their active phone credential, else any phone one (so a
    blocked or expired phone is refused with that reason rather than as unknown), else None."""
    phones = [c for c in credentials if c.kind is m.CredentialKind.PHONE]
    active = [c for c in phones if c.status is m.CredentialStatus.ACTIVE]
    chosen = active or phones
    return chosen[0] if chosen else None


def decide_phone_holder(
    view: SiteView,
    door: str,
    credentials: Sequence[m.Credential],
    bookings: Sequence[m.Booking],
    now: datetime,
    *,
    clock_trusted: bool = True,
    lockdown: bool = False,
    booking_margin: timedelta = DEFAULT_BOOKING_MARGIN,
) -> Verdict:
    """May the person who proved they hold their phone (a bound QR code, or the Open button on the phone
    page) open `door` now? The same rules as their card without the PIN: the phone, unlocked by its owner
    and holding a key that never leaves it, is the second factor. `credentials` are the person's credentials
    from the replica, `bookings` theirs. An unset clock refuses: phone entry never falls back to any-time.
    """
    _require_aware(now)
    credential = phone_credential(credentials)
    if credential is None:
        view.door(door)  # an unknown door is a caller bug, also when the person has no phone
        return denied(m.Reason.UNKNOWN_CREDENTIAL)
    if not clock_trusted:
        return denied(m.Reason.CLOCK_UNSET, credential)
    return decide_card(
        view, door, credential, bookings, now, pin_ok=True, lockdown=lockdown, booking_margin=booking_margin
    )


# --- phone tokens -------------------------------------------------------------------------------------------


def decide_token(
    view: SiteView,
    door: str,
    text: str,
    keys: PublicKeySet,
    revoked: Container[str],
    now: datetime,
    *,
    clock_trusted: bool = True,
    lockdown: bool = False,
    skew: timedelta = DEFAULT_SKEW,
    holder_records: HolderLookup | None = None,
    booking_margin: timedelta = DEFAULT_BOOKING_MARGIN,
) -> Verdict:
    """The verdict for a scanned phone token or holder presentation (``MA1:`` or ``MA2:`` text). `revoked`
    holds revoked token ids (hex, as central sends them).

    `holder_records` is asked only for a genuine, fresh, holder-bound token that passed its own checks;
    without it such a token finds nobody (unknown_credential). The verdict's credential_ref is the token id
    (hex), person_ref the holder, booking_ref the booking it was granted for, else the token's booking.
    """
    _require_aware(now)
    target = view.door(door)
    try:
        claims = verify_presentation(text, keys, now, skew=skew)
    except TokenError as exc:
        if not clock_trusted and exc.reason in _TIME_REFUSALS:
            return Verdict(m.Decision.DENY, m.Reason.CLOCK_UNSET)
        return Verdict(m.Decision.DENY, deny_reason(exc.reason))
    reason = _token_refusal(view, target, claims, revoked, clock_trusted, lockdown)
    if reason is not None:
        return Verdict(m.Decision.DENY, reason, claims.token_id_hex, claims.holder, claims.booking)
    if claims.holder_key is not None:
        credentials, bookings = holder_records(claims.holder) if holder_records is not None else ((), ())
        own = decide_phone_holder(
            view, door, credentials, bookings, now, lockdown=lockdown, booking_margin=booking_margin
        )
        booking = own.booking_ref or claims.booking
        return Verdict(own.decision, own.reason, claims.token_id_hex, claims.holder, booking)
    grant = m.Reason.SCHEDULE if claims.booking is None else m.Reason.BOOKING
    return Verdict(m.Decision.GRANT, grant, claims.token_id_hex, claims.holder, claims.booking)


def _token_refusal(
    view: SiteView,
    door: m.Door,
    claims: TokenClaims,
    revoked: Container[str],
    clock_trusted: bool,
    lockdown: bool,
) -> m.Reason | None:
    if claims.site != view.site:
        return m.Reason.TOKEN_WRONG_SITE
    if not claims.allows(view.site, door.slug, door.zone):
        return m.Reason.TOKEN_WRONG_DOOR
    if claims.token_id_hex in revoked:
        return m.Reason.TOKEN_REVOKED
    if lockdown:
        return m.Reason.LOCKDOWN
    if not clock_trusted:
        return m.Reason.CLOCK_UNSET
    return None
