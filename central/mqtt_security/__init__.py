"""Broker security made by central: a private CA and the broker's TLS certificate (`ca`), one password per
site agent and for central (`passwords`), per-site ACLs from the topic contract (`acl`), and the mosquitto
files that put them together (`bundle`), written by `meraapent central mqtt-ca` and `mqtt-config`.
"""
