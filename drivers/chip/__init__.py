"""ePassport chip (ICAO 9303): the LDS files in ``lds``; the card transport beside it."""
