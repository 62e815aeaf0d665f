"""The 512-byte header in the HDF5 user block: identity, version, length and content digest.

It is checked before the HDF5 library parses a single byte, so truncated, bit-flipped or foreign
files are refused by our own code, not by a C parser fed damaged metadata.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from supsup_cli.core.errors import ArchiveCorrupt, ArchiveNotFound, NotAnArchive, VersionTooNew

MAGIC = b"\x89SUPSUP\n"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
SIZE = 512  # the HDF5 user block size
FORMAT_VERSION = 4  # what this version writes; it reads every version from 1 up
_FIELDS = struct.Struct("<8sIQ32s")  # magic, format_version, file_length, sha256 of bytes [SIZE, file_length)
_CRC = struct.Struct("<I")
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Header:
    format_version: int
    file_length: int
    content_sha256: bytes

    def to_bytes(self) -> bytes:
        fields = _FIELDS.pack(MAGIC, self.format_version, self.file_length, self.content_sha256)
        body = fields + _CRC.pack(zlib.crc32(fields))
        return body + bytes(SIZE - len(body))


def open_archive_file(path: Path) -> BinaryIO:
    """The archive's file, opened once: its header, digest and HDF5 content are all read from it."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise ArchiveNotFound(f"{path}: no such file") from None
    except IsADirectoryError:
        raise NotAnArchive(f"{path}: is a directory, not a supsup archive") from None
    except PermissionError:
        raise ArchiveNotFound(f"{path}: permission denied") from None


def content_digest(handle: BinaryIO, length: int) -> bytes:
    digest = hashlib.sha256()
    handle.seek(SIZE)
    remaining = length - SIZE
    while remaining > 0:
        block = handle.read(min(_READ_CHUNK, remaining))
        if not block:
            break
        digest.update(block)
        remaining -= len(block)
    return digest.digest()


def read_header(handle: BinaryIO, path: Path) -> Header:
    """Parse and check the header's own fields; the content digest is checked by `verify_content`."""
    handle.seek(0)
    raw = handle.read(SIZE)
    size = handle.seek(0, os.SEEK_END)
    if not raw.startswith(MAGIC):
        if raw.startswith(HDF5_SIGNATURE):
            raise NotAnArchive(f"{path}: an HDF5 file, but not a supsup archive (no supsup header)")
        raise NotAnArchive(f"{path}: not a supsup archive")
    if len(raw) < SIZE:
        raise ArchiveCorrupt(f"{path}: truncated archive ({size} bytes, shorter than its header)")
    fields = raw[: _FIELDS.size]
    (crc,) = _CRC.unpack_from(raw, _FIELDS.size)
    if zlib.crc32(fields) != crc or any(raw[_FIELDS.size + _CRC.size :]):
        raise ArchiveCorrupt(f"{path}: damaged archive header")
    _, version, length, sha = _FIELDS.unpack(fields)
    if version > FORMAT_VERSION:
        raise VersionTooNew(
            f"{path}: archive format version {version} is newer than this supsup supports "
            f"(version {FORMAT_VERSION}); upgrade supsup to read it"
        )
    if version < 1:
        raise ArchiveCorrupt(f"{path}: invalid format version {version}")
    if size < length:
        raise ArchiveCorrupt(f"{path}: truncated archive ({size} of {length} bytes)")
    if size > length:
        raise ArchiveCorrupt(f"{path}: {size - length} unexpected bytes after the end of the archive")
    return Header(version, length, sha)


def content_matches(handle: BinaryIO, header: Header) -> bool:
    return content_digest(handle, header.file_length) == header.content_sha256


def verify_content(handle: BinaryIO, header: Header, path: Path) -> None:
    if not content_matches(handle, header):
        raise ArchiveCorrupt(
            f"{path}: damaged archive (content checksum mismatch); "
            "'supsup inspect --verify' shows which tasks are affected"
        )


def sealed(image: bytes | memoryview) -> bytes:
    """The header for a finished archive image (HDF5 with its user block): length and digest."""
    return Header(FORMAT_VERSION, len(image), hashlib.sha256(image[SIZE:]).digest()).to_bytes()


def seal(path: Path) -> None:
    """Rewrite the header of an archive file in place (for tools and tests; writers use `sealed`)."""
    image = path.read_bytes()
    with open(path, "r+b") as handle:
        handle.write(sealed(image))
