"""Central's MQTT gateway: ingests what site agents send, publishes what they need (see service.Gateway)."""

from central.gateway.service import Gateway, GatewayUnavailable, run_gateway

__all__ = ["Gateway", "GatewayUnavailable", "run_gateway"]
