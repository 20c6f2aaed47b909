"""Central's commands, sent by the harness as central's gateway sends them (QoS 1, never retained), so a
command can carry the times of a central whose clock disagrees with the agent's, or be sent twice."""

from __future__ import annotations

import uuid
from datetime import datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from central.services.commands import CommandAction, build_command
from protocol import codec
from protocol import messages as m
from protocol.topics import Channel, site_topic

PUBLISH_TIMEOUT_S = 10.0


def unlock(site: str, door: str, issued_at: datetime) -> m.Command:
    """A remote unlock of `door` for 3 s, issued by central at `issued_at` (central's commands live 30 s)."""
    return build_command(
        site=site,
        action=CommandAction.UNLOCK,
        issued_by="fault-harness",
        reason="fault matrix: clock jumps",
        now=issued_at,
        door=door,
        duration_seconds=3,
    )


def send(host: str, port: int, command: m.Command) -> None:
    """Publish `command` on its site's command topic and return once the broker has it."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"fault-harness-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )
    client.connect(host, port, keepalive=10)
    client.loop_start()
    try:
        info = client.publish(site_topic(command.site, Channel.COMMAND), codec.encode(command), qos=1)
        info.wait_for_publish(PUBLISH_TIMEOUT_S)
    finally:
        client.disconnect()
        client.loop_stop()
