"""The fault matrix (issue #8): central, the agent and the brokers in processes of their own, killed for real,
a WAN cut for a simulated day, a full disk and a jumping clock; after each fault the same properties are
checked against central's database, the agent's journal and the wires of its relays.

`python -m hw_sim.faults` (`make faults`) runs the full matrix and prints its table; tests/test_faults.py
runs the short form. See docs/reliability.md for the figures and how the design reaches them.
"""
