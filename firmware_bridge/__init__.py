"""The link to reader firmware on the RS-485 bus: an OSDP control panel (libosdp, IEC 60839-11-5).

- formats: card data (raw bytes, Wiegand 26/34) and keypad codes into what the agent understands; pure.
- feedback: the agent's Feedback as OSDP LED and beeper commands; pure.
- keys: the per-reader secure channel keys (SCBK) file.
- channel: the bus itself: a serial port, an in-memory bus for the simulator, a socket pair.
- cp: the control panel: every OSDP reader of a site on one bus, speaking controller.inputs to the agent.

hw_sim.osdp_reader is the simulated reader on the other side of the bus.
"""
