"""`meraapent agent`: the agent process on a Raspberry Pi (or on simulated pins, with a MockFactory).

Start-up order is the safety argument: outputs at their safe levels and the fire release armed first
(controller.hardware), then the local stores and the last known config (decisions work offline from here),
then the inputs, then MQTT. Shutdown runs it backwards and leaves every lock locked.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

import structlog
from gpiozero import BadPinFactory, Factory, GPIOZeroError

from controller.agent import Agent, AgentSettings
from controller.clock import Clock, SystemClock
from controller.config import AgentConfig
from controller.decide import ClockPolicy
from controller.hardware import Hardware, HardwareError
from controller.journal import JournalError
from controller.kiosk_server import KioskServer
from controller.link import AgentLink, StatusReport
from controller.replica import ReplicaError

log = structlog.get_logger("controller.runtime")

STATUS_EVERY_S = 60.0


@dataclass
class RunningAgent:
    agent: Agent
    hardware: Hardware
    link: AgentLink
    kiosk: KioskServer | None = None

    def close(self) -> None:
        """Inputs first, so nothing new arrives; then MQTT (offline status); then the locks, safely."""
        if self.kiosk is not None:
            self.kiosk.stop()
        self.hardware.stop_inputs()
        self.link.stop()
        self.agent.close()
        self.hardware.close()


def agent_settings(config: AgentConfig) -> AgentSettings:
    a = config.agent
    settings = AgentSettings(
        site=a.site,
        name=a.name,
        data_dir=a.data_dir,
        uid_hash_key=a.uid_hash_key(),
        clock_policy=ClockPolicy(a.clock_policy.value),
        journal_max_bytes=a.journal_max_mb * 1024 * 1024,
    )
    if config.kiosk is not None:
        settings.kiosk_session_seconds = float(config.kiosk.session_seconds)
    return settings


def start(config: AgentConfig, *, clock: Clock | None = None, factory: Factory | None = None) -> RunningAgent:
    """Bring the agent up (not its loop): hardware safe, stores open, inputs and MQTT running."""
    clock = clock or SystemClock()
    hardware = Hardware(config, factory=factory)
    try:
        agent = Agent(agent_settings(config), clock, dict(hardware.doors), site_hardware=hardware.site)
    except Exception:
        hardware.close()
        raise
    a = config.agent
    link = AgentLink(config.mqtt, a.site, a.name, agent, clock, on_connected=agent.on_connected)
    agent.link = link
    hardware.start(agent.submit)
    kiosk = None
    if config.kiosk is not None:  # check-in at the torg works from here on, with or without central
        kiosk = KioskServer(config.kiosk.socket, agent.ask_kiosk)
        try:
            kiosk.start()
        except OSError:
            hardware.stop_inputs()
            agent.close()
            hardware.close()
            raise
    link.start()
    return RunningAgent(agent, hardware, link, kiosk)


def publish_status(running: RunningAgent) -> None:
    agent = running.agent
    config = agent.replica.config()
    running.link.publish_status(
        StatusReport(
            replica_seq=agent.replica.seq,
            config_revision=config.revision if config else None,
            outbox_pending=agent.journal.pending_count(),
            clock_ok=not agent.clock_alarm,
        )
    )


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("runtime.stopping", signal=signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(config: AgentConfig, *, stop: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or `stop`); returns the process exit code."""
    stop = stop or threading.Event()
    try:
        running = start(config)
    except BadPinFactory as exc:
        print(
            f"error: no GPIO pins here ({exc}); on a Raspberry Pi install python3-lgpio, elsewhere try "
            "the agent on simulated pins with GPIOZERO_PIN_FACTORY=mock"
        )
        return 1
    except (HardwareError, ReplicaError, JournalError, GPIOZeroError, OSError) as exc:
        log.error("runtime.start_failed", error=str(exc))
        print(f"error: the agent could not start: {exc}")
        return 1
    log.info("runtime.ready", site=config.agent.site, doors=len(running.hardware.doors))
    status = threading.Thread(target=_report_status, args=(running, stop), daemon=True)
    try:
        with stop_on_signals(stop):
            status.start()
            running.agent.run(stop)
    finally:
        stop.set()
        running.close()
    return 0


def _report_status(running: RunningAgent, stop: threading.Event) -> None:
    while not stop.wait(STATUS_EVERY_S):
        running.agent.submit(lambda: publish_status(running))
