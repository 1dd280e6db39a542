import CZlib
import Foundation
import StrataCore
import StrataCrypto

/// The page patch format, version 1 (Docs/design/0002-page-patch-versions.md). All integers are
/// big-endian.
///
///     header   96 bytes: magic "STRPATCH", format version u16, flags u16 (0), page size u32,
///              from page count u32, to page count u32, frame count u32, reserved u32 (0),
///              from root [32], to root [32]
///     frames   one per page, strictly increasing page numbers:
///              page number u32, encoding u8 (0 raw, 1 zlib, 2 zero run), reserved [3] (0), stored length u32,
///              SHA-256 of the raw page [32], stored bytes
///     index    one entry per frame: page number u32, frame offset u64
///     trailer  SHA-256 of every byte before it [32]
///
/// Applying a patch to a file of `fromPageCount` pages whose page-hash root is `fromRoot` gives a
/// file of `toPageCount` pages whose root is `toRoot`: each frame's page replaces that page, pages
/// past `toPageCount` are cut, and pages past `fromPageCount` that no frame sets are zeros.
public enum PagePatchFormat {
    public static let magic: [UInt8] = Array("STRPATCH".utf8)
    public static let version: UInt16 = 1
    public static let headerSize = 96
    public static let frameHeaderSize = 44
    public static let indexEntrySize = 12
    public static let trailerSize = 32
    public static let fileExtension = "strpatch"

    public enum Encoding: UInt8, Sendable {
        case raw = 0
        case zlib = 1
        /// The page without its longest run of zero bytes: gap start u32, gap length u32, the bytes
        /// before the gap, the bytes after it. Costs one scan of the page (b-tree free space).
        case zeroRun = 2
    }

    /// Shortest zero run worth cutting (the encoding spends 8 bytes).
    static let minimumZeroRun = 64

    /// Bytes a patch of `frames` frames takes besides the stored page bytes.
    public static func overhead(frames: Int) -> Int {
        headerSize + frames * (frameHeaderSize + indexEntrySize) + trailerSize
    }

    static func validPageSize(_ n: Int) -> Bool { n >= 512 && n <= 65536 && n & (n - 1) == 0 }
}

/// The fixed header of a page patch.
public struct PagePatchHeader: Equatable, Sendable {
    public var pageSize: Int
    public var fromPageCount: UInt32
    public var toPageCount: UInt32
    public var frameCount: UInt32
    /// Page-hash root (`PageHashList`) of the file this patch applies to.
    public var fromRoot: [UInt8]
    /// Page-hash root of the file it produces.
    public var toRoot: [UInt8]

    public init(
        pageSize: Int, fromPageCount: UInt32, toPageCount: UInt32, frameCount: UInt32,
        fromRoot: [UInt8], toRoot: [UInt8]
    ) {
        self.pageSize = pageSize
        self.fromPageCount = fromPageCount
        self.toPageCount = toPageCount
        self.frameCount = frameCount
        self.fromRoot = fromRoot
        self.toRoot = toRoot
    }

    func encoded() -> [UInt8] {
        var out = PagePatchFormat.magic
        BigEndian.put(PagePatchFormat.version, &out)
        BigEndian.put(UInt16(0), &out)
        BigEndian.put(UInt32(pageSize), &out)
        BigEndian.put(fromPageCount, &out)
        BigEndian.put(toPageCount, &out)
        BigEndian.put(frameCount, &out)
        BigEndian.put(UInt32(0), &out)
        out += fromRoot
        out += toRoot
        precondition(out.count == PagePatchFormat.headerSize)
        return out
    }

    static func decode(_ b: UnsafeRawBufferPointer, object: String) throws -> PagePatchHeader {
        func corrupt(_ field: String, _ message: String) -> StrataError {
            StrataError(
                .corrupt, object: object, field: field, message: message,
                fix: "the object is not a Strata page patch or is damaged; download it again")
        }
        guard b.count >= PagePatchFormat.headerSize else {
            throw corrupt("header", "is truncated: \(b.count) of \(PagePatchFormat.headerSize) bytes")
        }
        guard Array(b[0..<8]) == PagePatchFormat.magic else { throw corrupt("header.magic", "is not \"STRPATCH\"") }
        let version = BigEndian.u16(b, 8)
        guard version <= PagePatchFormat.version else {
            throw StrataError(
                .unsupportedVersion, object: object, field: "header.format_version",
                message: "is \(version); this Strata reads up to \(PagePatchFormat.version)",
                fix: "upgrade snapctl")
        }
        guard version >= 1 else { throw corrupt("header.format_version", "is 0") }
        guard BigEndian.u16(b, 10) == 0 else { throw corrupt("header.flags", "has unknown bits set") }
        let pageSize = Int(BigEndian.u32(b, 12))
        guard PagePatchFormat.validPageSize(pageSize) else {
            throw corrupt("header.page_size", "is \(pageSize), not a SQLite page size (a power of two, 512...65536)")
        }
        let h = PagePatchHeader(
            pageSize: pageSize, fromPageCount: BigEndian.u32(b, 16), toPageCount: BigEndian.u32(b, 20),
            frameCount: BigEndian.u32(b, 24), fromRoot: Array(b[32..<64]), toRoot: Array(b[64..<96]))
        guard h.frameCount <= h.toPageCount else {
            throw corrupt(
                "header.frame_count", "is \(h.frameCount), more than the \(h.toPageCount) pages of the result")
        }
        // A file grows only by pages SQLite writes, so by frames; the one page it never writes is
        // the lock-byte page at 1 GiB. This bounds what a hostile header can make a reader allocate.
        guard h.toPageCount <= h.fromPageCount || h.toPageCount - h.fromPageCount <= h.frameCount + 1 else {
            throw corrupt(
                "header.to_page_count",
                "is \(h.toPageCount): the file would grow by \(h.toPageCount - h.fromPageCount) pages with only "
                    + "\(h.frameCount) frames")
        }
        return h
    }
}

/// What a finished patch is: its size and SHA-256 (for the manifest) and what it holds.
public struct PagePatchSummary: Equatable, Sendable {
    public var path: String
    public var header: PagePatchHeader
    public var bytes: Int64
    public var sha256: String
    /// Bytes of the pages before compression (frames × page size).
    public var rawPageBytes: Int64
    /// Frames stored compressed (zlib or zero run).
    public var compressedFrames: Int
}

/// How the writer stores pages: the smallest of the enabled encodings, raw when none saves at
/// least 1/16 of the page (zlib) or `PagePatchFormat.minimumZeroRun` bytes (zero run).
public enum PageCompression: Sendable, Equatable {
    case none
    /// Cut each page's longest zero run: almost free; saves less than zlib, which also finds the
    /// stale copies of cells in a page's free space.
    case zeroRun
    /// zlib at `level` (1...9), else the zero run.
    case zlib(level: Int32)

    /// What the compactor writes unless told otherwise: the zero run. Measured on snapshots of
    /// 4 KiB pages (dimension 384), zlib level 1 stores patches about 6% smaller for 3-10x the
    /// CPU, which made it most of a version's time (Docs/design/0002, "Page encodings").
    public static let standard = PageCompression.zeroRun
}

/// One-shot page codecs into caller-owned buffers.
enum PageCodec {
    /// The longest run of zero bytes in `page`: (start, length).
    static func longestZeroRun(_ page: UnsafeRawBufferPointer) -> (start: Int, length: Int) {
        var best = (start: 0, length: 0)
        var i = 0
        let n = page.count
        while i < n {
            if page[i] != 0 {
                i += 1
                continue
            }
            let start = i
            // Whole 8-byte words while they are zero, then bytes.
            while i + 8 <= n && page.loadUnaligned(fromByteOffset: i, as: UInt64.self) == 0 { i += 8 }
            while i < n && page[i] == 0 { i += 1 }
            if i - start > best.length { best = (start, i - start) }
        }
        return best
    }

    /// Writes the zero-run form of `page` into `out` (at least page size + 8); returns its length,
    /// or nil when the longest run is too short to pay.
    static func cutZeroRun(_ page: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int? {
        let (start, length) = longestZeroRun(page)
        guard length >= PagePatchFormat.minimumZeroRun else { return nil }
        var h: [UInt8] = []
        BigEndian.put(UInt32(start), &h)
        BigEndian.put(UInt32(length), &h)
        out.copyBytes(from: h)
        let tail = page.count - start - length
        UnsafeMutableRawBufferPointer(rebasing: out[8..<(8 + start)])
            .copyMemory(from: UnsafeRawBufferPointer(rebasing: page[0..<start]))
        UnsafeMutableRawBufferPointer(rebasing: out[(8 + start)..<(8 + start + tail)])
            .copyMemory(from: UnsafeRawBufferPointer(rebasing: page[(start + length)...]))
        return 8 + start + tail
    }

    /// Rebuilds a page from its zero-run form; false when the form does not describe one page.
    static func fillZeroRun(_ stored: UnsafeRawBufferPointer, into page: UnsafeMutableRawBufferPointer) -> Bool {
        guard stored.count >= 8 else { return false }
        let start = Int(BigEndian.u32(stored, 0))
        let length = Int(BigEndian.u32(stored, 4))
        guard length >= 1, start <= page.count, length <= page.count - start,
            stored.count == 8 + page.count - length
        else { return false }
        let tail = page.count - start - length
        UnsafeMutableRawBufferPointer(rebasing: page[0..<start])
            .copyMemory(from: UnsafeRawBufferPointer(rebasing: stored[8..<(8 + start)]))
        UnsafeMutableRawBufferPointer(rebasing: page[start..<(start + length)]).initializeMemory(
            as: UInt8.self, repeating: 0)
        UnsafeMutableRawBufferPointer(rebasing: page[(start + length)...])
            .copyMemory(from: UnsafeRawBufferPointer(rebasing: stored[(8 + start)..<(8 + start + tail)]))
        return true
    }

    static func bound(_ pageSize: Int) -> Int { Int(compressBound(uLong(pageSize))) }
}

/// Writes a page patch: frames in strictly increasing page order, then the index and the trailer.
/// The file is written as `path.partial` and renamed to `path` by `finish()`, so a patch that
/// exists is complete. Memory: one page and one compressed page, plus 12 bytes per frame.
public final class PagePatchWriter {
    public let path: String
    public let header: PagePatchHeader
    let compression: PageCompression
    private let file: PosixFile
    private let digest = Digest(.sha256)
    private var offset: Int64 = 0
    private var index: [UInt8] = []
    private var written: UInt32 = 0
    private var lastPage: UInt32 = 0
    private var rawBytes: Int64 = 0
    private var compressed = 0
    private var scratch: [UInt8]
    private let deflater: PageDeflater?
    private var finished = false

    public init(path: String, header: PagePatchHeader, compression: PageCompression = .standard) throws {
        precondition(
            PagePatchFormat.validPageSize(header.pageSize) && header.fromRoot.count == 32
                && header.toRoot.count == 32, "invalid patch header")
        self.path = path
        self.header = header
        self.compression = compression
        file = try PosixFile(path: path + ".partial", mode: .create)
        scratch = [UInt8](repeating: 0, count: max(PageCodec.bound(header.pageSize), header.pageSize + 8))
        if case .zlib(let level) = compression {
            deflater = PageDeflater(pageSize: header.pageSize, level: level)
        } else {
            deflater = nil
        }
        index.reserveCapacity(Int(header.frameCount) * PagePatchFormat.indexEntrySize)
        try append(header.encoded())
    }

    deinit { if !finished { unlink(path + ".partial") } }

    private func append(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try append($0) }
    }

    private func append(_ bytes: UnsafeRawBufferPointer) throws {
        try file.write(bytes, at: offset)
        digest.update(bytes)
        offset += Int64(bytes.count)
    }

    private func check(_ pgno: UInt32) {
        precondition(!finished, "PagePatchWriter used after finish")
        precondition(pgno > lastPage, "pages must be added in strictly increasing order (\(pgno) after \(lastPage))")
        precondition(pgno <= header.toPageCount, "page \(pgno) is past the result's \(header.toPageCount) pages")
        precondition(written < header.frameCount, "more frames than the header's \(header.frameCount)")
    }

    /// Adds one raw page. `sha256` is the page's SHA-256 when the caller has it already.
    public func add(page pgno: UInt32, raw: UnsafeRawBufferPointer, sha256: [UInt8]? = nil) throws {
        precondition(raw.count == header.pageSize, "a page is \(header.pageSize) bytes, not \(raw.count)")
        let sha =
            sha256
            ?? {
                let d = Digest(.sha256)
                d.update(raw)
                return d.finalize()
            }()
        var encoded: (PagePatchFormat.Encoding, Int)?
        // zlib only where it saves at least 1/16 of the page: the output buffer stops it there.
        if let deflater,
            let n = scratch.withUnsafeMutableBytes({
                deflater.compress(
                    raw, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<(raw.count - raw.count / 16)]))
            })
        {
            encoded = (.zlib, n)
        }
        if encoded == nil, compression != .none,
            let n = scratch.withUnsafeMutableBytes({ PageCodec.cutZeroRun(raw, into: $0) })
        {
            encoded = (.zeroRun, n)
        }
        if let (encoding, n) = encoded {
            try scratch.withUnsafeBytes {
                try addStored(
                    page: pgno, encoding: encoding, stored: UnsafeRawBufferPointer(rebasing: $0[0..<n]),
                    sha256: sha)
            }
        } else {
            try addStored(page: pgno, encoding: .raw, stored: raw, sha256: sha)
        }
    }

    /// Adds a frame as stored in another patch (a merge copies frames without recompressing them).
    public func addStored(
        page pgno: UInt32, encoding: PagePatchFormat.Encoding, stored: UnsafeRawBufferPointer,
        sha256: [UInt8]
    ) throws {
        check(pgno)
        precondition(sha256.count == 32)
        BigEndian.put(pgno, &index)
        BigEndian.put(UInt64(offset), &index)
        var h: [UInt8] = []
        h.reserveCapacity(PagePatchFormat.frameHeaderSize)
        BigEndian.put(pgno, &h)
        h += [encoding.rawValue, 0, 0, 0]
        BigEndian.put(UInt32(stored.count), &h)
        h += sha256
        try append(h)
        try append(stored)
        if encoding != .raw { compressed += 1 }
        written += 1
        lastPage = pgno
        rawBytes += Int64(header.pageSize)
    }

    /// Writes the index and trailer, syncs, and renames the file into place.
    public func finish() throws -> PagePatchSummary {
        precondition(!finished, "finish called twice")
        precondition(written == header.frameCount, "\(written) frames written, the header says \(header.frameCount)")
        try append(index)
        let sha = digest.finalize()
        try sha.withUnsafeBytes { try file.write($0, at: offset) }
        offset += Int64(sha.count)
        try file.sync()
        try file.close()
        guard rename(path + ".partial", path) == 0 else { throw file.ioError("rename to \(path)") }
        finished = true
        return PagePatchSummary(
            path: path, header: header, bytes: offset, sha256: Hex.encode(sha),
            rawPageBytes: rawBytes, compressedFrames: compressed)
    }
}
