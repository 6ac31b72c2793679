"""ZhianTec R30x / AS608 fingerprint modules on a serial port: protocol, driver and simulator.

``options`` holds the ``[devices.fingerprint]`` sections; ``factory.build(section)`` is what the
composition root calls; ``simulator.R30xSimulator`` and ``simulator.template_for`` serve simulated
travellers.
"""
