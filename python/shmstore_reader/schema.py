"""Stored schemas (FORMAT.md, "Schema (optional)"): the text an object may
keep of its value's type, parsed strictly into the types rkyv.py decodes
with.

`parse_stored_schema(text, kind)` reads the grammar of FORMAT.md and
nothing else: no spaces, ASCII names, decimal numbers without leading
zeros, enum tags 0 to 255 each once, field and variant names each once,
at most 16384 bytes, types nested at most 32 deep (the root is at depth
1, each type inside another one deeper). It lays the type out as the
object holds it:

- a cell's value (`kind = "cell"`) in the platform's own layout, as C lays
  out a struct: scalars aligned to their size (u128 and i128 to 16),
  usize and isize of the pointer width; only plain data may appear
  (scalars other than bool and char, arrays, tuples and structs);
- a region's archived root (`kind = "region"`) in rkyv 0.8's layout
  (FORMAT.md, "Region archives"), where every form may appear.

The result, a `Schema`, holds the text, the root type, its size and its
alignment; `decode_cell` and rkyv.py's `decode_archive` decode a value by
it, a struct to a dict by field name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import BadSchema
from .rkyv import (
    MAPS,
    PRIMS,
    ArchivedType,
    Array,
    Box,
    BoxStr,
    Enum,
    Option,
    Prim,
    Struct,
    Tuple,
    Vec,
)

# FORMAT.md, "Schema (optional)".
SCHEMA_MAX_LEN = 16384
SCHEMA_MAX_DEPTH = 32
CELL = "cell"
REGION = "region"

# The scalars of the grammar; in a cell, bool and char are not plain data.
_SCALARS = ("u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64", "u128", "i128", "usize", "isize", "f32", "f64")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class Schema:
    """A parsed stored schema: its text, whether it lays out a cell's value
    or a region's archived root, the root type and its size and
    alignment."""

    text: str
    kind: str
    root: ArchivedType

    @property
    def size(self) -> int:
        return self.root.size

    @property
    def align(self) -> int:
        return self.root.align


def fnv1a64(data: bytes) -> int:
    """64-bit FNV-1a of `data` (FORMAT.md, "Type fingerprint")."""
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def parse_stored_schema(text, kind: str, pointer_width: int = 64) -> Schema:
    """Parse a stored schema (bytes or str) for a `kind` of object, "cell"
    or "region"; `pointer_width` (64 or 32, the header's
    `abi_pointer_width`) sizes a cell's usize and isize. BadSchema says
    what is wrong and where."""
    if kind not in (CELL, REGION):
        raise BadSchema(f"a schema describes a {CELL} or a {REGION}, not {kind!r}")
    if pointer_width not in (32, 64):
        raise BadSchema(f"a pointer width of {pointer_width} bits (32 or 64 are known)")
    if isinstance(text, (bytes, bytearray, memoryview)):
        raw = bytes(text)
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError as e:
            raise BadSchema(f"the schema is not ASCII: byte {e.start} is {raw[e.start]:#04x}")
    elif not isinstance(text, str):
        raise BadSchema(f"a schema is text, not {type(text).__name__}")
    if not text:
        raise BadSchema("the schema is empty (an object without a schema has schema_len 0)")
    if len(text) > SCHEMA_MAX_LEN:
        raise BadSchema(f"the schema is {len(text)} bytes, more than {SCHEMA_MAX_LEN}")
    if not text.isascii():
        raise BadSchema("the schema is not ASCII")
    parser = _Parser(text, kind, pointer_width)
    root = parser.type(1)
    if parser.pos != len(text):
        raise parser.fail("the schema goes on after its type")
    return Schema(text=text, kind=kind, root=root)


# The largest a type may be, in bytes, wherever it lies.
TYPE_SIZE_MAX = 0xFFFFFFFF


class _Parser:
    def __init__(self, text: str, kind: str, pointer_width: int):
        self.text = text
        self.pos = 0
        self.cell = kind == CELL
        self.scalars = dict(PRIMS)
        if self.cell:
            fmt = ("<Q", "<q") if pointer_width == 64 else ("<I", "<i")
            width = pointer_width // 8
            self.scalars["usize"] = Prim("usize", fmt[0], width)
            self.scalars["isize"] = Prim("isize", fmt[1], width)

    def fail(self, message: str) -> BadSchema:
        shown = self.text[max(0, self.pos - 20) : self.pos + 20]
        return BadSchema(f"bad schema at byte {self.pos} (near {shown!r}): {message}", field="schema")

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def eat(self, token: str) -> bool:
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def expect(self, token: str) -> None:
        if not self.eat(token):
            found = self.peek() or "the end"
            raise self.fail(f"expected {token!r}, found {found!r}")

    def name(self, what: str) -> str:
        m = _NAME.match(self.text, self.pos)
        if not m:
            raise self.fail(f"expected {what} ([A-Za-z_][A-Za-z0-9_]*)")
        self.pos = m.end()
        return m.group()

    def number(self, what: str) -> int:
        m = _NUMBER.match(self.text, self.pos)
        if not m:
            raise self.fail(f"expected {what}, a decimal number")
        if m.end() < len(self.text) and self.text[m.end()].isdigit():
            raise self.fail(f"{what} has a leading zero")
        self.pos = m.end()
        return int(m.group())

    def length(self) -> int:
        """An array's length: at most 2^32 - 1, as FORMAT.md's grammar
        allows."""
        count = self.number("an array's length")
        if count > 0xFFFFFFFF:
            raise self.fail(f"an array of {count} elements (at most 4294967295)")
        return count

    def only_in_regions(self, form: str) -> None:
        if self.cell:
            raise self.fail(
                f"{form} is not plain data: a cell's schema holds only scalars other than bool and char, "
                "arrays, tuples and structs"
            )

    def type(self, depth: int) -> ArchivedType:
        t = self.one_type(depth)
        # Any type, even behind a pointer, is at most 2^32 - 1 bytes (an
        # archive's relative pointers reach no further).
        if t.size > TYPE_SIZE_MAX:
            raise self.fail(f"a type of {t.size} bytes (at most {TYPE_SIZE_MAX})")
        return t

    def one_type(self, depth: int) -> ArchivedType:
        if depth > SCHEMA_MAX_DEPTH:
            raise self.fail(f"types nest deeper than {SCHEMA_MAX_DEPTH}")
        start = self.pos
        if self.eat("()"):
            self.pos = start
            self.only_in_regions("()")
            self.pos += 2
            return PRIMS["unit"]
        if self.eat("("):
            return self.tuple(depth)
        if self.eat("["):
            elem = self.type(depth + 1)
            self.expect(";")
            count = self.length()
            self.expect("]")
            return Array(elem, count)
        if self.eat("enum "):
            self.pos = start
            self.only_in_regions("an enum")
            self.pos += 5
            return self.enum(depth)
        name = self.name("a type")
        if self.peek() == "{":
            self.pos += 1
            return Struct(self.fields(depth, "}", allow_empty=True), name=name)
        if self.peek() == "(":
            self.pos += 1
            return Tuple(self.types(depth, ")"), name=name)
        if self.peek() == "<" and name in ("vec", "box", "option", "result") + tuple(MAPS):
            self.pos = start
            self.only_in_regions(f"{name}<...>")
            self.pos += len(name) + 1
            return self.generic(name, depth)
        if name in _SCALARS:
            return self.scalars[name]
        if name in ("bool", "char", "str"):
            self.pos = start
            self.only_in_regions(name)
            self.pos += len(name)
            return PRIMS[name]
        self.pos = start
        raise self.fail(f"unknown type {name!r} (a struct's name is followed by '{{' or '(')")

    def tuple(self, depth: int) -> ArchivedType:
        # After "(": "(A,)" or "(A,B,...)".
        elems = [self.type(depth + 1)]
        self.expect(",")
        if not self.eat(")"):
            elems += self.types(depth, ")")
        return Tuple(elems)

    def types(self, depth: int, end: str) -> list:
        """One type or more, separated by commas, then `end`."""
        out = [self.type(depth + 1)]
        while self.eat(","):
            out.append(self.type(depth + 1))
        self.expect(end)
        return out

    def fields(self, depth: int, end: str, allow_empty: bool) -> list:
        """`name:type` fields separated by commas, then `end`."""
        out = []
        if allow_empty and self.eat(end):
            return out
        seen = set()
        while True:
            at = self.pos
            name = self.name("a field's name")
            if name in seen:
                self.pos = at
                raise self.fail(f"the field {name!r} is named twice")
            seen.add(name)
            self.expect(":")
            out.append((name, self.type(depth + 1)))
            if not self.eat(","):
                break
        self.expect(end)
        return out

    def generic(self, name: str, depth: int) -> ArchivedType:
        # After "name<".
        if name == "box":
            if self.eat("str>"):
                return BoxStr()
            if self.eat("["):
                # The brackets are a level, as an array's are: the element
                # is two below the box, a slice's as a boxed array's.
                elem = self.type(depth + 2)
                if self.eat("]>"):
                    return Vec(elem, "box<[..]>")
                # "box<[T;N]>": a box of an array.
                self.expect(";")
                count = self.length()
                self.expect("]")
                self.expect(">")
                return Box(Array(elem, count))
            inner = Box(self.type(depth + 1))
        elif name == "vec":
            inner = Vec(self.type(depth + 1))
        elif name == "option":
            inner = Option(self.type(depth + 1))
        elif name == "result":
            ok = self.type(depth + 1)
            self.expect(",")
            err = self.type(depth + 1)
            inner = Enum([("Ok", 0, [("0", ok)], True), ("Err", 1, [("0", err)], True)])
        else:
            key = self.type(depth + 1)
            value = None
            if name.endswith("map"):
                self.expect(",")
                value = self.type(depth + 1)
            inner = MAPS[name](key, value, name)
        self.expect(">")
        return inner

    def enum(self, depth: int) -> ArchivedType:
        # After "enum ".
        name = self.name("an enum's name")
        self.expect("{")
        variants, names, tags = [], set(), set()
        while True:
            at = self.pos
            vname = self.name("a variant's name")
            if vname in names:
                self.pos = at
                raise self.fail(f"the variant {vname!r} is named twice")
            names.add(vname)
            self.expect("=")
            at = self.pos
            tag = self.number("a variant's tag")
            if tag > 255 or tag in tags:
                self.pos = at
                raise self.fail(f"the tag {tag} of {vname!r} is above 255 or given twice")
            tags.add(tag)
            if self.eat("("):
                types = self.types(depth, ")")
                variants.append((vname, tag, [(str(i), t) for i, t in enumerate(types)], True))
            elif self.eat("{"):
                variants.append((vname, tag, self.fields(depth, "}", allow_empty=False), False))
            else:
                variants.append((vname, tag, None, False))
            if not self.eat(","):
                break
        self.expect("}")
        return Enum(variants, name=name)
