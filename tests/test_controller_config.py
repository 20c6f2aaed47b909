"""The agent's site.toml as an installer meets it: the sample loads, every mistake is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory
from typer.testing import CliRunner

from central.config import read_or_create_secret
from controller import decide, runtime
from controller.config import (
    BOARD_TO_GPIO,
    AgentConfig,
    ClockPolicy,
    ConfigError,
    GpioPin,
    load_config,
    parse_pin,
)
from meraapent.cli import app as cli
from protocol import messages as m

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "deploy" / "agent" / "site.toml"
KEY_HEX = "ab" * 32

MINIMAL = """\
[agent]
site = "heggedal"
name = "heggedal-pi-1"
data_dir = "data"
uid_hash_key_file = "uid-hash.key"

[mqtt]
host = "127.0.0.1"

[[doors]]
slug = "hovedinngang"
relay = "GPIO26"
lock_type = "fail_secure"
contact = "GPIO5"
exit_button = "GPIO6"
reader = "pcsc:Virtual PCD 00 00"
"""

SECOND_DOOR = """
[[doors]]
slug = "moterom-1"
relay = "GPIO20"
lock_type = "fail_safe"
contact = "GPIO16"
exit_button = "GPIO25"
reader = "pcsc:Virtual PCD 00 01"
"""


def write(tmp_path: Path, text: str, *, key: str | None = KEY_HEX) -> Path:
    if key is not None:
        (tmp_path / "uid-hash.key").write_text(key + "\n")
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str, *, key: str | None = KEY_HEX) -> str:
    path = write(tmp_path, text, key=key)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    prefix = f"{path}: "
    assert message.startswith(prefix)
    return message[len(prefix) :]


def test_the_sample_for_a_raspberry_pi_loads() -> None:
    config = load_config(SAMPLE, check_files=False)  # its secret files live on the Pi, not here
    assert config.agent.site == "heggedal"
    assert config.agent.clock_policy is ClockPolicy.STAFF_ONLY
    assert [d.slug for d in config.doors] == ["hovedinngang", "moterom-1"]
    entrance = config.door("hovedinngang")
    assert (entrance.reader.kind, entrance.reader.target) == ("pcsc", "ACS ACR122U PICC Interface 00")
    assert entrance.lock_type is m.LockType.FAIL_SECURE
    assert config.door("moterom-1").lock_type is m.LockType.FAIL_SAFE
    assert config.site.fire == GpioPin(4)
    assert set(config.site.lights) == {"torg", "moterom"}
    assert config.mqtt.tls is not None and config.mqtt.tls.ca_file == Path("/etc/meraapent/mqtt-ca.pem")


def test_a_minimal_config_gets_safe_defaults_and_paths_next_to_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + SECOND_DOOR))
    assert config.agent.data_dir == tmp_path / "data"
    assert config.agent.uid_hash_key() == bytes.fromhex(KEY_HEX)
    assert config.agent.clock_policy is ClockPolicy.STAFF_ONLY
    assert (config.mqtt.port, config.mqtt.keepalive, config.mqtt.tls, config.mqtt.password()) == (
        1883, 15, None, None,
    )  # fmt: skip
    door = config.doors[0]
    assert (str(door.relay), door.relay_active_high, door.keypad, door.scanner) == (
        "GPIO26",
        True,
        None,
        None,
    )
    assert config.site.fire is None and config.site.lights == {}


def test_pins_accept_gpiozero_spellings_and_mean_the_same_pin_as_gpiozero() -> None:
    assert {parse_pin(v) for v in ("GPIO17", "gpio17", "BCM17", "BOARD11", "J8:11", 17, "17")} == {
        GpioPin(17)
    }
    factory = MockFactory()
    try:
        for board, gpio in BOARD_TO_GPIO.items():
            assert factory.pin(f"BOARD{board}").info.name == str(GpioPin(gpio))
    finally:
        factory.close()


def test_the_uid_hash_key_is_read_exactly_as_central_wrote_it(tmp_path: Path) -> None:
    central_key = read_or_create_secret(tmp_path / "secrets" / "uid-hash.key", 32)
    text = MINIMAL.replace('"uid-hash.key"', '"secrets/uid-hash.key"')
    config = load_config(write(tmp_path, text, key=None))
    assert config.agent.uid_hash_key() == central_key


def test_mqtt_credentials_come_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "mqtt-password").write_text("s3cret pass\n")
    text = MINIMAL.replace(
        'host = "127.0.0.1"', 'host = "broker"\nusername = "heggedal"\npassword_file = "mqtt-password"'
    )
    config = load_config(write(tmp_path, text))
    assert (config.mqtt.username, config.mqtt.password()) == ("heggedal", "s3cret pass")
    assert "s3cret" not in repr(config)


def test_devices_parse_into_kind_and_target(tmp_path: Path) -> None:
    text = MINIMAL + 'keypad = "/dev/input/by-id/keypad"\nscanner = "serial:/dev/ttyACM0@9600"\n'
    door = load_config(write(tmp_path, text)).doors[0]
    assert door.keypad is not None and (door.keypad.kind, door.keypad.target) == (
        "evdev",
        "/dev/input/by-id/keypad",
    )
    assert door.scanner is not None
    assert (door.scanner.kind, door.scanner.target, door.scanner.baud) == ("serial", "/dev/ttyACM0", 9600)


def edit(old: str, new: str, base: str = MINIMAL + SECOND_DOOR) -> str:
    assert old in base
    return base.replace(old, new, 1)


HINT = "write it as GPIO17, BOARD11 or 17 (the BCM number)"
DOOR_KEYS = (
    "slug, relay, lock_type, contact, exit_button, reader, relay_active_high, lock_monitor, tamper, keypad,"
    " scanner, buzzer"
)

CASES = [
    pytest.param(
        edit('exit_button = "GPIO6"', 'exit_buton = "GPIO6"'),
        f"doors[0].exit_buton: unknown key (allowed here: {DOOR_KEYS})",
        id="misspelt-key",
    ),
    pytest.param(
        MINIMAL + SECOND_DOOR + '\n[sites]\nfire = "GPIO4"\n',
        "sites: unknown key (allowed here: agent, mqtt, doors, site, osdp, kiosk)",
        id="unknown-section",
    ),
    pytest.param(edit('relay = "GPIO20"\n', ""), "doors[1].relay: is required", id="missing-key"),
    pytest.param(
        edit('[mqtt]\nhost = "127.0.0.1"\n', ""), "mqtt: section [mqtt] is missing", id="missing-section"
    ),
    pytest.param(
        MINIMAL[: MINIMAL.index("[[doors]]")], "doors: at least one [[doors]] table is needed", id="no-doors"
    ),
    pytest.param(
        "doors = []\n" + MINIMAL[: MINIMAL.index("[[doors]]")],
        "doors: at least one [[doors]] table is needed",
        id="empty-doors",
    ),
    pytest.param(
        edit('relay = "GPIO20"', 'relay = "GPIO40"'),
        f"doors[1].relay: 'GPIO40': the header has GPIO0 to GPIO27; {HINT}",
        id="pin-out-of-range",
    ),
    pytest.param(
        edit('relay = "GPIO20"', 'relay = "BOARD6"'),
        "doors[1].relay: 'BOARD6' is a power or ground pin of the header, not a GPIO",
        id="pin-is-ground",
    ),
    pytest.param(
        edit('relay = "GPIO20"', 'relay = "relay-1"'),
        "doors[1].relay: 'relay-1' is not a pin name; write it as GPIO17, BOARD11 or 17 (the BCM number)",
        id="pin-not-a-name",
    ),
    pytest.param(
        edit('relay = "GPIO20"', "relay = true"),
        "doors[1].relay: expected a pin name or number, got true/false;"
        " write it as GPIO17, BOARD11 or 17 (the BCM number)",
        id="pin-boolean",
    ),
    pytest.param(
        edit('relay = "GPIO20"', 'relay = "WPI0"'),
        f"doors[1].relay: WiringPi numbers ('WPI0') are not accepted; {HINT}",
        id="pin-wiringpi",
    ),
    pytest.param(
        edit('relay = "GPIO20"', 'relay = "BOARD11"') + "\n[site]\nfire = 17\n",
        "site.fire: pin GPIO17 is already used by doors[1].relay",
        id="pin-used-twice-under-two-names",
    ),
    pytest.param(
        edit('contact = "GPIO16"', 'contact = "GPIO5"'),
        "doors[1].contact: pin GPIO5 is already used by doors[0].contact",
        id="pin-shared-by-two-doors",
    ),
    pytest.param(
        edit('slug = "moterom-1"', 'slug = "hovedinngang"'),
        "doors[1].slug: door 'hovedinngang' is already defined at doors[0]",
        id="duplicate-door",
    ),
    pytest.param(
        edit('lock_type = "fail_safe"', 'lock_type = "fail_open"'),
        "doors[1].lock_type: must be one of fail_secure, fail_safe; got 'fail_open'",
        id="bad-lock-type",
    ),
    pytest.param(
        edit('name = "heggedal-pi-1"', 'name = "heggedal-pi-1"\nclock_policy = "allow_all"'),
        "agent.clock_policy: must be one of staff_only, deny_all, normal; got 'allow_all'",
        id="bad-clock-policy",
    ),
    pytest.param(
        edit('site = "heggedal"', 'site = "Heggedal torg"'),
        "agent.site: must be a slug: lowercase letters, digits and '-', at most 40",
        id="site-not-a-slug",
    ),
    pytest.param(
        edit('host = "127.0.0.1"', 'host = "127.0.0.1"\nport = "1883"'),
        "mqtt.port: expected a whole number, got a text in quotes",
        id="port-as-text",
    ),
    pytest.param(
        edit('host = "127.0.0.1"', 'host = "127.0.0.1"\nport = 0'),
        "mqtt.port: must be at least 1",
        id="port-zero",
    ),
    pytest.param(edit('host = "127.0.0.1"', 'host = ""'), "mqtt.host: must not be empty", id="empty-host"),
    pytest.param(
        MINIMAL + SECOND_DOOR + '\n[site.lights]\ntorg = "GPIO99"\n',
        f"site.lights.torg: 'GPIO99': the header has GPIO0 to GPIO27; {HINT}",
        id="bad-light-pin",
    ),
    pytest.param(
        MINIMAL + SECOND_DOOR + '\n[site.beams]\nbakdor = "GPIO27"\n',
        "site.beams.bakdor: no door 'bakdor' among the [[doors]]",
        id="beam-for-unknown-door",
    ),
    pytest.param(
        edit('reader = "pcsc:Virtual PCD 00 01"', 'reader = "ACR122U"'),
        "doors[1].reader: expected 'pcsc:<reader name>' (e.g. 'pcsc:ACS ACR122U') or 'osdp:<bus address>',"
        " got 'ACR122U'",
        id="reader-without-kind",
    ),
    pytest.param(
        edit('reader = "pcsc:Virtual PCD 00 01"', 'reader = "pcsc:Virtual PCD"'),
        "doors[1].reader: 'Virtual PCD' and the reader of doors[0] ('Virtual PCD 00 00') could pick the same"
        " reader; give each the full reader name (see `pcsc_scan`)",
        id="readers-ambiguous",
    ),
    pytest.param(
        MINIMAL + 'scanner = "serial:ttyACM0"\n',
        "doors[0].scanner: serial needs an absolute device path, got 'ttyACM0'",
        id="scanner-relative-path",
    ),
    pytest.param(
        MINIMAL + 'scanner = "/dev/input/event3"\n' + SECOND_DOOR + 'keypad = "evdev:/dev/input/event3"\n',
        "doors[1].keypad: device /dev/input/event3 is already used by doors[0].scanner",
        id="input-device-used-twice",
    ),
    pytest.param(
        edit('host = "127.0.0.1"', 'host = "127.0.0.1"\npassword_file = "pw"'),
        "mqtt.username: is required when mqtt.password_file is set",
        id="password-without-username",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_a_mistake_is_one_line_naming_the_key(tmp_path: Path, text: str, expected: str) -> None:
    assert error_of(tmp_path, text) == expected


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"site\.toml: no such configuration file$"):
        load_config(tmp_path / "site.toml")


def test_a_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    text = MINIMAL.replace('name = "heggedal-pi-1"', "name = heggedal-pi-1")
    assert error_of(tmp_path, text).startswith("TOML syntax error: ")
    assert "(at line 3, column 8)" in error_of(tmp_path, text)


def test_a_key_given_twice_is_a_syntax_error(tmp_path: Path) -> None:
    text = MINIMAL.replace('relay = "GPIO26"', 'relay = "GPIO26"\nrelay = "GPIO21"')
    assert error_of(tmp_path, text) == "TOML syntax error: Cannot overwrite a value (at line 13, column 17)"


def test_secret_files_are_checked(tmp_path: Path) -> None:
    key_file = tmp_path / "uid-hash.key"
    assert error_of(tmp_path, MINIMAL, key=None) == (
        f"agent.uid_hash_key_file: cannot read {key_file}: No such file or directory"
    )
    assert error_of(tmp_path, MINIMAL, key="ab" * 16) == (
        f"agent.uid_hash_key_file: {key_file} holds a 16-byte key, at least 32 are needed"
    )
    assert error_of(tmp_path, MINIMAL, key="not hex at all") == (
        f"agent.uid_hash_key_file: {key_file} is not hex text; copy the file from central's secrets directory"
    )
    with_password = MINIMAL.replace('host = "127.0.0.1"', 'host = "b"\nusername = "u"\npassword_file = "pw"')
    assert error_of(tmp_path, with_password) == (
        f"mqtt.password_file: cannot read {tmp_path / 'pw'}: No such file or directory"
    )
    (tmp_path / "pw").write_text("\n")
    assert error_of(tmp_path, with_password) == f"mqtt.password_file: {tmp_path / 'pw'} is empty"
    with_ca = MINIMAL.replace('host = "127.0.0.1"', 'host = "b"\n[mqtt.tls]\nca_file = "ca.pem"')
    assert error_of(tmp_path, with_ca) == f"mqtt.tls.ca_file: {tmp_path / 'ca.pem'} is not a readable file"
    assert load_config(write(tmp_path, with_ca, key=None), check_files=False).mqtt.tls is not None


# --- OSDP readers ----------------------------------------------------------------------------------------

READER_KEY = "3f9c1e0b7a2d48c6915e0f7b2a6d4c81"
OSDP = """
[osdp]
bus = "serial:/dev/ttyAMA0@38400"
key_file = "secrets/osdp.keys"
"""


def with_osdp_reader(base: str = MINIMAL, reader: str = "osdp:01", osdp: str = OSDP) -> str:
    return base.replace('reader = "pcsc:Virtual PCD 00 00"', f'reader = "{reader}"') + osdp


def write_reader_keys(tmp_path: Path, text: str = f"1 {READER_KEY}\n") -> Path:
    (tmp_path / "secrets").mkdir(exist_ok=True)
    path = tmp_path / "secrets" / "osdp.keys"
    path.write_text(text)
    return path


def test_an_osdp_reader_names_its_bus_address_and_the_key_file_not_the_key(tmp_path: Path) -> None:
    key_file = write_reader_keys(tmp_path)
    config = load_config(write(tmp_path, with_osdp_reader(MINIMAL + SECOND_DOOR)))
    assert str(config.doors[0].reader) == "osdp:1"  # "osdp:01" is the same reader
    assert config.osdp_addresses() == {"hovedinngang": 1}
    assert config.osdp is not None
    assert (config.osdp.bus.kind, config.osdp.bus.target, config.osdp.bus.baud) == (
        "serial",
        "/dev/ttyAMA0",
        38400,
    )
    assert (config.osdp.key_file, config.osdp.install_mode) == (key_file, False)
    assert READER_KEY not in repr(config)
    sim = with_osdp_reader(osdp='\n[osdp]\nbus = "sim:heggedal"\nkey_file = "secrets/osdp.keys"\n')
    bus = load_config(write(tmp_path, sim)).osdp
    assert bus is not None and (bus.bus.kind, bus.bus.target) == ("sim", "heggedal")


NOT_AN_ADDRESS = "doors[0].reader: osdp needs the reader's bus address, 0 to 126, got"
OSDP_CASES = [
    pytest.param(
        with_osdp_reader(osdp=""),
        "osdp: section [osdp] is missing: doors[0].reader is an OSDP reader",
        id="no-osdp-section",
    ),
    pytest.param(with_osdp_reader(reader="osdp:127"), f"{NOT_AN_ADDRESS} '127'", id="address-too-big"),
    pytest.param(with_osdp_reader(reader="osdp:door"), f"{NOT_AN_ADDRESS} 'door'", id="address-not-number"),
    pytest.param(
        with_osdp_reader(MINIMAL + SECOND_DOOR.replace("pcsc:Virtual PCD 00 01", "osdp:1")),
        "doors[1].reader: device osdp:1 is already used by doors[0].reader",
        id="address-twice",
    ),
    pytest.param(
        with_osdp_reader(osdp=OSDP.replace("@38400", "@12345")),
        "osdp.bus: OSDP runs at 9600, 19200, 38400, 57600, 115200, 230400 baud, not 12345",
        id="bad-baud",
    ),
    pytest.param(
        with_osdp_reader(osdp=OSDP.replace("serial:/dev/ttyAMA0", "rs485:/dev/ttyAMA0")),
        "osdp.bus: expected 'serial:/dev/ttyAMA0@9600' (an RS-485 port; 9600 baud if not given) or"
        " 'sim:<name>', got 'rs485:/dev/ttyAMA0@38400'",
        id="bad-bus",
    ),
    pytest.param(
        with_osdp_reader(osdp=OSDP + 'scbk = "00112233445566778899aabbccddeeff"\n'),
        "osdp.scbk: unknown key (allowed here: bus, key_file, install_mode)",
        id="key-in-config",
    ),
]


@pytest.mark.parametrize(("text", "expected"), OSDP_CASES)
def test_an_osdp_mistake_is_one_line_naming_the_key(tmp_path: Path, text: str, expected: str) -> None:
    write_reader_keys(tmp_path)
    assert error_of(tmp_path, text) == expected


def test_every_osdp_reader_needs_a_key_unless_in_install_mode(tmp_path: Path) -> None:
    key_file = tmp_path / "secrets" / "osdp.keys"
    two_readers = with_osdp_reader(MINIMAL + SECOND_DOOR.replace("pcsc:Virtual PCD 00 01", "osdp:2"))
    write_reader_keys(tmp_path)
    assert error_of(tmp_path, two_readers) == (
        f"osdp.key_file: {key_file}: no key for OSDP reader 2; add a line '<address> <32 hex digits>' per"
        " reader, or set install_mode = true once to key new readers"
    )
    installing = two_readers.replace(
        'key_file = "secrets/osdp.keys"', 'key_file = "secrets/osdp.keys"\ninstall_mode = true'
    )
    config = load_config(write(tmp_path, installing))
    assert config.osdp is not None and config.osdp.install_mode
    assert key_file.read_text() == f"1 {READER_KEY}\n"  # checking never writes keys
    key_file.unlink()
    load_config(write(tmp_path, installing))  # install mode creates the file when it keys the readers
    assert error_of(tmp_path, two_readers) == f"osdp.key_file: {key_file}: no such key file"
    write_reader_keys(tmp_path, "1 nothex\n")
    assert error_of(tmp_path, installing) == (
        f"osdp.key_file: {key_file} line 1: expected '<reader bus address> <32 hex digits>'"
    )


# --- the command an installer and systemd run -------------------------------------------------------------

runner = CliRunner()


def test_check_config_shows_what_the_agent_would_drive(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL + 'keypad = "/dev/input/by-id/keypad"\n' + SECOND_DOOR + '\n[site]\nfire = "BOARD7"\n',
    )
    result = runner.invoke(cli, ["agent", "check-config", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{path}: valid",
        f"site heggedal, agent heggedal-pi-1, data in {tmp_path / 'data'}",
        "clock policy staff_only, journal up to 256 MB",
        "broker mqtt://127.0.0.1:1883 anonymously, keepalive 15 s",
        "door hovedinngang: relay GPIO26 (fail_secure), contact GPIO5, exit button GPIO6,"
        " reader pcsc:Virtual PCD 00 00, keypad evdev:/dev/input/by-id/keypad",
        "door moterom-1: relay GPIO20 (fail_safe), contact GPIO16, exit button GPIO25,"
        " reader pcsc:Virtual PCD 00 01",
        "site: fire GPIO4",
    ]
    assert KEY_HEX not in result.output


def test_a_bad_config_stops_the_agent_with_one_line_and_exit_code_2(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('relay = "GPIO26"', 'relay = "GPIO99"'))
    for args in (["agent", "--config", str(path)], ["agent", "check-config", "--config", str(path)]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2
        assert result.stderr.startswith(f"error: {path}: doors[0].relay: 'GPIO99': the header has")
        assert len(result.stderr.splitlines()) == 1


def test_the_agent_command_runs_the_runtime_with_the_loaded_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, MINIMAL)
    started: list[AgentConfig] = []

    def run(config: AgentConfig) -> int:
        started.append(config)
        return 3

    monkeypatch.setattr(runtime, "run", run)
    result = runner.invoke(cli, ["agent", "--config", str(path)])
    assert result.exit_code == 3
    assert started == [load_config(path)]


def test_an_agent_without_gpio_pins_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    result = runner.invoke(cli, ["agent", "--config", str(write(tmp_path, MINIMAL))])
    assert result.exit_code == 1
    assert "no GPIO pins" in result.output and "GPIOZERO_PIN_FACTORY=mock" in result.output
    assert "Traceback" not in result.output


def test_the_clock_policies_are_the_ones_the_decision_engine_knows() -> None:
    assert [p.value for p in ClockPolicy] == [p.value for p in decide.ClockPolicy]
