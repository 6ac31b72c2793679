"""The hub/kiosk wire contract, imported by both sides and by nothing else's internals.

Topics (:mod:`contract.topics`), canonical JSON and Ed25519 signature checks (:mod:`contract.signing`),
command and watermark shapes (:mod:`contract.commands`), bundle format and limits
(:mod:`contract.bundles`), RFC 9162 Merkle hashing and proofs (:mod:`contract.merkle`), the audit
ledger's signed tree heads (:mod:`contract.tree_head`), the JSON Schema of every message and its
validator (:mod:`contract.schema`, files in ``contract/schemas/``) and broker URLs
(:mod:`contract.broker`). It imports nothing from ``kiosk``, ``edge_agent`` or ``hub``: a change here
is a change of the wire.
"""
