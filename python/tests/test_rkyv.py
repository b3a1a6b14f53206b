"""The rkyv 0.8 decoder (rkyv.py) over byte strings: maps and sets as rkyv
wrote them (rkyv_bytes.py), the value a stored schema gives, a cell's
plain data, and archives damaged on purpose, which must end in a
DecodeError, never in another exception or a loop."""

import random
import struct
import time
import unittest

from shmstore_reader import DecodeError, UsageError, decode_archive, decode_cell, parse_schema, parse_stored_schema

from . import rkyv_bytes as rb


def archive(name):
    return bytes.fromhex(getattr(rb, name))


# What each captured archive decodes to, with its schema.
CAPTURED = {
    "HASH_ONE": ("hash_map<u32, u32>", {1: 2}),
    "HASH_STR": ("hash_map<str, u16>", {"a": 1, "b": 2}),
    "HASH_SET_U8": ("hash_set<u8>", [7]),
    "HASH_EMPTY": ("hash_map<u32, u32>", {}),
    "BTREE_EMPTY": ("btree_map<u32, u32>", {}),
    "BTREE_TWO": ("btree_map<u32, u8>", {1: 10, 2: 20}),
    "BTREE_SET_U16": ("btree_set<u16>", [1, 2, 3]),
    "BTREE_SEVEN": ("btree_map<u8, u16>", {i: 100 * i for i in range(1, 8)}),
    "BTREE_40": ("btree_map<u32, u32>", {i: i * i for i in range(40)}),
    "HASH_U64": ("hash_map<u64, u8>", {1 << 40: 1, 3: 2, 12345678901: 3}),
    "PAIRS": ("btree_map<(u8, u8), bool>", [[[0, 9], False], [[1, 2], True]]),
    "REGISTRY": (
        [["name", "str"], ["weights", "hash_map<str, f64>"], ["ids", "btree_set<u32>"]],
        {"name": "daily weights", "weights": {"w0": 0.5, "a longer key": -2.0}, "ids": [1, 2, 3]},
    ),
}


class Maps(unittest.TestCase):
    def test_captured_archives(self):
        for name, (schema, want) in CAPTURED.items():
            with self.subTest(name):
                self.assertEqual(decode_archive(archive(name), schema), want)

    def test_btree_order_is_key_order(self):
        got = decode_archive(archive("BTREE_40"), "btree_map<u32, u32>")
        self.assertEqual(list(got), list(range(40)))

    def test_hash_order_is_bucket_order(self):
        # "b" is in bucket 1, "a" in bucket 2.
        self.assertEqual(list(decode_archive(archive("HASH_STR"), "hash_map<str, u16>")), ["b", "a"])

    def test_json_forms(self):
        self.assertEqual(decode_archive(archive("HASH_ONE"), {"hash_map": ["u32", "u32"]}), {1: 2})
        self.assertEqual(decode_archive(archive("HASH_SET_U8"), {"hash_set": "u8"}), [7])
        self.assertEqual(decode_archive(archive("BTREE_TWO"), {"btree_map": ["u32", "u8"]}), {1: 10, 2: 20})
        self.assertEqual(decode_archive(archive("BTREE_SET_U16"), {"btree_set": "u16"}), [1, 2, 3])
        with self.assertRaises(UsageError):
            parse_schema({"hash_map": "u32"})

    def test_sizes(self):
        for text in ("hash_map<u64, str>", "hash_set<u8>"):
            t = parse_schema(text)
            self.assertEqual((t.size, t.align), (12, 4))
        for text in ("btree_map<u128, u8>", "btree_set<()>"):
            t = parse_schema(text)
            self.assertEqual((t.size, t.align), (8, 4))

    def test_stored_schema_decodes_by_field_name(self):
        schema = parse_stored_schema("Registry{name:str,weights:hash_map<str,f64>,ids:btree_set<u32>}", "region")
        self.assertEqual(decode_archive(archive("REGISTRY"), schema.root), CAPTURED["REGISTRY"][1])

    def test_enum_keys_make_a_dict(self):
        # A hash set's table can hold an enum of unit variants as keys; its
        # map then decodes to a dict by variant name.
        data = bytearray(archive("HASH_ONE"))
        got = decode_archive(bytes(data), {"hash_map": [{"enum": [["A", None], ["B", None]]}, "u32"]})
        self.assertEqual(got, {"B": 2})


class DamagedMaps(unittest.TestCase):
    def fails(self, data, schema, match):
        with self.assertRaisesRegex(DecodeError, match):
            decode_archive(bytes(data), schema)

    def test_hash_table(self):
        one = archive("HASH_ONE")
        root = len(one) - 12
        bad = bytearray(one)
        bad[17] = 0xFF  # bucket 1's control byte: empty
        self.fails(bad, "hash_map<u32, u32>", "mark 0 full buckets; its length is 1")
        bad = bytearray(one)
        bad[16] = 0x11  # bucket 0 full too
        self.fails(bad, "hash_map<u32, u32>", "mark 2 full buckets")
        bad = bytearray(one)
        struct.pack_into("<I", bad, root + 8, 1)  # cap = len
        self.fails(bad, "hash_map<u32, u32>", "capacity of 1")
        bad = bytearray(one)
        struct.pack_into("<II", bad, root + 4, 5, 0xFFFFFFFF)
        self.fails(bad, "hash_map<u32, u32>", "outside the archive")
        bad = bytearray(one)
        struct.pack_into("<i", bad, root, -1000)
        self.fails(bad, "hash_map<u32, u32>", "outside the archive")
        bad = bytearray(one)
        struct.pack_into("<i", bad, root, -31)  # control bytes at 17: buckets not aligned to 4
        self.fails(bad, "hash_map<u32, u32>", "not aligned")

    def test_repeated_key(self):
        data = bytearray(archive("HASH_STR"))
        data[12] = ord("a")  # bucket 1's key "b" becomes "a"
        self.fails(data, "hash_map<str, u16>", "key 'a' twice")
        # As pairs (keys that are not scalars), nothing is merged.
        self.assertEqual(len(decode_archive(bytes(data), "hash_set<str>")), 2)

    def test_btree(self):
        seven = archive("BTREE_SEVEN")
        bad = bytearray(seven)
        bad[20] = 2  # the root's kind
        self.fails(bad, "btree_map<u8, u16>", "kind is 2")
        bad = bytearray(seven)
        struct.pack_into("<I", bad, 16, 6)  # the leaf's length
        self.fails(bad, "btree_map<u8, u16>", "6 entries, more than 5")
        bad = bytearray(seven)
        struct.pack_into("<I", bad, 64, 8)  # the map's length: one more
        self.fails(bad, "btree_map<u8, u16>", "holds 7 entries; its length is 8")
        bad = bytearray(seven)
        struct.pack_into("<I", bad, 64, 6)  # one less
        self.fails(bad, "btree_map<u8, u16>", "more entries than its length")
        bad = bytearray(seven)
        struct.pack_into("<i", bad, 36, -15)  # lesser[0] at 21: misaligned
        self.fails(bad, "btree_map<u8, u16>", "not aligned")

    def test_btree_cycle_ends(self):
        # The root's lesser[0] points back at the root: without a bound, a
        # walk would never end.
        bad = bytearray(archive("BTREE_SEVEN"))
        struct.pack_into("<i", bad, 36, -16)  # 36 - 16 = 20, the root
        self.fails(bad, "btree_map<u8, u16>", "more inner nodes than its length")
        struct.pack_into("<I", bad, 64, 0xFFFFFFFF)  # a length that allows any number
        start = time.monotonic()
        self.fails(bad, "btree_map<u8, u16>", "decode to more than")
        self.assertLess(time.monotonic() - start, 30)

    def test_every_byte_scribbled(self):
        # Any byte of any captured archive, set to any value: a value or a
        # DecodeError, nothing else.
        rng = random.Random(7)
        for name, (schema, _) in CAPTURED.items():
            data = archive(name)
            for _ in range(300):
                bad = bytearray(data)
                for _ in range(rng.randint(1, 3)):
                    bad[rng.randrange(len(bad))] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
                try:
                    decode_archive(bytes(bad), schema)
                except DecodeError:
                    pass


class SharedTables(unittest.TestCase):
    def test_many_maps_over_one_large_table_run_out_of_budget(self):
        # One table of n/4 one-byte buckets, one of them full, then n/24
        # map headers all pointing at it: every header's control bytes are
        # counted, so the work stays within the budget.
        n = 64 * 1024
        cap = n // 4
        data = bytearray(cap) + bytearray(b"\xff" * ((cap + 15) // 16 * 16 + 15))
        data[cap] = 0
        while len(data) % 4:
            data.append(0)
        first, headers = len(data), n // 24
        for h in range(headers):
            at = first + 12 * h
            data += struct.pack("<iII", cap - at, 1, cap)
        root = len(data)
        data += struct.pack("<iI", first - root, headers)
        with self.assertRaisesRegex(DecodeError, "decode to more than"):
            decode_archive(bytes(data), "vec<hash_set<u8>>")


class Cells(unittest.TestCase):
    def test_plain_data_by_field_name(self):
        schema = parse_stored_schema("Pt{x:f64,y:[u16;3],z:(u8,usize),w:W(i128)}", "cell")
        data = struct.pack("<d3H2xB7xQ", 1.5, 1, 2, 3, 9, 1 << 40) + (-5).to_bytes(16, "little", signed=True)
        self.assertEqual(len(data), 48)
        self.assertEqual(
            decode_cell(data, schema.root),
            {"x": 1.5, "y": [1, 2, 3], "z": [9, 1 << 40], "w": [-5]},
        )

    def test_size_must_match(self):
        schema = parse_stored_schema("u64", "cell")
        with self.assertRaisesRegex(DecodeError, "7 bytes"):
            decode_cell(b"\0" * 7, schema.root)

    def test_huge_array_of_nothing_is_bounded(self):
        schema = parse_stored_schema("[E{};4000000000]", "cell")
        with self.assertRaisesRegex(DecodeError, "decode to more than"):
            decode_cell(b"", schema.root)


if __name__ == "__main__":
    unittest.main()
