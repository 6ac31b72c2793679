"""One module per screen: its class here, its layout in the ``.kv`` file beside it."""
