"""The stored schema's parser (schema.py): every form of FORMAT.md's grammar
with the size and alignment it lays out, and every refusal."""

import unittest

from shmstore_reader import BadSchema, parse_stored_schema
from shmstore_reader.schema import SCHEMA_MAX_DEPTH, SCHEMA_MAX_LEN, fnv1a64

CONFIG = (
    "Config{name:str,limits:Limits{max_conn:u32,timeout_ms:u64},tags:vec<str>,"
    "weights:hash_map<str,f64>,mode:enum Mode{Off=0,On=1(u32),Custom=2{level:u8}}}"
)


def layout(text, kind="region", pointer_width=64):
    s = parse_stored_schema(text, kind, pointer_width)
    return s.size, s.align


class RegionForms(unittest.TestCase):
    def test_scalars(self):
        want = {
            "u8": (1, 1), "i8": (1, 1), "u16": (2, 2), "i16": (2, 2), "u32": (4, 4), "i32": (4, 4),
            "u64": (8, 8), "i64": (8, 8), "u128": (16, 16), "i128": (16, 16), "usize": (4, 4),
            "isize": (4, 4), "f32": (4, 4), "f64": (8, 8), "bool": (1, 1), "char": (4, 4),
            "str": (8, 4), "()": (0, 1),
        }
        for text, size_align in want.items():
            with self.subTest(text):
                self.assertEqual(layout(text), size_align)

    def test_containers(self):
        want = {
            "vec<u8>": (8, 4),
            "vec<u128>": (8, 4),
            "box<u64>": (4, 4),
            "box<str>": (8, 4),
            "box<[u16]>": (8, 4),
            "box<[u8;3]>": (4, 4),
            "option<u64>": (16, 8),
            "option<u8>": (2, 1),
            "option<str>": (12, 4),
            "option<option<u32>>": (12, 4),
            "result<u32,str>": (12, 4),
            "hash_map<str,u32>": (12, 4),
            "hash_map<u64,u128>": (12, 4),
            "hash_set<u64>": (12, 4),
            "btree_map<u8,str>": (8, 4),
            "btree_set<u128>": (8, 4),
            "[u16;3]": (6, 2),
            "[u8;0]": (0, 1),
            "[[u32;2];3]": (24, 4),
        }
        for text, size_align in want.items():
            with self.subTest(text):
                self.assertEqual(layout(text), size_align)

    def test_tuples_structs_enums(self):
        want = {
            "(u8,)": (1, 1),
            "(u8,u32,u16)": (12, 4),
            "(u8,str)": (12, 4),
            "A{a:u8,b:u64,c:u16}": (24, 8),
            "Unit{}": (0, 1),
            "T(u8,u32)": (8, 4),
            "u8{x:u32}": (4, 4),  # a struct may be called u8
            "vec(u16)": (2, 2),  # and vec
            "enum{x:u8}": (1, 1),  # and enum, without the space
            "enum E{A=0,B=1(u32),C=2{x:u8,y:str}}": (12, 4),
            "enum L{Low=3,High=7}": (1, 1),
            "enum W{A=255(u64)}": (16, 8),
            CONFIG: (56, 8),
        }
        for text, size_align in want.items():
            with self.subTest(text):
                self.assertEqual(layout(text), size_align)

    def test_names_and_fields_are_kept(self):
        s = parse_stored_schema(CONFIG, "region")
        self.assertEqual(s.text, CONFIG)
        self.assertEqual(s.kind, "region")
        self.assertEqual([n for n, _ in s.root.fields], ["name", "limits", "tags", "weights", "mode"])
        self.assertEqual(s.root.name, "Config")
        self.assertEqual(s.root.offsets, [0, 8, 24, 32, 44])
        self.assertIn("enum Mode{Off, On, Custom}", s.root.describe())

    def test_bytes_and_depth(self):
        self.assertEqual(parse_stored_schema(b"u32", "region").size, 4)
        deepest = "vec<" * (SCHEMA_MAX_DEPTH - 1) + "u8" + ">" * (SCHEMA_MAX_DEPTH - 1)
        self.assertEqual(layout(deepest), (8, 4))
        longest = "A{" + ",".join(f"f{i}:u8" for i in range(3000)) + "}"
        longest = longest[: longest.rindex(",", 0, SCHEMA_MAX_LEN - 1)] + "}"
        self.assertLessEqual(len(longest), SCHEMA_MAX_LEN)
        parse_stored_schema(longest, "region")


class CellForms(unittest.TestCase):
    def test_plain_data(self):
        want = {
            "u8": (1, 1), "i64": (8, 8), "u128": (16, 16), "i128": (16, 16), "f32": (4, 4),
            "usize": (8, 8), "isize": (8, 8), "[u16;3]": (6, 2), "(u8,u64)": (16, 8),
            "Pt{x:f64,y:[u16;3],z:(u8,usize),w:W(i128)}": (48, 16),
            "Empty{}": (0, 1),
            "[[u8;2];0]": (0, 1),
        }
        for text, size_align in want.items():
            with self.subTest(text):
                self.assertEqual(layout(text, "cell"), size_align)

    def test_pointer_width(self):
        self.assertEqual(layout("usize", "cell", 32), (4, 4))
        self.assertEqual(layout("(u8,isize)", "cell", 32), (8, 4))
        self.assertEqual(layout("usize", "region", 64), (4, 4))  # rkyv's usize is 32 bits
        with self.assertRaises(BadSchema):
            parse_stored_schema("usize", "cell", 16)

    def test_only_plain_data(self):
        for text in ("bool", "char", "str", "()", "vec<u8>", "box<u8>", "box<str>", "option<u8>",
                     "result<u8,u8>", "hash_map<u8,u8>", "hash_set<u8>", "btree_map<u8,u8>",
                     "btree_set<u8>", "enum E{A=0}", "S{a:u8,b:bool}", "[char;2]", "(u8,str)",
                     "T(vec<u8>)"):
            with self.subTest(text), self.assertRaisesRegex(BadSchema, "not plain data"):
                parse_stored_schema(text, "cell")


class Refusals(unittest.TestCase):
    def refused(self, text, match, kind="region"):
        with self.subTest(text=text), self.assertRaisesRegex(BadSchema, match):
            parse_stored_schema(text, kind)

    def test_outside_the_grammar(self):
        cases = [
            ("", "empty"),
            ("u8 ", "goes on"),
            (" u8", "expected a type"),
            ("u8,u8", "goes on"),
            ("vec<u8", "expected '>'"),
            ("vec<>", "expected a type"),
            ("vec <u8>", "unknown type 'vec'"),
            ("Vec<u8>", "unknown type 'Vec'"),
            ("String", "unknown type 'String'"),
            ("Foo", "unknown type 'Foo'"),
            ("(u8)", "expected ','"),
            ("(u8,u16,)", "expected a type"),
            ("(,)", "expected a type"),
            ("[u8;]", "a decimal number"),
            ("[u8;01]", "leading zero"),
            ("[u8;00]", "leading zero"),
            ("[u8;-1]", "a decimal number"),
            ("[u8,4]", "expected ';'"),
            ("A{a:u8,}", "a field's name"),
            ("A{a u8}", "expected ':'"),
            ("A{1:u8}", "a field's name"),
            ("A()", "expected a type"),
            ("A{a:u8,a:u16}", "named twice"),
            ("enum E{}", "a variant's name"),
            ("enum E{A}", "expected '='"),
            ("enum E{A=0,A=1}", "named twice"),
            ("enum E{A=0,B=0}", "given twice"),
            ("enum E{A=256}", "above 255"),
            ("enum E{A=00}", "leading zero"),
            ("enum E{A=0{}}", "a field's name"),
            ("enum E{A=0()}", "expected a type"),
            ("enum  E{A=0}", "an enum's name"),
            ("enumE{A=0}", "expected ':'"),
            ("box<str", "expected"),
            ("box<[u8>", "expected ';'"),
            ("result<u8>", "expected ','"),
            ("hash_map<u8>", "expected ','"),
            ("hash_set<u8,u8>", "expected '>'"),
            ("u8\n", "goes on"),
            ("1A{}", "expected a type"),
        ]
        for text, match in cases:
            self.refused(text, match)

    def test_not_ascii(self):
        self.refused("A{\u00e9:u8}".encode(), "not ASCII")
        self.refused("A{\u00e9:u8}", "not ASCII")

    def test_too_deep_or_too_long(self):
        deep = "vec<" * SCHEMA_MAX_DEPTH + "u8" + ">" * SCHEMA_MAX_DEPTH
        self.refused(deep, "deeper than 32")
        self.refused("[" * 40 + "u8" + ";1]" * 40, "deeper than 32")
        self.refused("A{a:" * 33 + "u8" + "}" * 33, "deeper than 32")
        long = "A{" + ",".join(f"f{i}:u8" for i in range(3000)) + "}"
        self.refused(long, "more than 16384")

    def test_bad_arguments(self):
        self.refused("u8", "a cell or a region", kind="both")
        with self.assertRaisesRegex(BadSchema, "is text"):
            parse_stored_schema(42, "cell")


class Hash(unittest.TestCase):
    def test_fnv1a64(self):
        self.assertEqual(fnv1a64(b""), 0xCBF29CE484222325)
        self.assertEqual(fnv1a64(b"a"), 0xAF63DC4C8601EC8C)
        self.assertEqual(fnv1a64(b"foobar"), 0x85944171F73967E8)


if __name__ == "__main__":
    unittest.main()
