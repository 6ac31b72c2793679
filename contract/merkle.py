"""RFC 9162 Merkle tree hashing, inclusion and consistency proofs (Certificate Transparency's log).

The kiosk's audit ledger and the hub that checks its signed heads must agree bit for bit, so the one
definition lives in the contract. Hashing (RFC 9162 §2.1.1): a leaf is ``SHA-256(0x00 ‖ entry)``, an
interior node ``SHA-256(0x01 ‖ left ‖ right)``, the empty tree ``SHA-256("")``; a tree of ``n > 1``
leaves splits at ``k``, the largest power of two below ``n``.

Proof generation works through a :data:`SubtreeHash` accessor, ``(level, index) -> hash`` of the
*perfect* subtree holding leaves ``[index·2^level, (index+1)·2^level)`` (level 0: the leaf hash). In
an RFC 9162 tree every left child is such a subtree, so a store that keeps them answers the root and
any proof in O(log n) lookups without reading the leaves. :func:`completed_nodes` says which of them
an append completes (one on average), so the store can write them as it goes.

Verification (:func:`verify_inclusion`, :func:`verify_consistency`) follows RFC 9162 §2.1.3.2 and
§2.1.4.2 step by step; it needs nothing but the hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

SubtreeHash = Callable[[int, int], bytes]
"""``(level, index)`` -> hash of the perfect subtree over leaves ``[index·2^level, (index+1)·2^level)``."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``): where RFC 9162 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def range_hash(subtree: SubtreeHash, start: int, end: int) -> bytes:
    """MTH of leaves ``[start, end)``, where ``start`` is aligned as it is for every RFC 9162 subtree."""
    size = end - start
    if size == 0:
        return EMPTY_ROOT
    # Walk down the right spine: the left part of each split is a perfect subtree, the right recurses.
    lefts: list[bytes] = []
    while size & (size - 1):
        k = split_point(size)
        lefts.append(subtree(k.bit_length() - 1, start // k))
        start += k
        size -= k
    level = size.bit_length() - 1
    acc = subtree(level, start >> level)
    for left in reversed(lefts):
        acc = node_hash(left, acc)
    return acc


def root(subtree: SubtreeHash, size: int) -> bytes:
    """The tree head hash of the first ``size`` leaves."""
    return range_hash(subtree, 0, size)


def inclusion_proof(subtree: SubtreeHash, index: int, size: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]): sibling hashes from the leaf up to the root."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[bytes] = []  # collected root first, returned leaf first
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            path.append(range_hash(subtree, start + k, end))
            end = start + k
        else:
            path.append(range_hash(subtree, start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(subtree: SubtreeHash, old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(old_size, D[0:new_size]); empty when the sizes are equal or 0."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    path: list[bytes] = []  # SUBPROOF(m, D[start:end], b), iteratively, root first
    m, start, end, whole = old_size, 0, new_size, True
    while m != end - start:
        k = split_point(end - start)
        if m <= k:
            path.append(range_hash(subtree, start + k, end))
            end = start + k
        else:
            path.append(range_hash(subtree, start, start + k))
            start += k
            m -= k
            whole = False
    if not whole:
        path.append(range_hash(subtree, start, end))
    path.reverse()
    return path


def completed_nodes(index: int, leaf: bytes, subtree: SubtreeHash) -> list[tuple[int, int, bytes]]:
    """``(level, index, hash)`` of the perfect subtrees (level >= 1) that appending leaf ``index`` completes.

    ``subtree`` need only answer for the left siblings, which were completed earlier.
    """
    done: list[tuple[int, int, bytes]] = []
    acc, position, level = leaf, index, 0
    while position & 1:
        acc = node_hash(subtree(level, position - 1), acc)
        position >>= 1
        level += 1
        done.append((level, position, acc))
    return done


class MemoryTree:
    """A whole tree in memory: for tests, tools and the hub, which see few leaves at a time."""

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append(leaf)

    def __len__(self) -> int:
        return len(self.levels[0])

    def subtree(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    def append(self, leaf: bytes) -> None:
        index = len(self.levels[0])
        self.levels[0].append(leaf)
        for level, _, value in completed_nodes(index, leaf, self.subtree):
            if level == len(self.levels):
                self.levels.append([])
            self.levels[level].append(value)

    def root(self, size: int | None = None) -> bytes:
        return root(self.subtree, len(self) if size is None else size)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes."""
    return MemoryTree(leaves).root()


class Frontier:
    """The compact range of a growing tree (one perfect subtree per set bit of its size): the root of
    a stream of leaves in O(log n) memory, and each perfect subtree as it completes, so a verifier can
    compare them with what a store holds without keeping the tree."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []  # (level, hash), largest first

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add the next leaf; returns the ``(level, index, hash)`` subtrees (level >= 1) it completes."""
        done = completed_nodes(self.size, leaf, self._left_sibling)
        for _ in done:
            self._stack.pop()
        self._stack.append((done[-1][0], done[-1][2]) if done else (0, leaf))
        self.size += 1
        return done

    def _left_sibling(self, level: int, _index: int) -> bytes:
        # completed_nodes asks for left siblings from the lowest level up: they sit on the stack top down.
        depth = len(self._stack) - 1
        while self._stack[depth][0] != level:
            depth -= 1
        return self._stack[depth][1]

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        acc = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            acc = node_hash(left, acc)
        return acc


def _well_formed(*hashes: bytes) -> bool:
    return all(isinstance(h, bytes | bytearray) and len(h) == HASH_SIZE for h in hashes)


def _shift_while_even(fn: int, sn: int) -> tuple[int, int]:
    while not fn & 1 and fn:
        fn >>= 1
        sn >>= 1
    return fn, sn


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root_hash: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` put ``leaf`` at ``index`` in the tree (``size``, ``root_hash``)?"""
    if not _well_formed(leaf, root_hash, *proof) or not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                fn, sn = _shift_while_even(fn, sn)
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_hash


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: does ``proof`` show (``new_size``, ``new_root``) extends (``old_size``, ...)?

    Outside the RFC's ``0 < old_size < new_size``: equal sizes need equal roots and an empty proof, and
    the empty tree (whose root must be the empty-tree hash) is a prefix of every tree.
    """
    if not _well_formed(old_root, new_root, *proof) or not 0 <= old_size <= new_size:
        return False
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                fn, sn = _shift_while_even(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
