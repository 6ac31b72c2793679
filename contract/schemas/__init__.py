"""JSON Schemas (draft 2020-12) of every MQTT message; loaded by :mod:`contract.schema`."""
