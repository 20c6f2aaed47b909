"""The site's hardware as the agent sees it, built from the agent's config.

Outputs (lock relays, buzzers, lights) are created first and at their safe levels, before anything else
runs; the fire release is armed right after, so from then on a fire alarm opens the doors whatever the rest
of the agent does. Inputs (pins, readers, keypads, scanners) start only when the agent can take their
events (`start`). Everything takes a gpiozero pin factory, so the simulator and tests use MockFactory.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Protocol

from gpiozero import Factory

from controller.config import AgentConfig, DeviceSpec, DoorHardware
from controller.devices.gpio import BinaryInputs, FireRelease, InputPin, LockRelay, Output, Pin
from controller.devices.keyboard import KeyboardWedge
from controller.devices.pcsc import PcscReader
from controller.devices.serial_scanner import SerialScanner
from controller.inputs import Feedback, InputSink, Signal
from firmware_bridge.channel import open_bus
from firmware_bridge.cp import OsdpBus, OsdpReader
from firmware_bridge.keys import KeyFile, KeyFileError

SPEAKER_PULSE_S = 2.0


class HardwareError(RuntimeError):
    """The config names hardware this agent cannot drive."""


class Device(Protocol):
    def start(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> None: ...


class FeedbackTarget(Protocol):
    """A reader that can show feedback itself (an OSDP reader's LEDs and beeper)."""

    def feedback(self, feedback: Feedback) -> None: ...


@dataclass
class GpioDoor:
    """One door's outputs: what controller.agent.DoorHardware asks for."""

    relay: LockRelay
    buzzer_output: Output | None = None
    reader: FeedbackTarget | None = None  # set when the door's reader shows feedback itself

    def feedback(self, feedback: Feedback) -> None:
        if self.reader is not None:
            self.reader.feedback(feedback)

    def set_unlocked(self, unlocked: bool) -> None:
        self.relay.set_unlocked(unlocked)

    def buzzer(self, on: bool) -> None:
        if self.buzzer_output is not None:
            self.buzzer_output.set(on)

    def close(self) -> None:
        self.relay.close()
        if self.buzzer_output is not None:
            self.buzzer_output.close()


@dataclass
class GpioSite:
    """Site-wide outputs: zone lights, the intruder alarm's arm line, the closing announcement speaker."""

    lights_by_zone: dict[str, Output] = field(default_factory=dict)
    intruder: Output | None = None
    speaker: Output | None = None
    _speaker_off: threading.Timer | None = field(default=None, repr=False)

    def lights(self, zone: str, on: bool) -> None:
        light = self.lights_by_zone.get(zone)
        if light is not None:
            light.set(on)

    def intruder_armed(self, armed: bool) -> None:
        if self.intruder is not None:
            self.intruder.set(armed)

    def announce_closing(self, minutes_left: int) -> None:
        """A short pulse on the speaker line (the amplifier plays its stored closing message)."""
        speaker = self.speaker
        if speaker is None:
            return
        if self._speaker_off is not None:
            self._speaker_off.cancel()
        speaker.on()
        self._speaker_off = threading.Timer(SPEAKER_PULSE_S, speaker.off)
        self._speaker_off.daemon = True
        self._speaker_off.start()

    def close(self) -> None:
        if self._speaker_off is not None:
            self._speaker_off.cancel()
        for output in [*self.lights_by_zone.values(), self.intruder, self.speaker]:
            if output is not None:
                output.close()


class Hardware:
    """All of a site's devices. Construct (outputs safe, fire armed), `start(sink)`, then `close()`."""

    def __init__(self, config: AgentConfig, *, factory: Factory | None = None) -> None:
        self._config = config
        self._factory = factory
        self._sink: InputSink | None = None
        self.doors: dict[str, GpioDoor] = {}
        self.site = GpioSite()
        self._inputs: BinaryInputs | None = None
        self._devices: list[Device] = []
        self._osdp: OsdpBus | None = None
        self.fire: FireRelease | None = None
        try:
            self._build_outputs()
            fire = config.site.fire
            if fire is not None:  # armed now: it needs nothing but the relays
                relays = [door.relay for door in self.doors.values()]
                self.fire = FireRelease(str(fire), relays, sink=self._forward, factory=factory)
        except Exception:
            self.close()
            raise

    def _forward(self, event: object) -> None:
        if self._sink is not None:
            self._sink(event)  # type: ignore[arg-type]

    def _output(self, pin: object) -> Output:
        return Output(str(pin), factory=self._factory)

    def _build_outputs(self) -> None:
        for door in self._config.doors:
            relay = LockRelay(
                str(door.relay),
                lock_type=door.lock_type.value,
                active_high=door.relay_active_high,
                factory=self._factory,
            )
            buzzer = self._output(door.buzzer) if door.buzzer is not None else None
            self.doors[door.slug] = GpioDoor(relay, buzzer)
        site = self._config.site
        self.site.lights_by_zone = {zone: self._output(pin) for zone, pin in site.lights.items()}
        self.site.intruder = self._output(site.intruder_arm) if site.intruder_arm is not None else None
        self.site.speaker = self._output(site.speaker) if site.speaker is not None else None

    def start(self, sink: InputSink) -> None:
        """Start reporting inputs to `sink` (the agent's queue); each input reports its state once first."""
        self._sink = sink
        self._inputs = BinaryInputs(self._input_pins(), sink, factory=self._factory)
        self._inputs.start()
        for door in self._config.doors:
            self._devices += self._door_devices(door, sink)
        for device in self._devices:
            device.start()

    def _input_pins(self) -> dict[Pin, InputPin]:
        pins: dict[Pin, InputPin] = {}
        for door in self._config.doors:
            # every input switches to ground when active, against the internal pull-up (see deploy/agent)
            pins[str(door.contact)] = InputPin(Signal.DOOR_CONTACT, door.slug)
            pins[str(door.exit_button)] = InputPin(Signal.EXIT_BUTTON, door.slug)
            if door.lock_monitor is not None:
                pins[str(door.lock_monitor)] = InputPin(Signal.LOCK_MONITOR, door.slug)
            if door.tamper is not None:
                pins[str(door.tamper)] = InputPin(Signal.TAMPER, door.slug)
        for slug, pin in self._config.site.beams.items():
            pins[str(pin)] = InputPin(Signal.BEAM, slug)
        return pins

    def _door_devices(self, door: DoorHardware, sink: InputSink) -> list[Device]:
        osdp = self._osdp_bus() if door.reader.kind == "osdp" else None
        reader = reader_device(door.reader, door.slug, sink, osdp=osdp)
        if isinstance(reader, OsdpReader):
            self.doors[door.slug].reader = reader  # the agent's feedback lights the reader's LEDs
        devices: list[Device] = [reader]
        if door.keypad is not None:
            devices.append(KeyboardWedge(door.keypad.target, door.slug, sink, mode="keypad"))
        if door.scanner is not None:
            devices.append(scanner_device(door.scanner, door.slug, sink))
        return devices

    def stop_inputs(self) -> None:
        """No more input events (the fire release stays armed until close)."""
        for device in self._devices:
            device.stop()
        self._devices = []
        if self._inputs is not None:
            self._inputs.close()
            self._inputs = None

    def close(self) -> None:
        """Stop the inputs, then put every output in its safe state (locks locked) and let go."""
        self.stop_inputs()
        if self.fire is not None:
            self.fire.close()
        for door in self.doors.values():
            door.close()
        self.site.close()

    def _osdp_bus(self) -> OsdpBus:
        """The one control panel for every OSDP reader of the site (their keys read, or made in install
        mode, before anything is sent on the bus)."""
        if self._osdp is None:
            settings = self._config.osdp
            if settings is None:
                raise HardwareError("OSDP readers need an [osdp] section in the configuration")
            addresses = self._config.osdp_addresses().values()
            try:
                keys = KeyFile(settings.key_file).keys_for(addresses, install_mode=settings.install_mode)
            except KeyFileError as exc:
                raise HardwareError(str(exc)) from None
            bus = settings.bus
            self._osdp = OsdpBus(
                open_bus(bus.kind, bus.target, bus.baud),
                keys,
                install_mode=settings.install_mode,
                key_file=str(settings.key_file),
            )
        return self._osdp


def reader_device(spec: DeviceSpec, door: str, sink: InputSink, *, osdp: OsdpBus | None = None) -> Device:
    """The device behind a door's reader; an OSDP reader joins `osdp`, the site's one OSDP bus."""
    if spec.kind == "pcsc":
        return PcscReader(re.escape(spec.target), door, sink)
    if spec.kind == "osdp":
        if osdp is None:
            raise HardwareError(f"door {door}: reader {spec} needs the site's OSDP bus ([osdp] section)")
        return osdp.reader(int(spec.target), door, sink)
    raise HardwareError(f"door {door}: reader {spec} is not supported")


def scanner_device(spec: DeviceSpec, door: str, sink: InputSink) -> Device:
    if spec.kind == "serial":
        return SerialScanner(spec.target, door, sink, baudrate=spec.baud or 9600)
    return KeyboardWedge(spec.target, door, sink, mode="scanner")
