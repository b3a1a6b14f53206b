"""rkyv 0.8 archives (FORMAT.md, "Region archives: the rkyv 0.8 subset a
reader needs"): the schema that says what an archive's root is, and the
decoder that reads an archive by it.

`parse_schema` turns a description (a type string such as "vec<u32>", a
list of [field, type] pairs, or a JSON object) into an archived type that
knows its size and alignment, laid out as rkyv lays it out: structs,
tuples and enum variants are repr(C), an option is a repr(u8) enum, a
string is 8 bytes inline or a length and an offset, a vector or box a
relative pointer and a length, a hash map or set a Swiss table, a B-tree
map or set a tree of nodes of 5 entries. `decode_archive` finds the root
at the archive's end and decodes it.

The archive is a copy, and nothing in it is trusted: every relative
pointer is checked to stay in the archive and to be aligned before it is
followed, every bool, char, tag and string is checked to be valid, and
what the decode produces is bounded by the archive's size, so that a
damaged archive is a DecodeError that says where, never a wrong value, a
crash or a decoder that runs away.

The bound is on the bytes of output, as the decoder counts them: every
value it makes (a number, bool, char, string, None, list, dict or
variant name) and every B-tree node it visits counts 8 bytes and every
string its length in UTF-8 bytes as well, and the whole may not pass 32
bytes per byte of the archive plus 1 MiB:

    budget = 32 * len(archive) + 2**20

Pointers may share a target (rkyv's own validation refuses that; this
decoder does not look), and each is followed anew, so without the bound
an archive of N pointers to one vector or string of M bytes would decode
to N * M bytes: 1 MiB of them to gigabytes. An archive whose pointers
do not share targets decodes each of its bytes once, and stays inside
the budget while it averages fewer than 4 values per byte: a vector of
`u8` makes 1 value per byte, of structs of one `u8` 2, of structs holding
a struct of one `u8` 3 (only zero-sized values, such as `()`, and
structs nested deeper around single bytes make more, within the extra
1 MiB).

A B-tree is walked without recursion, and stops at the first inner node
or entry beyond what its length allows, so nodes that point at each
other in a cycle end in a DecodeError, not a loop.
"""

from __future__ import annotations

import json
import re
import struct
from typing import Any

from .errors import DecodeError, UsageError


# What one decoded value counts against the budget, in bytes.
_VALUE_COST = 8

# The budget: this many bytes of output per byte of the archive, plus
# _BUDGET_EXTRA.
_BUDGET_PER_BYTE = 32
_BUDGET_EXTRA = 1 << 20


def _round_up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def _layout_fields(types) -> tuple:
    """repr(C): (offsets, size, align) of fields of these types in order."""
    offset, align, offsets = 0, 1, []
    for t in types:
        offset = _round_up(offset, t.align)
        offsets.append(offset)
        offset += t.size
        align = max(align, t.align)
    return offsets, _round_up(offset, align), align


class Archive:
    def __init__(self, data: bytes):
        self.data = bytes(data)
        self.len = len(self.data)
        self.budget = _BUDGET_PER_BYTE * self.len + _BUDGET_EXTRA
        self.spent = 0

    def fail(self, path: str, message: str) -> DecodeError:
        return DecodeError(f"at {path or 'the root'}: {message}", field=path or "root")

    def target(self, at: int) -> int:
        """Where the relative pointer at `at` points: its own position plus
        the signed 32-bit offset it holds."""
        return at + struct.unpack_from("<i", self.data, at)[0]

    def check(self, at: int, size: int, align: int, path: str, what: str) -> None:
        if at < 0 or at + size > self.len:
            raise self.fail(
                path, f"{what} at bytes {at}..{at + size} lies outside the archive's {self.len} bytes"
            )
        if at % align:
            raise self.fail(path, f"{what} at byte {at} is not aligned to {align}")

    def spend(self, n: int, path: str) -> None:
        """Count `n` bytes of output against the budget, before they are
        made."""
        self.spent += n
        if self.spent > self.budget:
            raise self.fail(
                path,
                f"the archive's {self.len} bytes decode to more than {self.budget} bytes of values "
                f"({_BUDGET_PER_BYTE} per archive byte plus {_BUDGET_EXTRA}): pointers in it share "
                "their targets, or it is not of this schema",
            )

    def values(self, n: int, path: str) -> None:
        """Count `n` values about to be made."""
        self.spend(n * _VALUE_COST, path)


class ArchivedType:
    """An archived type: its size and alignment, and how to decode it."""

    size = 0
    align = 1

    def decode(self, a: Archive, at: int, path: str):
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class Prim(ArchivedType):
    def __init__(self, name: str, fmt: str, size: int):
        self.name, self.fmt, self.size, self.align = name, fmt, size, size

    def decode(self, a, at, path):
        return struct.unpack_from(self.fmt, a.data, at)[0]

    def describe(self):
        return self.name


class Wide(ArchivedType):
    """u128 and i128: 16 bytes, aligned to 16."""

    size = align = 16

    def __init__(self, signed: bool):
        self.signed = signed

    def decode(self, a, at, path):
        return int.from_bytes(a.data[at : at + 16], "little", signed=self.signed)

    def describe(self):
        return "i128" if self.signed else "u128"


class Bool(ArchivedType):
    size = align = 1

    def decode(self, a, at, path):
        b = a.data[at]
        if b > 1:
            raise a.fail(path, f"a bool holds {b}, not 0 or 1")
        return b == 1

    def describe(self):
        return "bool"


class Char(ArchivedType):
    size = align = 4

    def decode(self, a, at, path):
        c = struct.unpack_from("<I", a.data, at)[0]
        if c > 0x10FFFF or 0xD800 <= c <= 0xDFFF:
            raise a.fail(path, f"a char holds {c:#x}, not a Unicode scalar value")
        return chr(c)

    def describe(self):
        return "char"


class Unit(ArchivedType):
    size, align = 0, 1

    def decode(self, a, at, path):
        return None

    def describe(self):
        return "()"


class Str(ArchivedType):
    """ArchivedString: 8 bytes, aligned to 4; inline up to 8 bytes (padded
    with 0xff), else a length with the marker bits 0b10 in bits 6-7 and an
    offset from the string's own start."""

    size, align = 8, 4

    def decode(self, a, at, path):
        first = a.data[at]
        if first & 0xC0 != 0x80:
            raw = a.data[at : at + 8]
            end = raw.find(b"\xff")
            raw = raw if end < 0 else raw[:end]
        else:
            word = struct.unpack_from("<I", a.data, at)[0]
            length = (word & 0x3F) | ((word & 0xFFFFFF00) >> 2)
            if length <= 8:
                raise a.fail(path, f"an out-of-line string of {length} bytes (at most 8 are kept inline)")
            start = at + struct.unpack_from("<i", a.data, at + 4)[0]
            a.check(start, length, 1, path, f"a string of {length} bytes")
            raw = a.data[start : start + length]
        a.spend(len(raw), path)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise a.fail(path, f"a string is not UTF-8 ({e.reason} at byte {e.start})")

    def describe(self):
        return "str"


class Vec(ArchivedType):
    """ArchivedVec<T> and the archived slice of Box<[T]>: a relative pointer
    to the elements and their number (u32)."""

    size, align = 8, 4

    def __init__(self, elem: ArchivedType, name: str = "vec"):
        self.elem, self.name = elem, name

    def decode(self, a, at, path):
        count = struct.unpack_from("<I", a.data, at + 4)[0]
        if count == 0:
            return []
        start = a.target(at)
        size = self.elem.size
        a.check(start, count * size, self.elem.align, path, f"{count} elements of {size} bytes")
        a.values(count, path)
        return [self.elem.decode(a, start + i * size, f"{path}[{i}]") for i in range(count)]

    def describe(self):
        if self.name == "box<[..]>":
            return f"box<[{self.elem.describe()}]>"
        return f"{self.name}<{self.elem.describe()}>"


class BoxStr(ArchivedType):
    """ArchivedBox<str>: a relative pointer to the bytes and their number."""

    size, align = 8, 4

    def decode(self, a, at, path):
        count = struct.unpack_from("<I", a.data, at + 4)[0]
        start = a.target(at)
        if count:
            a.check(start, count, 1, path, f"a string of {count} bytes")
            a.spend(count, path)
        try:
            return a.data[start : start + count].decode("utf-8") if count else ""
        except UnicodeDecodeError as e:
            raise a.fail(path, f"a string is not UTF-8 ({e.reason} at byte {e.start})")

    def describe(self):
        return "box<str>"


class Box(ArchivedType):
    """ArchivedBox<T> of a sized T: a relative pointer."""

    size, align = 4, 4

    def __init__(self, elem: ArchivedType):
        self.elem = elem

    def decode(self, a, at, path):
        start = a.target(at)
        a.check(start, self.elem.size, self.elem.align, path, f"a boxed {self.elem.describe()}")
        return self.elem.decode(a, start, path)

    def describe(self):
        return f"box<{self.elem.describe()}>"


class Option(ArchivedType):
    """ArchivedOption<T>: repr(u8) enum: tag byte 0 None / 1 Some, the value
    at the next multiple of its alignment."""

    def __init__(self, elem: ArchivedType):
        self.elem = elem
        offsets, some, align = _layout_fields([_U8, elem])
        self.payload = offsets[1]
        self.align = align
        self.size = _round_up(max(1, some), align)

    def decode(self, a, at, path):
        tag = a.data[at]
        if tag == 0:
            return None
        if tag != 1:
            raise a.fail(path, f"an option's tag is {tag}, not 0 (None) or 1 (Some)")
        return self.elem.decode(a, at + self.payload, path)

    def describe(self):
        return f"option<{self.elem.describe()}>"


class Struct(ArchivedType):
    """A struct with named fields (repr(C)), decoded to a dict by field
    name; `name` is the type's own name, if known."""

    def __init__(self, fields: list, name: str = ""):
        self.fields, self.name = fields, name
        self.offsets, self.size, self.align = _layout_fields([t for _, t in fields])

    def decode(self, a, at, path):
        a.values(len(self.fields), path)
        return {
            name: t.decode(a, at + off, f"{path}.{name}")
            for (name, t), off in zip(self.fields, self.offsets)
        }

    def describe(self):
        return self.name + "{" + ", ".join(f"{n}: {t.describe()}" for n, t in self.fields) + "}"


class Tuple(ArchivedType):
    """A tuple, or a tuple struct called `name` (repr(C)), decoded to a
    list."""

    def __init__(self, elems: list, name: str = ""):
        self.elems, self.name = elems, name
        self.offsets, self.size, self.align = _layout_fields(elems)

    def decode(self, a, at, path):
        a.values(len(self.elems), path)
        return [
            t.decode(a, at + off, f"{path}.{i}") for i, (t, off) in enumerate(zip(self.elems, self.offsets))
        ]

    def describe(self):
        return self.name + "(" + ", ".join(t.describe() for t in self.elems) + ")"


class Array(ArchivedType):
    def __init__(self, elem: ArchivedType, count: int):
        self.elem, self.count = elem, count
        self.size, self.align = elem.size * count, elem.align

    def decode(self, a, at, path):
        a.values(self.count, path)
        return [self.elem.decode(a, at + i * self.elem.size, f"{path}[{i}]") for i in range(self.count)]

    def describe(self):
        return f"[{self.elem.describe()}; {self.count}]"


class Enum(ArchivedType):
    """A derived enum (repr(u8)): a union of repr(C) structs, each the tag
    byte then the variant's fields. `variants` is a list of (name, tag,
    fields or None, tuple-like)."""

    def __init__(self, variants: list, name: str = ""):
        self.name = name
        if not variants:
            raise UsageError("an enum needs at least one variant")
        self.variants = {}
        size, align = 1, 1
        for name, tag, fields, tuple_like in variants:
            if not 0 <= tag <= 255 or tag in self.variants:
                raise UsageError(f"enum variant {name!r}: tag {tag} is out of 0..255 or repeated")
            types = [t for _, t in fields or []]
            offsets, vsize, valign = _layout_fields([_U8] + types)
            self.variants[tag] = (name, fields, offsets[1:], tuple_like)
            size, align = max(size, vsize), max(align, valign)
        self.size, self.align = _round_up(size, align), align

    def decode(self, a, at, path):
        tag = a.data[at]
        if tag not in self.variants:
            raise a.fail(path, f"enum tag {tag} names no variant of the schema")
        name, fields, offsets, tuple_like = self.variants[tag]
        if fields is None:
            return name
        # The variant's fields, and the list or dict that holds them.
        a.values(len(fields) + 1, path)
        values = [t.decode(a, at + off, f"{path}.{name}.{n}") for (n, t), off in zip(fields, offsets)]
        if tuple_like:
            return {name: values}
        return {name: {n: v for (n, _), v in zip(fields, values)}}

    def describe(self):
        return f"enum {self.name}" + "{" + ", ".join(v[0] for v in self.variants.values()) + "}"


def _is_scalar(t: ArchivedType) -> bool:
    """Whether every value of `t` decodes to a str, int, float or bool: a
    map with such keys decodes to a dict."""
    if isinstance(t, (Prim, Wide, Bool, Char, Str, BoxStr)):
        return True
    return isinstance(t, Enum) and all(v[1] is None for v in t.variants.values())


class _Entries:
    """What a map or set decodes to, built entry by entry: a dict when the
    keys are scalars (a repeated key is an error, as no map holds one), a
    list of [key, value] pairs otherwise, a list of keys for a set."""

    def __init__(self, key: ArchivedType, is_set: bool):
        self.is_set = is_set
        self.as_dict = not is_set and _is_scalar(key)
        self.out = {} if self.as_dict else []

    def add(self, a: Archive, key, value, path: str) -> None:
        if self.is_set:
            self.out.append(key)
        elif self.as_dict:
            if key in self.out:
                raise a.fail(path, f"the map holds the key {key!r} twice")
            self.out[key] = value
        else:
            self.out.append([key, value])


class HashTable(ArchivedType):
    """ArchivedHashMap<K, V> and ArchivedHashSet<K> (a set is a map of K to
    ()): rkyv's Swiss table. 12 bytes, aligned to 4: a relative pointer to
    the control bytes, the number of entries (u32) and the capacity (u32).
    Bucket i (0 <= i < capacity) is the entry, a repr(C) (key, value),
    ending where bucket i - 1 begins and bucket 0 ending at the control
    bytes: at `control - (i + 1) * size(entry)`. Control byte i, for i below
    the capacity, is below 0x80 when bucket i holds an entry and 0xff when
    it is empty; the bytes from the capacity on (to a multiple of 16, plus
    15) repeat the first ones and name no bucket."""

    size, align = 12, 4
    GROUP = 16

    def __init__(self, key: ArchivedType, value: "ArchivedType | None", name: str):
        self.key, self.value, self.name = key, value, name
        offsets, self.entry_size, self.entry_align = _layout_fields([key] if value is None else [key, value])
        self.value_offset = offsets[-1]

    def decode(self, a, at, path):
        length, cap = struct.unpack_from("<II", a.data, at + 4)
        entries = _Entries(self.key, self.value is None)
        if length == 0:
            # rkyv writes no table and an invalid pointer (offset 1): not
            # followed.
            return entries.out
        if length >= cap:
            raise a.fail(path, f"a hash table of {length} entries has a capacity of {cap} (more is required)")
        control = a.target(at)
        controls = _round_up(cap, self.GROUP) + self.GROUP - 1
        start = control - cap * self.entry_size
        a.check(
            start,
            cap * self.entry_size + controls,
            self.entry_align,
            path,
            f"a hash table of {cap} buckets of {self.entry_size} bytes and {controls} control bytes",
        )
        # Every control byte is looked at: counted, so that many maps over
        # one large table cannot make the work grow with their product.
        a.spend(cap, path)
        full = [i for i, c in enumerate(a.data[control : control + cap]) if c < 0x80]
        if len(full) != length:
            raise a.fail(path, f"a hash table's control bytes mark {len(full)} full buckets; its length is {length}")
        a.values(length * (1 if self.value is None else 2), path)
        for n, i in enumerate(full):
            pos = control - (i + 1) * self.entry_size
            here = f"{path}[{n}]"
            key = self.key.decode(a, pos, here if self.value is None else f"{here}.key")
            value = None if self.value is None else self.value.decode(a, pos + self.value_offset, f"{here}.value")
            entries.add(a, key, value, here)
        return entries.out

    def describe(self):
        args = self.key.describe() if self.value is None else f"{self.key.describe()}, {self.value.describe()}"
        return f"{self.name}<{args}>"


class BTree(ArchivedType):
    """ArchivedBTreeMap<K, V> and ArchivedBTreeSet<K> (a set is a map of K
    to ()): 8 bytes, aligned to 4: a relative pointer to the root node and
    the number of entries (u32). A node (5 entries at most) is repr(C): a
    kind byte (0 leaf, 1 inner), [K; 5], [V; 5]; a leaf adds the number of
    its entries (u32, at most 5), an inner node, always full, 5 relative
    pointers to the nodes of lesser keys than each entry and one to the
    node of greater keys, any of them invalid (offset 1) for none. In
    order: lesser[0], entry 0, lesser[1], ..., entry 4, greater."""

    size, align = 8, 4
    E = 5

    def __init__(self, key: ArchivedType, value: "ArchivedType | None", name: str):
        self.key, self.value, self.name = key, value, name
        node = Tuple([_U8, Array(key, self.E), Array(value or PRIMS["unit"], self.E)])
        self.keys_at, self.values_at = node.offsets[1], node.offsets[2]
        leaf = Tuple([node, PRIMS["u32"]])
        inner = Tuple([node, Array(PRIMS["u32"], self.E), PRIMS["u32"]])
        self.leaf_len_at, self.leaf_size = leaf.offsets[1], leaf.size
        self.lesser_at, self.greater_at, self.inner_size = inner.offsets[1], inner.offsets[2], inner.size
        self.node_align = leaf.align

    def child(self, a: Archive, node: int, i: int):
        """The position of child i of an inner node (i < 5: lesser[i], 5:
        greater), None for an invalid pointer."""
        at = node + (self.lesser_at + 4 * i if i < self.E else self.greater_at)
        offset = struct.unpack_from("<i", a.data, at)[0]
        return None if offset == 1 else at + offset

    def decode(self, a, at, path):
        length = struct.unpack_from("<I", a.data, at + 4)[0]
        entries = _Entries(self.key, self.value is None)
        if length == 0:
            return entries.out
        count = inner_nodes = 0

        def entry(node: int, i: int) -> None:
            nonlocal count
            if count == length:
                raise a.fail(path, f"a B-tree holds more entries than its length, {length}")
            here = f"{path}[{count}]"
            count += 1
            a.values(1 if self.value is None else 2, path)
            key = self.key.decode(a, node + self.keys_at + i * self.key.size, here if self.value is None else f"{here}.key")
            value = None
            if self.value is not None:
                value = self.value.decode(a, node + self.values_at + i * self.value.size, f"{here}.value")
            entries.add(a, key, value, here)

        # In order, without recursion: `stack` holds the inner nodes being
        # walked, each with the number of its entries given so far.
        stack = []
        node = a.target(at)
        while True:
            if node is not None:
                a.values(1, path)
                a.check(node, 1, self.node_align, path, "a B-tree node")
                kind = a.data[node]
                if kind == 0:
                    a.check(node, self.leaf_size, self.node_align, path, "a B-tree leaf")
                    n = struct.unpack_from("<I", a.data, node + self.leaf_len_at)[0]
                    if n > self.E:
                        raise a.fail(path, f"a B-tree leaf holds {n} entries, more than {self.E}")
                    for i in range(n):
                        entry(node, i)
                    node = None
                elif kind == 1:
                    a.check(node, self.inner_size, self.node_align, path, "a B-tree inner node")
                    inner_nodes += 1
                    if inner_nodes * self.E > length:
                        raise a.fail(path, f"a B-tree has more inner nodes than its length, {length}, allows")
                    stack.append([node, 0])
                    node = self.child(a, node, 0)
                else:
                    raise a.fail(path, f"a B-tree node's kind is {kind}, not 0 (leaf) or 1 (inner)")
                continue
            if not stack:
                break
            frame = stack[-1]
            if frame[1] == self.E:
                stack.pop()
                continue
            entry(frame[0], frame[1])
            frame[1] += 1
            node = self.child(a, frame[0], frame[1])
        if count != length:
            raise a.fail(path, f"a B-tree holds {count} entries; its length is {length}")
        return entries.out

    def describe(self):
        args = self.key.describe() if self.value is None else f"{self.key.describe()}, {self.value.describe()}"
        return f"{self.name}<{args}>"


_U8 = Prim("u8", "<B", 1)
PRIMS = {
    "u8": _U8,
    "i8": Prim("i8", "<b", 1),
    "u16": Prim("u16", "<H", 2),
    "i16": Prim("i16", "<h", 2),
    "u32": Prim("u32", "<I", 4),
    "i32": Prim("i32", "<i", 4),
    "u64": Prim("u64", "<Q", 8),
    "i64": Prim("i64", "<q", 8),
    "usize": Prim("usize", "<I", 4),
    "isize": Prim("isize", "<i", 4),
    "f32": Prim("f32", "<f", 4),
    "f64": Prim("f64", "<d", 8),
    "u128": Wide(False),
    "i128": Wide(True),
    "bool": Bool(),
    "char": Char(),
    "unit": Unit(),
    "str": Str(),
    "string": Str(),
    "String": Str(),
}

# The maps and sets, by their name in a schema.
MAPS = {"hash_map": HashTable, "hash_set": HashTable, "btree_map": BTree, "btree_set": BTree}

_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[<>\[\];,()])")


class _TypeParser:
    """Type strings: u8 ... i128, f32, f64, bool, char, unit or (), str
    (String), vec<T>, option<T>, box<T>, box<str>, box<[T]>, [T; N],
    (A, B, ...), result<T, E>, hash_map<K, V>, hash_set<T>,
    btree_map<K, V>, btree_set<T>."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise UsageError(f"bad type {self.text!r}: unexpected {text[pos:].strip()[:10]!r}")
            self.tokens.append(m.group(1))
            pos = m.end()
        self.i = 0

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, want=None):
        tok = self.peek()
        if tok is None or (want is not None and tok != want):
            raise UsageError(f"bad type {self.text!r}: expected {want or 'a type'}, found {tok or 'the end'}")
        self.i += 1
        return tok

    def parse(self) -> ArchivedType:
        t = self.type()
        if self.peek() is not None:
            raise UsageError(f"bad type {self.text!r}: unexpected {self.peek()!r}")
        return t

    def type(self) -> ArchivedType:
        tok = self.take()
        if tok == "(":
            if self.peek() == ")":
                self.take()
                return PRIMS["unit"]
            elems = [self.type()]
            while self.peek() == ",":
                self.take()
                if self.peek() == ")":
                    break
                elems.append(self.type())
            self.take(")")
            return Tuple(elems)
        if tok == "[":
            elem = self.type()
            self.take(";")
            count = self.take()
            if not count.isdigit():
                raise UsageError(f"bad type {self.text!r}: an array length is a number")
            self.take("]")
            return Array(elem, int(count))
        low = tok.lower()
        if low in MAPS:
            self.take("<")
            key = self.type()
            value = None
            if low.endswith("map"):
                self.take(",")
                value = self.type()
            self.take(">")
            return MAPS[low](key, value, low)
        if low in ("vec", "option", "box", "result"):
            self.take("<")
            if low == "box" and self.peek() == "str":
                self.take()
                inner = BoxStr()
            elif low == "box" and self.peek() == "[":
                self.take()
                elem = self.type()
                self.take("]")
                inner = Vec(elem, "box<[..]>")
            elif low == "result":
                ok = self.type()
                self.take(",")
                err = self.type()
                inner = Enum([("Ok", 0, [("0", ok)], True), ("Err", 1, [("0", err)], True)])
            else:
                elem = self.type()
                inner = {"vec": Vec, "option": Option, "box": Box}[low](elem)
            self.take(">")
            return inner
        if tok in PRIMS:
            return PRIMS[tok]
        raise UsageError(f"bad type {self.text!r}: unknown type {tok!r}")


def parse_schema(spec) -> ArchivedType:
    """An archived type from a schema description:

    - a type string: "u64", "i32", "f64", "bool", "char", "str", "vec<u32>",
      "option<u64>", "box<str>", "[u8; 4]", "(u8, str)", "result<u32, str>",
      "hash_map<str, u32>", "hash_set<u64>", "btree_map<u32, str>",
      "btree_set<str>";
    - a list of [field name, type] pairs: a struct, fields in declaration
      order (rkyv's archived structs are repr(C));
    - {"struct": [[name, type], ...]}, {"tuple": [type, ...]},
      {"vec": type}, {"option": type}, {"box": type},
      {"array": type, "len": N}, {"hash_map": [key type, value type]},
      {"hash_set": type}, {"btree_map": [key type, value type]},
      {"btree_set": type};
    - {"enum": [[variant, fields], ...]} for a derived enum, where fields is
      null (a unit variant), a list of [name, type] pairs (a struct variant)
      or a list of types (a tuple variant); variant i has tag i unless the
      entry is {"name": ..., "fields": ..., "tag": N}.
    """
    if isinstance(spec, ArchivedType):
        return spec
    if isinstance(spec, str):
        return _TypeParser(spec).parse()
    if isinstance(spec, list):
        return Struct(_fields(spec, "struct"))
    if isinstance(spec, dict) and len(spec) >= 1:
        if "struct" in spec:
            return Struct(_fields(spec["struct"], "struct"))
        if "tuple" in spec:
            return Tuple([parse_schema(t) for t in _list(spec["tuple"], "tuple")])
        if "array" in spec:
            count = spec.get("len")
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise UsageError("an array schema needs a \"len\" of 0 or more")
            return Array(parse_schema(spec["array"]), count)
        for key, cls in (("vec", Vec), ("option", Option), ("box", Box)):
            if key in spec:
                return cls(parse_schema(spec[key]))
        for key, cls in MAPS.items():
            if key not in spec:
                continue
            if key.endswith("set"):
                return cls(parse_schema(spec[key]), None, key)
            pair = spec[key]
            if not (isinstance(pair, list) and len(pair) == 2):
                raise UsageError(f"bad {key} schema: give [key type, value type]")
            return cls(parse_schema(pair[0]), parse_schema(pair[1]), key)
        if "enum" in spec:
            variants = []
            for i, v in enumerate(_list(spec["enum"], "enum")):
                if isinstance(v, dict):
                    name, fields, tag = v.get("name"), v.get("fields"), v.get("tag", i)
                elif isinstance(v, list) and len(v) == 2:
                    (name, fields), tag = v, i
                else:
                    raise UsageError(
                        f"enum variant {i}: give [name, fields] or an object with name, fields and tag"
                    )
                if not isinstance(name, str) or not isinstance(tag, int) or isinstance(tag, bool):
                    raise UsageError(f"enum variant {i}: a name is a string and a tag a number")
                if fields is None:
                    variants.append((name, tag, None, False))
                    continue
                fields = _list(fields, f"variant {name}")
                named = bool(fields) and all(
                    isinstance(f, list) and len(f) == 2 and isinstance(f[0], str) for f in fields
                )
                if named:
                    variants.append((name, tag, _fields(fields, f"variant {name}"), False))
                else:
                    positional = [(str(j), parse_schema(t)) for j, t in enumerate(fields)]
                    variants.append((name, tag, positional, True))
            return Enum(variants)
    raise UsageError(
        f"bad schema {json.dumps(spec)[:80]}: give a type string, a list of [name, type] pairs or an object"
    )


def _list(value, what: str) -> list:
    if not isinstance(value, list):
        raise UsageError(f"bad {what} schema: a list is expected")
    return value


def _fields(pairs, what: str) -> list:
    out = []
    for p in _list(pairs, what):
        if not (isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str)):
            raise UsageError(f"bad {what} schema: each field is [name, type], not {json.dumps(p)[:60]}")
        out.append((p[0], parse_schema(p[1])))
    return out


def decode_archive(data: bytes, schema) -> Any:
    """Decode an rkyv 0.8 archive (as a region holds it) whose root has the
    type `schema` (see `parse_schema`). Every pointer is checked to stay in
    the archive, and the value made is bounded by the archive's size (the
    module's docstring says how); DecodeError says where a check failed."""
    root = parse_schema(schema)
    a = Archive(data)
    if a.len < root.size:
        raise DecodeError(f"the archive has {a.len} bytes, fewer than its root ({root.size})", field="root")
    at = a.len - root.size
    if at % root.align:
        raise DecodeError(f"the root at byte {at} is not aligned to {root.align}", field="root")
    a.values(1, "")
    return root.decode(a, at, "")


def decode_cell(data: bytes, root: ArchivedType) -> Any:
    """Decode a cell's value, `data` (the value's bytes, as `read_cell`
    returns them), of the plain-data type `root` (a stored schema's root,
    see schema.py: scalars, arrays, tuples and structs in the platform's
    layout, which hold no pointers). The output is bounded as an archive's
    is (the module's docstring)."""
    a = Archive(data)
    if a.len != root.size:
        raise DecodeError(f"the value has {a.len} bytes; its type ({root.describe()}) has {root.size}", field="root")
    a.values(1, "")
    return root.decode(a, 0, "")
