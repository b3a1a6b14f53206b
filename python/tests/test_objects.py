"""Reading a value by its stored schema, through the package and the
command line, from private System V segments these tests make and
remove (skipped where the host has none to give), and the command line's
text rendering and `decode` over byte strings."""

import contextlib
import io
import json
import struct
import sys
import unittest

import shmstore_reader as sr
from shmstore_reader.cli import main, render_text
from shmstore_reader.header import KIND_CELL, KIND_REGION

from . import rkyv_bytes as rb
from .segments import PrivateSegment, image, put_archive, put_cell_value

POINT = "Point{x:f64,y:f64,tag:u32}"
REGISTRY = "Registry{name:str,weights:hash_map<str,f64>,ids:btree_set<u32>}"
REGISTRY_VALUE = {"name": "daily weights", "weights": {"w0": 0.5, "a longer key": -2.0}, "ids": [1, 2, 3]}


def run(argv, stdin=b""):
    """main(argv): (exit status, standard output)."""
    out = io.StringIO()
    fake_stdin = io.TextIOWrapper(io.BytesIO(stdin))
    real_stdin, sys.stdin = sys.stdin, fake_stdin
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            status = main(argv)
    finally:
        sys.stdin = real_stdin
    return status, out.getvalue()


def segment(data):
    try:
        sr.check_host()
        return PrivateSegment(data)
    except (OSError, sr.UnsupportedHost) as e:
        raise unittest.SkipTest(f"no System V segment to test with: {e}")


class ByStoredSchema(unittest.TestCase):
    def test_cell(self):
        buf = image(KIND_CELL, 24, 8, POINT)
        put_cell_value(buf, struct.pack("<ddI4x", 1.5, -2.0, 7), seq=3)
        with segment(buf) as seg, sr.ShmObject.by_id(seg.id) as obj:
            self.assertEqual(obj.read_value(), (3, {"x": 1.5, "y": -2.0, "tag": 7}))
            self.assertEqual(obj.info()["schema"], POINT)
            status, out = run(["value", f"id:{seg.id}"])
            self.assertEqual((status, out), (0, "version 3\nx: 1.5\ny: -2.0\ntag: 7\n"))
            status, out = run(["value", f"id:{seg.id}", "--json"])
            self.assertEqual(json.loads(out), {"version": 3, "value": {"x": 1.5, "y": -2.0, "tag": 7}, "retries": 0})

    def test_region(self):
        buf = image(KIND_REGION, 28, 4, REGISTRY, stride=256)
        put_archive(buf, bytes.fromhex(rb.REGISTRY), version=2)
        with segment(buf) as seg, sr.ShmObject.by_id(seg.id) as obj:
            self.assertEqual(obj.read_value(), (2, REGISTRY_VALUE))
            status, out = run(["value", f"id:{seg.id}", "--json"])
            self.assertEqual(json.loads(out)["value"], REGISTRY_VALUE)
            status, out = run(["value", str(seg.id)])
            self.assertEqual(status, 0)
            self.assertEqual(
                out,
                "version 2\nname: \"daily weights\"\nweights:\n  w0: 0.5\n  \"a longer key\": -2.0\n"
                "ids:\n  - 1\n  - 2\n  - 3\n",
            )

    def test_no_schema(self):
        buf = image(KIND_CELL, 8, 8)
        put_cell_value(buf, struct.pack("<Q", 5))
        with segment(buf) as seg, sr.ShmObject.by_id(seg.id) as obj:
            with self.assertRaisesRegex(sr.NoSchema, r"stores no schema.*read_cell\(fmt\)"):
                obj.read_value()
            self.assertEqual(obj.read_cell("<Q")[1], (5,))
            status, out = run(["value", f"id:{seg.id}"])
            self.assertEqual((status, json.loads(out)["error"]), (1, "no_schema"))

    def test_corrupt_schema_refuses_the_object(self):
        buf = image(KIND_CELL, 24, 8, POINT, schema_hash=1)
        with segment(buf) as seg:
            with self.assertRaises(sr.Corrupt):
                sr.ShmObject.by_id(seg.id)
            status, out = run(["info", f"id:{seg.id}"])
            self.assertEqual((status, json.loads(out)["field"]), (1, "schema_hash"))


class CommandLine(unittest.TestCase):
    def test_decode_a_map(self):
        status, out = run(["decode", "--schema", "btree_map<u8, u16>", "--hex"], rb.BTREE_SEVEN.encode())
        self.assertEqual(status, 0)
        self.assertEqual(json.loads(out)["value"], {str(i): 100 * i for i in range(1, 8)})

    def test_json_keys(self):
        status, out = run(["decode", "--schema", "hash_set<u8>", "--hex"], rb.HASH_SET_U8.encode())
        self.assertEqual(json.loads(out)["value"], [7])
        data = bytearray.fromhex(rb.HASH_ONE)
        status, out = run(["decode", "--schema", "hash_map<f32, u32>", "--hex"], data.hex().encode())
        # The key's bits, 1, are the smallest f32 above zero, which Python holds
        # as a float.
        self.assertEqual(json.loads(out)["value"], {"1.401298464324817e-45": 2})

    def test_render_text(self):
        value = {"a": 1, "b c": [1, {"d": None}], "e": {}, "f": [], "g": float("nan"), 3: True}
        self.assertEqual(
            render_text(value),
            ["a: 1", "\"b c\":", "  - 1", "  -", "    d: null", "e: {}", "f: []", "g: nan", "3: true"],
        )
        self.assertEqual(render_text("x"), ["\"x\""])


if __name__ == "__main__":
    unittest.main()
