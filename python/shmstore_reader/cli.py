"""The command line: JSON on standard output (text for `value` without
--json), exit status 0 ok, 1 error, 2 usage.

    python3 -m shmstore_reader info   TARGET
    python3 -m shmstore_reader cell   TARGET [--struct FORMAT] [--reads N]
    python3 -m shmstore_reader region TARGET [--schema JSON|@FILE] [--reads N]
    python3 -m shmstore_reader value  TARGET [--json] [--reads N]
    python3 -m shmstore_reader decode --schema JSON|@FILE [--hex] < ARCHIVE

`value` decodes a cell or a region by the schema the object stores
(FORMAT.md, "Schema (optional)"): as indented text, one `field: value` a
line, or with --json as one JSON line like the other commands.

`info`, `cell`, `region` and `value` also take `--wait`, `--timeout`, whom to
trust and what type to expect (see `--help`), and `--namespace DIR`: a
TARGET that is a name is then found in the private namespace of directory
DIR (an id or a key is not affected).

Every result is one JSON line (`--reads N` prints one per read that
differs from the one before); every failure is one JSON line ``{"error":
kind, "message": ...}`` on standard output, the message again on standard
error, and the error's exit status. Values JSON cannot hold are given as
text (NaN, inf, -inf) and bytes in hex, so the output is always valid JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

from .errors import ReaderError, UsageError
from .host import check_host
from .objects import ShmObject
from .rkyv import decode_archive, parse_schema
from .sysv import OpenOptions


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        # A map's keys may be numbers or bools: JSON's keys are strings.
        return {_json_key(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def _json_key(key) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, float):
        return _json_safe(key) if not math.isfinite(key) else repr(key)
    return str(key)


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _scalar_text(value) -> str:
    """A scalar as `value` shows it: as JSON writes it (strings quoted and
    escaped), NaN and infinities as nan, inf and -inf."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return json.dumps(value)


def render_text(value, indent: str = "") -> list:
    """The lines that show a decoded value: a dict as `key: value` lines, a
    list as `- value` lines, each nested dict or list indented by two
    spaces under its key or dash; empty ones as {} and []."""
    lines = []
    if isinstance(value, dict) and value:
        for k, v in value.items():
            key = k if isinstance(k, str) and _PLAIN_KEY.fullmatch(k) else _scalar_text(k)
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{indent}{key}:")
                lines.extend(render_text(v, indent + "  "))
            else:
                lines.append(f"{indent}{key}: {render_text(v)[0]}")
    elif isinstance(value, list) and value:
        for v in value:
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{indent}-")
                lines.extend(render_text(v, indent + "  "))
            else:
                lines.append(f"{indent}- {render_text(v)[0]}")
    elif isinstance(value, dict):
        lines.append(indent + "{}")
    elif isinstance(value, list):
        lines.append(indent + "[]")
    else:
        lines.append(indent + _scalar_text(value))
    return lines


def _emit(obj) -> None:
    sys.stdout.write(json.dumps(_json_safe(obj), allow_nan=False) + "\n")


def _load_schema(text: str):
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise UsageError(f"cannot read the schema file {text[1:]!r}: {e.strerror}")
    try:
        spec = json.loads(text)
    except json.JSONDecodeError:
        spec = text.strip()  # a bare type string, e.g. vec<u32>
    return parse_schema(spec)


def _reads(args, read_once, render) -> None:
    """One read, or `--reads N` reads printing each that differs from the
    one before (the first always)."""
    last = None
    for _ in range(args.reads):
        result = read_once()
        key = (result[0], result[1])
        if key != last:
            out = {"version": result[0]}
            out.update(render(result[1]))
            out["retries"] = result.retries
            _emit(out)
            last = key


def _main(argv) -> int:
    parser = argparse.ArgumentParser(
        prog="shmstore_reader",
        description="Read shmstore objects (System V shared memory) read-only, as FORMAT.md says. "
        "A TARGET is a segment id (decimal, or id:N), a key (0x... hex, or key:N) or an object's name "
        "(or name:TEXT). Output is JSON; exit status 0 ok, 1 error, 2 usage.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("target", help="segment id, 0x key, key:N, id:N, or name")
        p.add_argument("--wait", type=float, default=5.0, metavar="SECS",
                       help="how long to wait for a creator to finish the object, or for a "
                       "process removing or collecting it (default 5)")
        p.add_argument("--timeout", type=float, default=10.0, metavar="SECS",
                       help="how long a read may retry while writers overwrite it (default 10)")
        p.add_argument("--allow-foreign-owner", action="store_true",
                       help="read segments owned by other users too")
        p.add_argument("--trust-group", type=int, metavar="GID",
                       help="trust segments of group GID whose owner is in it")
        p.add_argument("--trust-user", type=int, metavar="UID",
                       help="trust segments owned and created by user UID too")
        p.add_argument("--namespace", metavar="DIR",
                       help="find a TARGET that is a name in the private namespace of directory DIR "
                       "(its keys come from DIR/shmstore.secret, which this reader only reads)")
        p.add_argument("--type-name", metavar="NAME",
                       help="fail unless the object holds this type (its full name, as shmstore stored it)")
        p.add_argument("--schema-version", type=int, metavar="N",
                       help="fail unless the object's schema version is N")
        p.add_argument("--size", type=int, metavar="BYTES",
                       help="fail unless the value (a region: the archived root) has this size")

    p = sub.add_parser("info", help="the validated header, kernel facts and current version")
    common(p)
    p = sub.add_parser("cell", help="a cell's value and version")
    common(p)
    p.add_argument("--struct", metavar="FORMAT",
                   help="unpack the value with this struct format (e.g. '<QdI'); "
                   "its size must be the value's")
    p.add_argument("--reads", type=int, default=1, metavar="N",
                   help="read N times, printing each read that differs from the one before")
    p = sub.add_parser("region", help="a region's current archive, raw or decoded")
    common(p)
    p.add_argument("--schema", metavar="JSON",
                   help="decode with this schema (JSON, a type string, or @FILE); "
                   "without it, the bytes in hex")
    p.add_argument("--reads", type=int, default=1, metavar="N",
                   help="read N times, printing each read that differs from the one before")
    p = sub.add_parser("value", help="a cell's or region's value, decoded by the schema it stores")
    common(p)
    p.add_argument("--json", action="store_true", help="one JSON line, as the other commands print")
    p.add_argument("--reads", type=int, default=1, metavar="N",
                   help="read N times, printing each read that differs from the one before")
    p = sub.add_parser("decode", help="decode an rkyv archive read from standard input (no segment)")
    p.add_argument("--schema", required=True, metavar="JSON",
                   help="the archive's root type (JSON, a type string, or @FILE)")
    p.add_argument("--hex", action="store_true", help="standard input holds the archive in hex")

    args = parser.parse_args(argv)
    if args.command == "decode":
        schema = _load_schema(args.schema)
        data = sys.stdin.buffer.read()
        if args.hex:
            try:
                data = bytes.fromhex(data.decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                raise UsageError("standard input is not hex")
        _emit({"len": len(data), "value": decode_archive(data, schema)})
        return 0
    check_host()
    if getattr(args, "reads", 1) < 1:
        raise UsageError("--reads takes 1 or more")
    if args.wait < 0 or args.timeout < 0 or not math.isfinite(args.wait + args.timeout):
        raise UsageError("--wait and --timeout take a number of seconds, 0 or more")
    schema = _load_schema(args.schema) if getattr(args, "schema", None) else None
    opts = OpenOptions(
        wait=args.wait,
        allow_foreign_owner=args.allow_foreign_owner,
        trust_group=args.trust_group,
        timeout=args.timeout,
        trust_user=args.trust_user,
    )
    with ShmObject.open(args.target, opts, args.namespace) as obj:
        obj.check_type(args.type_name, args.schema_version, args.size)
        if args.command == "info":
            _emit(obj.info())
        elif args.command == "cell":
            if args.struct:
                _reads(args, lambda: obj.read_cell(args.struct), lambda v: {"value": list(v)})
            else:
                _reads(args, obj.read_cell, lambda v: {"bytes": v.hex()})
        elif args.command == "value":
            if args.json:
                _reads(args, obj.read_value, lambda v: {"value": v})
            else:
                _value_text(args, obj)
        elif schema is not None:
            _reads(args, lambda: obj.read_region(schema), lambda v: {"value": v})
        else:
            _reads(args, obj.copy_region, lambda v: {"len": len(v), "bytes": v.hex()})
    return 0


def _value_text(args, obj) -> None:
    """`value` without --json: "version N" then the value's lines, for each
    read that differs from the one before."""
    last = None
    for _ in range(args.reads):
        version, value = obj.read_value()
        if (version, value) != last:
            sys.stdout.write(f"version {version}\n" + "\n".join(render_text(value)) + "\n")
            last = (version, value)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        status = _main(argv)
        sys.stdout.flush()
        return status
    except ReaderError as e:
        sys.stdout.flush()
        _emit(e.to_json())
        sys.stderr.write(f"shmstore_reader: {e.message}\n")
        return e.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away: nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
