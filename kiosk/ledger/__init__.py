"""The audit ledger around the store: the device signing key, the start-up check, proofs as JSON,
the ``python -m kiosk ledger`` commands and the benchmark.

The rows and their verification live in the store (:mod:`kiosk.store.ledger`,
:mod:`kiosk.store.ledger_verify`); the hashing and the signed head format in the contract
(:mod:`contract.merkle`, :mod:`contract.tree_head`), which the hub shares.
"""
