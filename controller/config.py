"""The site agent's configuration: one TOML file per site, validated strictly before anything starts.

An installer on a ladder reads the error, so every problem is ONE line naming the file, the key path
(``doors[1].relay``, doors counted from 0 in file order) and what is wrong. Unknown keys are refused rather
than ignored: a misspelt ``exit_buton`` must not silently leave a door without its exit button.

What is here is the site's wiring only. What central owns (door names, zones, entrance flags, unlock and
held-open times, opening hours) arrives over MQTT in the site configuration message. Secrets are never in this
file: it names the files that hold them (the card UID hash key, the broker password).

Pins are GPIO (BCM) numbers on the 40-pin header and accept gpiozero's spellings: ``"GPIO17"``, ``"BCM17"``,
``"BOARD11"``, ``"J8:11"`` or ``17``. They are normalised to ``GPIO17``, so one pin named two ways is still
caught as used twice. Relative paths are relative to the configuration file's directory.
"""

from __future__ import annotations

import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar

import msgspec
import msgspec.inspect as mi
from msgspec import Meta

from firmware_bridge.keys import KeyFile, KeyFileError
from protocol import messages as m
from protocol.topics import SLUG_PATTERN

UID_HASH_KEY_MIN_BYTES = 32

Slug = Annotated[str, Meta(pattern=SLUG_PATTERN)]
AgentName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
Port = Annotated[int, Meta(ge=1, le=65535)]


class ConfigError(ValueError):
    """A configuration the agent cannot run with; ``str()`` is one line: file, key path, problem."""


class ClockPolicy(StrEnum):
    """What the agent does while its clock is unset (before the build date, e.g. 1970 after a cold boot)."""

    STAFF_ONLY = "staff_only"  # staff and caretaker cards still open doors; nobody else
    DENY_ALL = "deny_all"
    NORMAL = "normal"  # decide as if the clock were right (not recommended)


# --- pins ------------------------------------------------------------------------------------------------

# 40-pin header (every Pi since the B+): physical pin -> BCM GPIO number. Other header pins are power/ground.
BOARD_TO_GPIO: dict[int, int] = {
    3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24, 19: 10, 21: 9, 22: 25,
    23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5, 31: 6, 32: 12, 33: 13, 35: 19, 36: 16, 37: 26, 38: 20, 40: 21,
}  # fmt: skip
_GPIO_MAX = 27
_PIN_HINT = "write it as GPIO17, BOARD11 or 17 (the BCM number)"


class GpioPin:
    """A BCM GPIO number; ``str()`` is the gpiozero name (``GPIO17``) to hand to a gpiozero device.

    A plain class, not a dataclass: msgspec would read a dataclass as a TOML table.
    """

    __slots__ = ("number",)

    def __init__(self, number: int) -> None:
        self.number = number

    def __str__(self) -> str:
        return f"GPIO{self.number}"

    def __repr__(self) -> str:
        return f"GpioPin({self.number})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GpioPin) and other.number == self.number

    def __hash__(self) -> int:
        return hash(("gpio", self.number))


def parse_pin(value: object) -> GpioPin:
    """A pin from any of gpiozero's spellings; ValueError with a one-line hint otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected a pin name or number, got {_kind(value)}; {_PIN_HINT}")
    text = str(value).strip().upper()
    match = re.fullmatch(r"(GPIO|BCM|BOARD|J8:)?(\d{1,2})", text)
    if match is None:
        if text.startswith("WPI"):
            raise ValueError(f"WiringPi numbers ({value!r}) are not accepted; {_PIN_HINT}")
        raise ValueError(f"{value!r} is not a pin name; {_PIN_HINT}")
    prefix, number = match.group(1), int(match.group(2))
    if prefix in ("BOARD", "J8:"):
        if number not in BOARD_TO_GPIO:
            raise ValueError(f"{value!r} is a power or ground pin of the header, not a GPIO")
        return GpioPin(BOARD_TO_GPIO[number])
    if number > _GPIO_MAX:
        raise ValueError(f"{value!r}: the header has GPIO0 to GPIO{_GPIO_MAX}; {_PIN_HINT}")
    return GpioPin(number)


# --- devices ---------------------------------------------------------------------------------------------


class DeviceSpec:
    """Where a reader, keypad or scanner is found: ``kind`` picks the adapter, ``target`` is its address.

    For ``pcsc`` the target is a part of the reader's name as pcscd reports it, matched as a substring
    ("ACS ACR122U PICC Interface 00"); for ``evdev`` and ``serial`` an absolute device path (prefer
    /dev/input/by-id/..., stable across reboots). ``baud`` is only ever set for ``serial``.
    """

    __slots__ = ("baud", "kind", "target")
    allowed: ClassVar[tuple[str, ...]] = ()
    example: ClassVar[str] = ""

    def __init__(self, kind: str, target: str, baud: int | None = None) -> None:
        self.kind, self.target, self.baud = kind, target, baud

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}" + (f"@{self.baud}" if self.baud else "")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and str(other) == str(self)

    def __hash__(self) -> int:
        return hash((type(self).__name__, str(self)))


class ReaderSpec(DeviceSpec):
    allowed = ("pcsc", "osdp")
    example = "'pcsc:<reader name>' (e.g. 'pcsc:ACS ACR122U') or 'osdp:<bus address>'"


class KeypadSpec(DeviceSpec):
    allowed = ("evdev",)
    example = "'evdev:/dev/input/by-id/...' or an absolute /dev/input path"


class ScannerSpec(DeviceSpec):
    allowed = ("evdev", "serial")
    example = "'evdev:/dev/input/by-id/...' or 'serial:/dev/ttyACM0' (optionally '@9600' for the baud rate)"


class BusSpec(DeviceSpec):
    """The RS-485 bus of the OSDP readers: a serial port, or a bus simulated in the agent's process."""

    allowed = ("serial", "sim")
    example = "'serial:/dev/ttyAMA0@9600' (an RS-485 port; 9600 baud if not given) or 'sim:<name>'"


_PATH_KINDS = ("evdev", "serial")
OSDP_MAX_ADDRESS = 126  # 0x7F is the broadcast address
OSDP_BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400)


def parse_device(spec_type: type[DeviceSpec], value: object) -> DeviceSpec:
    if not isinstance(value, str):
        raise ValueError(f"expected a text like {spec_type.example}, got {_kind(value)}")
    text = value.strip()
    if text.startswith("/") and "evdev" in spec_type.allowed:
        text = f"evdev:{text}"
    kind, sep, target = text.partition(":")
    if not sep or kind not in spec_type.allowed or not target.strip():
        raise ValueError(f"expected {spec_type.example}, got {value!r}")
    baud = None
    if kind == "serial" and (at := re.fullmatch(r"(.+)@(\d{3,7})", target)):
        target, baud = at.group(1), int(at.group(2))
    if kind in _PATH_KINDS and not target.startswith("/"):
        raise ValueError(f"{kind} needs an absolute device path, got {target!r}")
    if kind == "osdp":
        target = str(_osdp_address(target))
    return spec_type(kind, target.strip(), baud)


def _osdp_address(text: str) -> int:
    """An OSDP reader's bus address, 0-126; "osdp:01" and "osdp:1" are the same reader."""
    if not re.fullmatch(r"\s*\d{1,3}\s*", text) or int(text) > OSDP_MAX_ADDRESS:
        raise ValueError(f"osdp needs the reader's bus address, 0 to {OSDP_MAX_ADDRESS}, got {text!r}")
    return int(text)


# --- the schema ------------------------------------------------------------------------------------------


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class AgentSettings(_Section, frozen=True):
    site: Slug
    name: AgentName
    data_dir: Path
    uid_hash_key_file: Path
    clock_policy: ClockPolicy = ClockPolicy.STAFF_ONLY
    journal_max_mb: Annotated[int, Meta(ge=16, le=1_000_000)] = 256

    def uid_hash_key(self) -> bytes:
        """The card UID HMAC key: the hex text file central keeps in <data_dir>/secrets/uid-hash.key."""
        return read_uid_hash_key(self.uid_hash_key_file)


class TlsSettings(_Section, frozen=True):
    ca_file: Path | None = None  # None: the system's CA certificates


class MqttSettings(_Section, frozen=True):
    host: Annotated[str, Meta(min_length=1, max_length=253)]
    port: Port = 1883
    username: Annotated[str, Meta(min_length=1, max_length=120)] | None = None
    password_file: Path | None = None
    tls: TlsSettings | None = None
    keepalive: Annotated[int, Meta(ge=1, le=600)] = 15
    session_expiry: Annotated[int, Meta(ge=0, le=30 * 24 * 3600)] = 24 * 3600

    def password(self) -> str | None:
        """The broker password, read from its file when needed (it is never kept in the config)."""
        if self.password_file is None:
            return None
        return self.password_file.read_text().rstrip("\r\n")


class DoorHardware(_Section, frozen=True):
    """One door's wiring; everything else about the door comes from central."""

    slug: Slug
    relay: GpioPin
    lock_type: m.LockType
    contact: GpioPin
    exit_button: GpioPin
    reader: ReaderSpec
    relay_active_high: bool = True  # many relay boards switch on a low output: set false for those
    lock_monitor: GpioPin | None = None
    tamper: GpioPin | None = None
    keypad: KeypadSpec | None = None
    scanner: ScannerSpec | None = None
    buzzer: GpioPin | None = None


class SiteHardware(_Section, frozen=True):
    fire: GpioPin | None = None
    intruder_arm: GpioPin | None = None
    speaker: GpioPin | None = None
    lights: dict[Slug, GpioPin] = {}  # zone slug -> light circuit
    beams: dict[Slug, GpioPin] = {}  # door slug -> passage counting beam


class OsdpSettings(_Section, frozen=True):
    """The OSDP readers' bus. The secure channel keys are in `key_file` (firmware_bridge.keys), never here;
    `install_mode` lets readers still on the default key be given theirs: on only while installing readers."""

    bus: BusSpec
    key_file: Path
    install_mode: bool = False


UNIX_SOCKET_PATH_MAX = 107  # bytes: sun_path holds 108 with the terminating NUL


class KioskSettings(_Section, frozen=True):
    """The torg's kiosk talks to this agent over a Unix socket (protocol/kiosk.py); whoever may open the
    socket file (mode 0660: the agent's user and group) may check bookings in. No [kiosk] table: no kiosk.
    The check-in window is central's; it comes with the site configuration."""

    socket: Path = Path("/run/meraapent/kiosk.sock")
    session_seconds: Annotated[int, Meta(ge=10, le=3600)] = 120


class AgentConfig(_Section, frozen=True):
    agent: AgentSettings
    mqtt: MqttSettings
    doors: tuple[DoorHardware, ...]
    site: SiteHardware = SiteHardware()
    osdp: OsdpSettings | None = None
    kiosk: KioskSettings | None = None

    def osdp_addresses(self) -> dict[str, int]:
        """The doors with an OSDP reader: door slug -> the reader's bus address."""
        return {d.slug: int(d.reader.target) for d in self.doors if d.reader.kind == "osdp"}

    def door(self, slug: str) -> DoorHardware:
        for door in self.doors:
            if door.slug == slug:
                return door
        raise KeyError(slug)


# --- loading ---------------------------------------------------------------------------------------------


class _KeyProblemError(Exception):
    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")
        self.where, self.what = where, what


def load_config(path: Path, *, check_files: bool = True) -> AgentConfig:
    """Read and validate ``path``; ConfigError (one line) on any problem.

    ``check_files`` also checks the files the configuration names (UID hash key, password, CA file) can be
    read; leave it on except to validate a configuration away from the machine it is meant for.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {_one_line(str(exc))}") from None
    try:
        config = _build(raw, base=path.parent)
        _check(config, check_files)
    except _KeyProblemError as problem:
        raise ConfigError(f"{path}: {_one_line(str(problem))}") from None
    return config


def _build(raw: dict[str, Any], base: Path) -> AgentConfig:
    _precheck_pin_tables(raw)
    try:
        config = msgspec.convert(raw, AgentConfig, dec_hook=_decode_custom)
    except msgspec.ValidationError as exc:
        raise _explain(str(exc)) from None
    return _resolve_paths(config, base)


def _decode_custom(cls: type, value: Any) -> Any:
    """msgspec calls this for our own types; a ValueError becomes an error at the exact key path."""
    if cls is GpioPin:
        return parse_pin(value)
    if isinstance(cls, type) and issubclass(cls, DeviceSpec):
        return parse_device(cls, value)
    if cls is Path:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"expected a file or directory path, got {_kind(value)}")
        return Path(value)
    raise NotImplementedError(cls)


def _precheck_pin_tables(raw: dict[str, Any]) -> None:
    """Pins in tables keyed by zone or door: msgspec would not name the key, so they are checked here."""
    site = raw.get("site")
    if not isinstance(site, dict):
        return
    for table in ("lights", "beams"):
        entries = site.get(table)
        if isinstance(entries, dict):
            for key, value in entries.items():
                try:
                    parse_pin(value)
                except ValueError as exc:
                    raise _KeyProblemError(f"site.{table}.{key}", str(exc)) from None


def _resolve_paths(config: AgentConfig, base: Path) -> AgentConfig:
    def rel(p: Path) -> Path:
        return p if p.is_absolute() else base / p

    def rel_opt(p: Path | None) -> Path | None:
        return None if p is None else rel(p)

    a, q = config.agent, config.mqtt
    agent = msgspec.structs.replace(a, data_dir=rel(a.data_dir), uid_hash_key_file=rel(a.uid_hash_key_file))
    tls = None if q.tls is None else msgspec.structs.replace(q.tls, ca_file=rel_opt(q.tls.ca_file))
    mqtt = msgspec.structs.replace(q, password_file=rel_opt(q.password_file), tls=tls)
    o = config.osdp
    osdp = None if o is None else msgspec.structs.replace(o, key_file=rel(o.key_file))
    kk = config.kiosk
    kiosk = None if kk is None else msgspec.structs.replace(kk, socket=rel(kk.socket))
    return msgspec.structs.replace(config, agent=agent, mqtt=mqtt, osdp=osdp, kiosk=kiosk)


def _check(config: AgentConfig, check_files: bool) -> None:
    if not config.doors:
        raise _KeyProblemError("doors", "at least one [[doors]] table is needed")
    _check_unique_doors(config)
    _check_unique(_pins(config), "pin")
    _check_unique(_devices(config), "device")
    _check_readers_distinct(config)
    for door in config.site.beams:
        if door not in {d.slug for d in config.doors}:
            raise _KeyProblemError(f"site.beams.{door}", f"no door {door!r} among the [[doors]]")
    q = config.mqtt
    if q.password_file is not None and q.username is None:
        raise _KeyProblemError("mqtt.username", "is required when mqtt.password_file is set")
    _check_osdp(config)
    if config.kiosk is not None and len(bytes(config.kiosk.socket)) > UNIX_SOCKET_PATH_MAX:
        raise _KeyProblemError(
            "kiosk.socket",
            f"a Unix socket path has at most {UNIX_SOCKET_PATH_MAX} bytes; choose a shorter one",
        )
    if check_files:
        _check_files(config)


def _check_osdp(config: AgentConfig) -> None:
    first = next((i for i, d in enumerate(config.doors) if d.reader.kind == "osdp"), None)
    o = config.osdp
    if first is not None and o is None:
        raise _KeyProblemError("osdp", f"section [osdp] is missing: doors[{first}].reader is an OSDP reader")
    if o is not None and o.bus.kind == "serial" and (o.bus.baud or 9600) not in OSDP_BAUD_RATES:
        rates = ", ".join(map(str, OSDP_BAUD_RATES))
        raise _KeyProblemError("osdp.bus", f"OSDP runs at {rates} baud, not {o.bus.baud}")


def _check_unique_doors(config: AgentConfig) -> None:
    first: dict[str, int] = {}
    for i, door in enumerate(config.doors):
        if door.slug in first:
            raise _KeyProblemError(
                f"doors[{i}].slug", f"door {door.slug!r} is already defined at doors[{first[door.slug]}]"
            )
        first[door.slug] = i


def _pins(config: AgentConfig) -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    for i, door in enumerate(config.doors):
        for key in ("relay", "contact", "exit_button", "lock_monitor", "tamper", "buzzer"):
            found.append((f"doors[{i}].{key}", getattr(door, key)))
    s = config.site
    found += [("site.fire", s.fire), ("site.intruder_arm", s.intruder_arm), ("site.speaker", s.speaker)]
    found += [(f"site.lights.{zone}", pin) for zone, pin in s.lights.items()]
    found += [(f"site.beams.{door}", pin) for door, pin in s.beams.items()]
    return found


def _devices(config: AgentConfig) -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    for i, door in enumerate(config.doors):
        found.append((f"doors[{i}].reader", door.reader))
        for key in ("keypad", "scanner"):
            spec = getattr(door, key)
            # A keypad and a scanner are both input devices: one device file cannot serve two roles.
            found.append((f"doors[{i}].{key}", None if spec is None else ("input", spec.target)))
    return found


def _check_unique(items: list[tuple[str, object]], what: str) -> None:
    seen: dict[object, str] = {}
    for where, value in items:
        if value is None:
            continue
        if value in seen:
            shown = value[1] if isinstance(value, tuple) else value
            raise _KeyProblemError(where, f"{what} {shown} is already used by {seen[value]}")
        seen[value] = where


def _check_readers_distinct(config: AgentConfig) -> None:
    """A PC/SC reader is found by a part of its name: no door's name may also pick another door's reader."""
    named: list[tuple[int, str]] = []
    for i, door in enumerate(config.doors):
        if door.reader.kind != "pcsc":
            continue
        for j, other in named:
            if other in door.reader.target or door.reader.target in other:
                raise _KeyProblemError(
                    f"doors[{i}].reader",
                    f"{door.reader.target!r} and the reader of doors[{j}] ({other!r}) could pick the same"
                    " reader; give each the full reader name (see `pcsc_scan`)",
                )
        named.append((i, door.reader.target))


def _check_files(config: AgentConfig) -> None:
    a, q = config.agent, config.mqtt
    try:
        read_uid_hash_key(a.uid_hash_key_file)
    except ValueError as exc:
        raise _KeyProblemError("agent.uid_hash_key_file", str(exc)) from None
    if q.password_file is not None:
        try:
            password = q.password()
        except OSError as exc:
            raise _KeyProblemError("mqtt.password_file", _cannot_read(q.password_file, exc)) from None
        if not password:
            raise _KeyProblemError("mqtt.password_file", f"{q.password_file} is empty")
    if q.tls is not None and q.tls.ca_file is not None and not q.tls.ca_file.is_file():
        raise _KeyProblemError("mqtt.tls.ca_file", f"{q.tls.ca_file} is not a readable file")
    o = config.osdp
    if o is not None and config.osdp_addresses():
        try:
            KeyFile(o.key_file).check(config.osdp_addresses().values(), install_mode=o.install_mode)
        except KeyFileError as exc:
            raise _KeyProblemError("osdp.key_file", str(exc)) from None


def read_uid_hash_key(path: Path) -> bytes:
    """The key as central writes it: hex text of at least 32 bytes. ValueError (one line) otherwise.

    The text is decoded exactly as central decodes it; reading the hex digits as raw bytes instead would
    give different hashes and no card would ever match.
    """
    try:
        text = path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise ValueError(_cannot_read(path, exc)) from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not hex text; copy the file from central's secrets directory") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{path} is not hex text; copy the file from central's secrets directory") from None
    if len(key) < UID_HASH_KEY_MIN_BYTES:
        raise ValueError(f"{path} holds a {len(key)}-byte key, at least {UID_HASH_KEY_MIN_BYTES} are needed")
    return key


def _cannot_read(path: Path, exc: OSError) -> str:
    return f"cannot read {path}: {exc.strerror or exc}"


# --- turning msgspec's messages into an installer's ------------------------------------------------------

_MSGSPEC_ERROR = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_TYPE_WORDS = {
    "int": "a whole number",
    "str": "a text in quotes",
    "bool": "true or false",
    "float": "a number",
    "array": "a list",
    "object": "a table",
    "null": "nothing",
}
_PATTERN_WORDS = {
    SLUG_PATTERN: "a slug: lowercase letters, digits and '-', at most 40",
}


def _explain(message: str) -> _KeyProblemError:
    match = _MSGSPEC_ERROR.match(message)
    assert match is not None  # the pattern matches any text
    what, path = match.group("what"), (match.group("path") or "").lstrip(".")
    field = re.fullmatch(r"Object (contains unknown|missing required) field `(.+)`", what)
    if field:
        key = f"{path}.{field.group(2)}" if path else field.group(2)
        if field.group(1) == "missing required":
            return _KeyProblemError(key, _missing(key))
        names = ", ".join(f.name for f in _fields_at(path))
        return _KeyProblemError(key, f"unknown key (allowed here: {names})")
    return _KeyProblemError(path or "(top level)", _reword(what, path))


def _missing(key: str) -> str:
    info = _info_at(key)
    if isinstance(info, mi.StructType):
        return f"section [{key}] is missing"
    if isinstance(info, mi.VarTupleType | mi.ListType):
        return f"at least one [[{key}]] table is needed"
    return "is required"


def _reword(what: str, path: str) -> str:
    if enum := re.fullmatch(r"Invalid enum value (.+)", what):
        info = _info_at(path)
        if isinstance(info, mi.EnumType):
            allowed = ", ".join(str(e.value) for e in info.cls)
            return f"must be one of {allowed}; got {enum.group(1)}"
    if pattern := re.fullmatch(r"Expected `str` matching regex '(.+)'", what):
        return f"must be {_PATTERN_WORDS.get(pattern.group(1), 'text matching ' + pattern.group(1))}"
    if types := re.fullmatch(r"Expected `([^`]+)`, got `([^`]+)`", what):
        wanted = " or ".join(_TYPE_WORDS.get(t, t) for t in types.group(1).split(" | "))
        return f"expected {wanted}, got {_TYPE_WORDS.get(types.group(2), types.group(2))}"
    if bound := re.fullmatch(r"Expected `int` (>=|<=) (-?\d+)", what):
        return f"must be {'at least' if bound.group(1) == '>=' else 'at most'} {bound.group(2)}"
    if length := re.fullmatch(r"Expected `str` of length (>=|<=) (\d+)", what):
        return (
            "must not be empty"
            if length.group(1) == ">="
            else f"must be at most {length.group(2)} characters"
        )
    return what


def _info_at(path: str) -> mi.Type | None:
    info: mi.Type | None = mi.type_info(AgentConfig)
    for name, index in re.findall(r"\.?([A-Za-z_]\w*)|\[(\d+|\.\.\.)\]", path):
        info = _unwrap(info)
        if name and isinstance(info, mi.StructType):
            info = next((f.type for f in info.fields if f.name == name), None)
        elif index and isinstance(info, mi.VarTupleType | mi.ListType):
            info = info.item_type
        elif index and isinstance(info, mi.DictType):
            info = info.value_type
        else:
            return None
    return _unwrap(info)


def _unwrap(info: mi.Type | None) -> mi.Type | None:
    if isinstance(info, mi.UnionType):
        rest = [t for t in info.types if not isinstance(t, mi.NoneType)]
        return rest[0] if len(rest) == 1 else info
    return info


def _fields_at(path: str) -> tuple[mi.Field, ...]:
    info = _info_at(path)
    return info.fields if isinstance(info, mi.StructType) else ()


def _kind(value: object) -> str:
    names = {
        bool: "true/false",
        int: "a number",
        float: "a number",
        str: "a text",
        list: "a list",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)


def _one_line(text: str) -> str:
    return " ".join(text.split())
