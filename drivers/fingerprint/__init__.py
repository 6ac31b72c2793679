"""ZhianTec R30x / AS608 fingerprint modules on a serial port: protocol, driver and simulator.

``build(section)`` is what the composition root calls; ``simulator.R30xSimulator`` and
``simulator.template_for`` serve simulated travellers.
"""

from drivers.fingerprint.factory import build

__all__ = ["build"]
