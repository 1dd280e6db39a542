#!/usr/bin/env python3
"""Materialize a Strata version stored as base + page patches into a plain SQLite file.

Standard library only. Usage:

    materialize_pages.py --base BASE.sqlite3 --out OUT.sqlite3 [--no-verify-root] PATCH...

PATCH files are applied in the manifest's order. The format and the steps are in
Docs/design/0002-page-patch-versions.md ("Materialization"). Memory: one page at a time.
Exit status: 0 written, 1 a patch or the base is damaged or does not fit (the message names
the file and the field), 2 usage.
"""
import argparse
import hashlib
import os
import struct
import sys
import zlib

MAGIC = b"STRPATCH"
HEADER = struct.Struct(">8sHHIIIII32s32s")  # 96 bytes
FRAME = struct.Struct(">IB3sI32s")  # 44 bytes
INDEX = struct.Struct(">IQ")  # 12 bytes
FANOUT = 256
ROOT_PREFIX = b"strata-page-hashes-v1\x00"


class Damaged(Exception):
    def __init__(self, obj, field, message):
        super().__init__(f"{obj}: {field} {message}")


def read_header(path):
    with open(path, "rb") as f:
        raw = f.read(HEADER.size)
    if len(raw) < HEADER.size:
        raise Damaged(path, "header", f"is truncated: {len(raw)} of {HEADER.size} bytes")
    magic, version, flags, page_size, from_count, to_count, frames, _, from_root, to_root = HEADER.unpack(raw)
    if magic != MAGIC:
        raise Damaged(path, "header.magic", "is not STRPATCH")
    if version != 1:
        raise Damaged(path, "header.format_version", f"is {version}; this script reads 1")
    if flags != 0:
        raise Damaged(path, "header.flags", "has unknown bits set")
    if to_count > from_count and to_count - from_count > frames + 1:
        raise Damaged(path, "header.to_page_count", f"is {to_count}: growth by more pages than frames")
    return dict(page_size=page_size, from_count=from_count, to_count=to_count, frames=frames,
                from_root=from_root, to_root=to_root)


def frames(path, h):
    """Yields (page number, raw page, sha256) for each frame; verifies index and trailer at the end."""
    size = os.path.getsize(path)
    digest = hashlib.sha256()
    offsets = []
    with open(path, "rb") as f:
        digest.update(f.read(HEADER.size))
        last = 0
        for i in range(h["frames"]):
            offset = f.tell()
            fh = f.read(FRAME.size)
            if len(fh) < FRAME.size:
                raise Damaged(path, f"frame {i}", "is truncated")
            pgno, enc, reserved, length, sha = FRAME.unpack(fh)
            field = f"frame {i} (page {pgno})"
            if pgno <= last or pgno > h["to_count"]:
                raise Damaged(path, f"{field}.page_number", f"is out of order or out of range (after {last})")
            if enc not in (0, 1, 2) or reserved != b"\0\0\0":
                raise Damaged(path, f"{field}.encoding", f"is {enc}")
            stored = f.read(length)
            if len(stored) < length:
                raise Damaged(path, field, "is truncated")
            digest.update(fh)
            digest.update(stored)
            if enc == 1:
                try:
                    page = zlib.decompress(stored)
                except zlib.error:
                    raise Damaged(path, f"{field}.data", "does not inflate")
            elif enc == 2:  # zero run: gap start u32, gap length u32, bytes before, bytes after
                if len(stored) < 8:
                    raise Damaged(path, f"{field}.data", "is not a zero run")
                start, gap = struct.unpack_from(">II", stored)
                page = stored[8:8 + start] + bytes(gap) + stored[8 + start:]
            else:
                page = stored
            if len(page) != h["page_size"]:
                raise Damaged(path, f"{field}.data", f"is {len(page)} bytes, not one page")
            if hashlib.sha256(page).digest() != sha:
                raise Damaged(path, f"{field}.sha256", "does not match the page's content")
            offsets.append((pgno, offset))
            last = pgno
            yield pgno, page, sha
        index = f.read(INDEX.size * h["frames"])
        trailer = f.read(32)
        if len(index) != INDEX.size * h["frames"] or len(trailer) != 32 or f.tell() != size:
            raise Damaged(path, "file", "is truncated or has extra bytes after the trailer")
        for i, (pgno, offset) in enumerate(offsets):
            if INDEX.unpack_from(index, i * INDEX.size) != (pgno, offset):
                raise Damaged(path, f"index[{i}]", "does not match its frame")
        digest.update(index)
        if digest.digest() != trailer:
            raise Damaged(path, "trailer.sha256", "does not match the patch's bytes")


def page_root(path, page_size):
    """The page-hash root of a file: SHA-256 of the prefix, page size, page count and group hashes."""
    size = os.path.getsize(path)
    count = size // page_size
    groups = []
    with open(path, "rb") as f:
        g = hashlib.sha256()
        for p in range(count):
            g.update(hashlib.sha256(f.read(page_size)).digest())
            if (p + 1) % FANOUT == 0 or p + 1 == count:
                groups.append(g.digest())
                g = hashlib.sha256()
    r = hashlib.sha256(ROOT_PREFIX + struct.pack(">II", page_size, count))
    for g in groups:
        r.update(g)
    return r.digest()


def materialize(base, patches, out, verify_root=True):
    with open(base, "rb") as f:
        head = f.read(100)
    if not head.startswith(b"SQLite format 3\0"):
        raise Damaged(base, "header", "is not a SQLite database")
    page_size = struct.unpack(">H", head[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    headers = [read_header(p) for p in patches]
    count = os.path.getsize(base) // page_size
    prev = None
    for p, h in zip(patches, headers):
        if h["page_size"] != page_size:
            raise Damaged(p, "header.page_size", f"is {h['page_size']}; the base has {page_size}-byte pages")
        if prev is not None and (h["from_root"] != prev["to_root"] or h["from_count"] != prev["to_count"]):
            raise Damaged(p, "header.from_root", "does not follow the previous patch")
        prev = h
    if headers and headers[0]["from_count"] != count:
        raise Damaged(patches[0], "header.from_page_count", f"is {headers[0]['from_count']}; the base has {count}")
    if verify_root and headers and page_root(base, page_size) != headers[0]["from_root"]:
        raise Damaged(patches[0], "header.from_root", "was made for another base")
    partial = out + ".partial"
    buf = bytearray(1 << 20)
    with open(base, "rb") as src, open(partial, "wb") as dst:
        while True:
            n = src.readinto(buf)
            if not n:
                break
            dst.write(memoryview(buf)[:n])
    zero = bytes(page_size)
    with open(partial, "r+b") as dst:
        # Step by step: each patch writes its pages, cuts the file to its page count, and pages it
        # adds beyond the previous count that it does not write are zeros.
        for p, h in zip(patches, headers):
            if h["to_count"] > count:
                dst.seek(count * page_size)
                for _ in range(h["to_count"] - count):
                    dst.write(zero)
            for pgno, page, _ in frames(p, h):
                dst.seek((pgno - 1) * page_size)
                dst.write(page)
            dst.truncate(h["to_count"] * page_size)
            count = h["to_count"]
        dst.flush()
        os.fsync(dst.fileno())
    if verify_root and headers and page_root(partial, page_size) != headers[-1]["to_root"]:
        os.unlink(partial)
        raise Damaged(patches[-1], "header.to_root", "does not match the materialized file")
    os.replace(partial, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-verify-root", action="store_true", help="skip the two full passes that check the roots")
    ap.add_argument("patches", nargs="*")
    a = ap.parse_args()
    try:
        materialize(a.base, a.patches, a.out, verify_root=not a.no_verify_root)
    except Damaged as e:
        try:
            os.unlink(a.out + ".partial")
        except OSError:
            pass
        print(f"materialize_pages: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
