"""RFC 9162 hashing and proofs (contract.merkle) against the published reference vectors and properties."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from contract import merkle
from contract.merkle import (
    EMPTY_ROOT,
    Frontier,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

# The RFC 6962 reference tree (transparency-dev/merkle proof/verify_test.go): its 8 entries, the root
# of each prefix of sizes 1..8, and some of its proofs. Numbers only; the code here is our own.
ENTRIES = [
    bytes.fromhex(h)
    for h in (
        *("", "00", "10", "2021", "3031", "40414243"),
        *("5051525354555657", "606162636465666768696a6b6c6d6e6f"),
    )
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index from 0, tree size, proof)
INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

REFERENCE = MemoryTree([leaf_hash(e) for e in ENTRIES])


def unhex(proof: list[str]) -> list[bytes]:
    return [bytes.fromhex(p) for p in proof]


def test_hashing_is_rfc_9162s() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_of([]) == EMPTY_ROOT
    assert leaf_hash(b"").hex() == ROOTS[0]
    assert node_hash(leaf_hash(ENTRIES[0]), leaf_hash(ENTRIES[1])).hex() == ROOTS[1]


def test_roots_of_the_reference_tree() -> None:
    for size, expected in enumerate(ROOTS, start=1):
        assert REFERENCE.root(size).hex() == expected
        assert root_of([leaf_hash(e) for e in ENTRIES[:size]]).hex() == expected


def test_inclusion_proofs_of_the_reference_tree() -> None:
    for index, size, proof in INCLUSION:
        assert inclusion_proof(REFERENCE.subtree, index, size) == unhex(proof)
        assert verify_inclusion(REFERENCE.subtree(0, index), index, size, unhex(proof), REFERENCE.root(size))


def test_consistency_proofs_of_the_reference_tree() -> None:
    for old, new, proof in CONSISTENCY:
        assert consistency_proof(REFERENCE.subtree, old, new) == unhex(proof)
        assert verify_consistency(old, new, REFERENCE.root(old), REFERENCE.root(new), unhex(proof))


def test_reference_proofs_corrupted_in_the_ways_the_reference_tries_fail() -> None:
    some = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    for index, size, hexproof in INCLUSION[1:]:
        proof, root, leaf = unhex(hexproof), REFERENCE.root(size), REFERENCE.subtree(0, index)
        bad = [
            (leaf, index - 1, size, proof, root),
            (leaf, index + 1, size, proof, root),
            (leaf, index ^ 2, size, proof, root),
            (leaf, index, size * 2, proof, root),
            (leaf, index, size // 2, proof, root),
            (b"WrongLeaf", index, size, proof, root),
            (leaf, index, size, proof, EMPTY_ROOT),
            (leaf, index, size, proof, some),
            (leaf, index, size, [*proof, b""], root),
            (leaf, index, size, [*proof, root], root),
            (leaf, index, size, [b"", *proof], root),
            (leaf, index, size, [root, *proof], root),
            (leaf, index, size, proof[:-1], root),
            (leaf, index, size, [proof[0], some, *proof[1:]], root),
        ]
        assert not any(verify_inclusion(*args) for args in bad)
    for old, new, hexproof in CONSISTENCY[1:]:
        proof, r1, r2 = unhex(hexproof), REFERENCE.root(old), REFERENCE.root(new)
        bad_c = [
            (old - 1, new, r1, r2, proof),
            (old + 1, new, r1, r2, proof),
            (old ^ 2, new, r1, r2, proof),
            (old, new * 2, r1, r2, proof),
            (old, new // 2, r1, r2, proof),
            (old, new, b"WrongRoot", r2, proof),
            (old, new, r1, b"WrongRoot", proof),
            (old, new, r2, r1, proof),
            (old, new, r1, r2, []),
            (old, new, r1, r2, [*proof, b""]),
            (old, new, r1, r2, [*proof, r1]),
            (old, new, r1, r2, [*proof, r2]),
            (old, new, r1, r2, [b"", *proof]),
            (old, new, r1, r2, [r1, *proof]),
            (old, new, r1, r2, [r2, *proof]),
            (old, new, r1, r2, [proof[0], *proof]),
            (old, new, r1, r2, proof[:-1]),
        ]
        assert not any(verify_consistency(*args) for args in bad_c)


def test_degenerate_consistency() -> None:
    r = REFERENCE.root(3)
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(0, 3, EMPTY_ROOT, r, [])
    assert verify_consistency(3, 3, r, r, [])
    assert not verify_consistency(3, 3, r, EMPTY_ROOT, [])
    assert not verify_consistency(3, 2, r, r, [])
    assert not verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])
    assert not verify_consistency(1, 1, r, r, [EMPTY_ROOT])
    assert not verify_inclusion(leaf_hash(b""), 0, 0, [], EMPTY_ROOT)


def _tree(n: int) -> MemoryTree:
    return MemoryTree([leaf_hash(i.to_bytes(4, "big")) for i in range(n)])


def test_every_proof_of_every_small_tree_verifies_and_the_frontier_agrees() -> None:
    tree = _tree(70)
    frontier = Frontier()
    for size in range(1, 71):
        completed = frontier.append(tree.subtree(0, size - 1))
        assert completed == merkle.completed_nodes(size - 1, tree.subtree(0, size - 1), tree.subtree)
        for level, index, value in completed:
            assert tree.subtree(level, index) == value
        assert frontier.root() == tree.root(size) == root_of(tree.levels[0][:size])
        for index in range(size):
            proof = inclusion_proof(tree.subtree, index, size)
            assert verify_inclusion(tree.subtree(0, index), index, size, proof, tree.root(size))
        for old in range(size + 1):
            proof = consistency_proof(tree.subtree, old, size)
            assert verify_consistency(old, size, tree.root(old), tree.root(size), proof)


def _flip(proof: list[bytes], which: int, bit: int) -> list[bytes]:
    item = bytearray(proof[which])
    item[bit // 8] ^= 1 << (bit % 8)
    return [*proof[:which], bytes(item), *proof[which + 1 :]]


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 2000), st.data())
def test_any_flipped_bit_fails_inclusion(size: int, data: st.DataObject) -> None:
    tree = _tree(size)
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(tree.subtree, index, size)
    root, leaf = tree.root(size), tree.subtree(0, index)
    assert verify_inclusion(leaf, index, size, proof, root)
    bit = data.draw(st.integers(0, 255))
    which = data.draw(st.integers(0, len(proof) + 1))
    if which < len(proof):
        assert not verify_inclusion(leaf, index, size, _flip(proof, which, bit), root)
    elif which == len(proof):
        assert not verify_inclusion(_flip([leaf], 0, bit)[0], index, size, proof, root)
    else:
        assert not verify_inclusion(leaf, index, size, proof, _flip([root], 0, bit)[0])


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 2000), st.data())
def test_any_flipped_bit_fails_consistency(new: int, data: st.DataObject) -> None:
    tree = _tree(new)
    old = data.draw(st.integers(1, new - 1))
    proof = consistency_proof(tree.subtree, old, new)
    r1, r2 = tree.root(old), tree.root(new)
    assert verify_consistency(old, new, r1, r2, proof)
    bit = data.draw(st.integers(0, 255))
    which = data.draw(st.integers(0, len(proof) + 1))
    if which < len(proof):
        assert not verify_consistency(old, new, r1, r2, _flip(proof, which, bit))
    elif which == len(proof):
        assert not verify_consistency(old, new, _flip([r1], 0, bit)[0], r2, proof)
    else:
        assert not verify_consistency(old, new, r1, _flip([r2], 0, bit)[0], proof)


def test_proofs_need_only_log_n_subtree_lookups() -> None:
    tree = _tree(1000)
    calls = 0

    def counted(level: int, index: int) -> bytes:
        nonlocal calls
        calls += 1
        return tree.subtree(level, index)

    for fn in (
        lambda: merkle.root(counted, 1000),
        lambda: inclusion_proof(counted, 617, 1000),
        lambda: consistency_proof(counted, 333, 1000),
    ):
        calls = 0
        fn()
        assert calls <= 2 * 10 + 2
