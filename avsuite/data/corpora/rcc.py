"""Read Qt binary resource files (``.rcc``, as written by ``rcc -binary``) without Qt.

Layout (all integers big-endian)::

    header   "qres" | version u32 | tree_offset u32 | data_offset u32 | names_offset u32
             [| overall_flags u32]                      (version >= 3)
    tree     one node per entry, 14 bytes (version 1) or 22 bytes (version >= 2: + mtime u64):
             name_offset u32 | flags u16 |
               directory: child_count u32 | first_child u32
               file:      country u16 | language u16 | data_offset u32
    names    length u16 | hash u32 | UTF-16BE characters
    data     size u32 | payload      (zlib entries: u32 uncompressed size + zlib stream;
                                     zstd entries: one zstd frame)

Node 0 is the root directory. Flags: 1 = zlib-compressed, 2 = directory, 4 = zstd-compressed.

    with RccFile("/usr/share/gcompris-qt/rcc/instruments.rcc") as rcc:
        for entry in rcc.entries():               # files only, sorted by path
            print(entry.path, entry.size)
        data = rcc.read("gcompris/src/activities/instruments/resource/piano.ogg")
"""

from __future__ import annotations

import mmap
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

MAGIC = b"qres"
FLAG_COMPRESSED = 0x01
FLAG_DIRECTORY = 0x02
FLAG_COMPRESSED_ZSTD = 0x04


class RccError(ValueError):
    """The file is not a readable Qt resource file (or an entry cannot be decoded)."""


@dataclass(frozen=True)
class RccEntry:
    """One file inside an rcc: its slash-separated ``path`` and where its bytes are."""

    path: str
    flags: int
    data_offset: int          # absolute offset of the entry's u32 size field
    size: int                 # stored (possibly compressed) size
    country: int = 0
    language: int = 0

    @property
    def compression(self) -> str | None:
        if self.flags & FLAG_COMPRESSED_ZSTD:
            return "zstd"
        if self.flags & FLAG_COMPRESSED:
            return "zlib"
        return None


class RccFile:
    """A memory-mapped ``.rcc`` file; iterate :meth:`entries`, fetch bytes with :meth:`read`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fh = open(self.path, "rb")
        try:
            size = self.path.stat().st_size
            if size < 20:
                raise RccError(f"{self.path}: too small for an rcc header ({size} bytes)")
            self._buf = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        except Exception:
            self._fh.close()
            raise
        buf = self._buf
        if buf[:4] != MAGIC:
            self._fail(f"not a Qt resource file (magic {bytes(buf[:4])!r}, expected b'qres')")
        self.version, self.tree_offset, self.data_offset, self.names_offset = struct.unpack_from(">IIII", buf, 4)
        self.overall_flags = struct.unpack_from(">I", buf, 20)[0] if self.version >= 3 and size >= 24 else 0
        if self.version < 1 or self.version > 3:
            self._fail(f"unsupported rcc format version {self.version}")
        self.node_size = 14 if self.version == 1 else 22
        for name, off in (("tree", self.tree_offset), ("data", self.data_offset), ("names", self.names_offset)):
            if off >= size:
                self._fail(f"{name} offset {off} is past the end of the file ({size} bytes)")
        self._entries: list[RccEntry] | None = None

    def _fail(self, message: str) -> None:
        self.close()
        raise RccError(f"{self.path}: {message}")

    # -- context manager -----------------------------------------------------------------------
    def close(self) -> None:
        buf = getattr(self, "_buf", None)
        if buf is not None:
            buf.close()
            self._buf = None
        self._fh.close()

    def __enter__(self) -> "RccFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- parsing -------------------------------------------------------------------------------
    def _name(self, name_offset: int) -> str:
        pos = self.names_offset + name_offset
        try:
            (length,) = struct.unpack_from(">H", self._buf, pos)
            raw = self._buf[pos + 6: pos + 6 + 2 * length]
        except struct.error:
            raise RccError(f"{self.path}: name offset {name_offset} out of range") from None
        if len(raw) != 2 * length:
            raise RccError(f"{self.path}: name at offset {name_offset} runs past the end of the file")
        return raw.decode("utf-16-be")

    def _node(self, index: int) -> tuple[int, int, int, int, int]:
        pos = self.tree_offset + index * self.node_size
        try:
            name_off, flags = struct.unpack_from(">IH", self._buf, pos)
            a, b = struct.unpack_from(">II", self._buf, pos + 6)
        except struct.error:
            raise RccError(f"{self.path}: tree node {index} out of range") from None
        return name_off, flags, a, b, pos

    def entries(self) -> list[RccEntry]:
        """All files (not directories), sorted by path."""
        if self._entries is None:
            out: list[RccEntry] = []
            n_nodes_max = max(1, (len(self._buf) - self.tree_offset) // self.node_size)
            stack: list[tuple[int, str]] = [(0, "")]
            seen: set[int] = set()
            while stack:
                index, prefix = stack.pop()
                if index in seen or index >= n_nodes_max:
                    raise RccError(f"{self.path}: corrupt tree (node {index} repeated or out of range)")
                seen.add(index)
                name_off, flags, a, b, pos = self._node(index)
                name = "" if index == 0 else self._name(name_off)
                path = f"{prefix}/{name}" if prefix else name
                if flags & FLAG_DIRECTORY:
                    count, first = a, b
                    stack.extend((first + i, path) for i in range(count))
                    continue
                country, language = struct.unpack_from(">HH", self._buf, pos + 6)
                data_off = struct.unpack_from(">I", self._buf, pos + 10)[0]
                abs_off = self.data_offset + data_off
                try:
                    (size,) = struct.unpack_from(">I", self._buf, abs_off)
                except struct.error:
                    raise RccError(f"{self.path}: data for {path!r} is past the end of the file") from None
                if abs_off + 4 + size > len(self._buf):
                    raise RccError(f"{self.path}: data for {path!r} runs past the end of the file")
                out.append(RccEntry(path, flags, abs_off, size, country, language))
            out.sort(key=lambda e: (e.path, e.language, e.country))
            self._entries = out
        return list(self._entries)

    def verify(self) -> list[str]:
        """Problems Qt would trip on: stored name hashes that are not ``qt_hash(name)``, or a
        directory whose children are not sorted by hash (Qt looks names up by binary search)."""
        problems = []
        stack = [0]
        while stack:
            index = stack.pop()
            _, flags, count, first, _ = self._node(index)
            if not flags & FLAG_DIRECTORY:
                continue
            hashes = []
            for child in range(first, first + count):
                name_off = self._node(child)[0]
                pos = self.names_offset + name_off
                (stored,) = struct.unpack_from(">I", self._buf, pos + 2)
                name = self._name(name_off)
                if stored != qt_hash(name):
                    problems.append(f"{name!r}: stored hash {stored:#x} != qt_hash {qt_hash(name):#x}")
                hashes.append(stored)
                stack.append(child)
            if hashes != sorted(hashes):
                problems.append(f"children of node {index} are not sorted by name hash")
        return problems

    def __iter__(self) -> Iterator[RccEntry]:
        return iter(self.entries())

    def names(self) -> list[str]:
        return [e.path for e in self.entries()]

    def find(self, path: str) -> RccEntry:
        path = path.lstrip(":/")
        for e in self.entries():
            if e.path == path:
                return e
        raise KeyError(f"{path!r} is not in {self.path}")

    def read(self, entry: RccEntry | str) -> bytes:
        """The entry's bytes, decompressed."""
        if isinstance(entry, str):
            entry = self.find(entry)
        raw = bytes(self._buf[entry.data_offset + 4: entry.data_offset + 4 + entry.size])
        return decompress_payload(raw, entry.flags, where=f"{self.path}:{entry.path}")


def decompress_payload(raw: bytes, flags: int, *, where: str = "rcc entry") -> bytes:
    """Undo rcc's per-entry compression (``flags`` from the tree node)."""
    if flags & FLAG_COMPRESSED_ZSTD:
        try:
            import zstandard  # optional: Qt >= 5.13 may write zstd entries
        except ImportError:
            raise RccError(f"{where}: zstd-compressed entry and the 'zstandard' module is not installed") from None
        try:
            return zstandard.ZstdDecompressor().decompress(raw, max_output_size=1 << 31)
        except zstandard.ZstdError as exc:
            raise RccError(f"{where}: bad zstd data ({exc})") from None
    if flags & FLAG_COMPRESSED:
        if len(raw) < 4:
            raise RccError(f"{where}: zlib entry shorter than its size prefix")
        (expected,) = struct.unpack_from(">I", raw, 0)
        try:
            data = zlib.decompress(raw[4:])
        except zlib.error as exc:
            raise RccError(f"{where}: bad zlib data ({exc})") from None
        if len(data) != expected:
            raise RccError(f"{where}: zlib entry decompressed to {len(data)} bytes, header says {expected}")
        return data
    return raw


def write_rcc(files: dict[str, bytes], path: str | Path, *, compress: set[str] | frozenset[str] = frozenset(),
              version: int = 3) -> Path:
    """Write a minimal rcc (for tests and fixtures): ``files`` maps slash paths to bytes.

    Entries named in ``compress`` are zlib-compressed (qCompress layout). Children of each
    directory are ordered by name hash, as Qt's ``rcc`` does, so Qt could read the result too.
    """
    root: dict = {}
    for name, data in files.items():
        parts = [p for p in name.split("/") if p]
        node = root
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"{name!r}: {p!r} is both a file and a directory")
        node[parts[-1]] = (name, data)

    names_blob = bytearray()
    name_offsets: dict[str, int] = {}

    def name_off(n: str) -> int:
        if n not in name_offsets:
            name_offsets[n] = len(names_blob)
            enc = n.encode("utf-16-be")
            names_blob.extend(struct.pack(">HI", len(enc) // 2, qt_hash(n)) + enc)
        return name_offsets[n]

    data_blob = bytearray()
    nodes: list[bytes] = []
    node_size = 14 if version == 1 else 22
    tail = b"" if version == 1 else struct.pack(">Q", 0)

    # breadth-first numbering, as rcc does: a directory's children are contiguous
    queue: list[tuple[str, object]] = [("", root)]
    order: list[tuple[str, object]] = []
    while queue:
        name, item = queue.pop(0)
        order.append((name, item))
        if isinstance(item, dict):
            children = sorted(item.items(), key=lambda kv: qt_hash(kv[0]))
            queue.extend(children)
    first_child = {}
    counter = 1
    for name, item in order:
        if isinstance(item, dict):
            first_child[id(item)] = counter
            counter += len(item)
    for name, item in order:
        off = name_off(name) if name else 0
        if isinstance(item, dict):
            nodes.append(struct.pack(">IHII", off, FLAG_DIRECTORY, len(item), first_child[id(item)]) + tail)
        else:
            full, data = item
            flags = 0
            payload = data
            if full in compress:
                flags = FLAG_COMPRESSED
                payload = struct.pack(">I", len(data)) + zlib.compress(data, 9)
            data_off = len(data_blob)
            data_blob.extend(struct.pack(">I", len(payload)) + payload)
            nodes.append(struct.pack(">IHHHI", off, flags, 0, 1, data_off) + tail)
    header_len = 20 if version < 3 else 24
    tree_off = header_len
    data_off = tree_off + node_size * len(nodes)
    names_off = data_off + len(data_blob)
    header = MAGIC + struct.pack(">IIII", version, tree_off, data_off, names_off)
    if version >= 3:
        header += struct.pack(">I", FLAG_COMPRESSED if compress else 0)
    path = Path(path)
    path.write_bytes(header + b"".join(nodes) + bytes(data_blob) + bytes(names_blob))
    return path


def qt_hash(name: str) -> int:
    """Qt's ``qt_hash`` of a UTF-16 string (used to order and look up rcc names)."""
    h = 0
    enc = name.encode("utf-16-be")
    units = struct.unpack(f">{len(enc) // 2}H", enc)
    for u in units:
        h = ((h << 4) + u) & 0xFFFFFFFF
        h ^= (h & 0xF0000000) >> 23
        h &= 0x0FFFFFFF
    return h
