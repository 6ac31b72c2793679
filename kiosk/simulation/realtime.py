"""The simulated lane at human pace, for the touchscreen (and anyone who watches it).

The headless lane advances a simulated clock instead of waiting; on screen that would make a
traveller's whole transaction flash past and leave the engine loop spinning between travellers.
Here every wait sleeps for real and each device takes ``device_delay_s`` of real time.
"""

from __future__ import annotations

import time

from drivers.simulated.lane import SimulatedLane


class RealTimeLane(SimulatedLane):
    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    def work(self) -> None:
        if self.device_delay_s:
            time.sleep(self.device_delay_s)
