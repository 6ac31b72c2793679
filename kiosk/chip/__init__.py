"""The ePassport chip, kiosk side: trust decisions over what the chip holds (passive and active
authentication, the trust store) and the test passport issuer. Reading the chip is ``drivers.chip``."""
