"""Header validation (header.py) of images in memory: the format versions
read, the stored schema's length, place, hash, grammar and layout."""

import ctypes
import struct
import unittest

from shmstore_reader import FORMAT_VERSION, READ_FORMAT_VERSIONS, Corrupt, IncompatibleFormat
from shmstore_reader.header import KIND_CELL, KIND_REGION, OFF_SCHEMA_LEN, validate

from .segments import image

POINT = "Point{x:f64,y:f64,tag:u32}"  # 24 bytes, aligned to 8
REGISTRY = "Registry{name:str,weights:hash_map<str,f64>,ids:btree_set<u32>}"  # 28 bytes, aligned to 4


def check(buf):
    """validate() on the image `buf`: its layout."""
    mem = (ctypes.c_char * len(buf)).from_buffer(buf)
    return validate(ctypes.addressof(mem), len(buf))[0]


class Versions(unittest.TestCase):
    def test_versions(self):
        self.assertEqual(FORMAT_VERSION, 6)
        self.assertIn(FORMAT_VERSION, READ_FORMAT_VERSIONS)
        for version in (4, 5, 7, 0):
            with self.subTest(version), self.assertRaisesRegex(IncompatibleFormat, f"format version {version}"):
                check(image(KIND_CELL, 8, 8, version=version))


class StoredSchema(unittest.TestCase):
    def test_cell_and_region(self):
        lay = check(image(KIND_CELL, 24, 8, POINT))
        self.assertEqual(lay.schema.text, POINT)
        self.assertEqual(lay.schema_len, len(POINT))
        self.assertEqual(lay.data_offset, 512 + 32)
        self.assertEqual([n for n, _ in lay.schema.root.fields], ["x", "y", "tag"])
        lay = check(image(KIND_REGION, 28, 4, REGISTRY))
        self.assertEqual(lay.schema.text, REGISTRY)
        self.assertEqual(lay.data_offset, 9792 + 64)

    def test_none(self):
        lay = check(image(KIND_CELL, 8, 8))
        self.assertEqual((lay.schema_len, lay.schema_hash, lay.schema), (0, 0, None))

    def corrupt(self, buf, field, match):
        with self.assertRaisesRegex(Corrupt, match) as caught:
            check(buf)
        self.assertEqual(caught.exception.field, field)

    def test_hash(self):
        self.corrupt(image(KIND_CELL, 24, 8, POINT, schema_hash=1), "schema_hash", "hash to 0x")
        buf = image(KIND_CELL, 24, 8, POINT)
        buf[512] ^= 0x20  # "point{...": the hash no longer matches
        self.corrupt(buf, "schema_hash", "the header says")
        self.corrupt(image(KIND_CELL, 8, 8, schema_hash=5), "schema_hash", "with no schema")

    def test_length(self):
        buf = image(KIND_REGION, 28, 4, REGISTRY)
        struct.pack_into("<I", buf, OFF_SCHEMA_LEN, 16385)
        self.corrupt(buf, "schema_len", "16385 > 16384")

    def test_data_after_the_schema(self):
        # The schema's bytes would run into the data.
        buf = image(KIND_CELL, 24, 8, POINT, data_offset=536)
        self.corrupt(buf, "data_offset", "at least 538")
        buf = image(KIND_REGION, 28, 4, REGISTRY, data_offset=9792)
        self.corrupt(buf, "data_offset", f"at least {9792 + len(REGISTRY)}")
        # Just enough.
        check(image(KIND_CELL, 8, 8, "u64", data_offset=520))

    def test_grammar_and_layout(self):
        self.corrupt(image(KIND_CELL, 24, 8, "Point{x:f64,y:f64,tag:u32"), "schema", "cannot be used")
        self.corrupt(image(KIND_CELL, 8, 4, "S{v:vec<u8>}"), "schema", "not plain data")
        self.corrupt(image(KIND_CELL, 16, 8, POINT), "schema", "lays out 24 bytes aligned to 8")
        self.corrupt(image(KIND_REGION, 28, 8, REGISTRY), "schema", "aligned to 4; the header says 28 bytes aligned to 8")
        self.corrupt(image(KIND_CELL, 1, 1, b"\xff"), "schema", "not ASCII")


if __name__ == "__main__":
    unittest.main()
