import Foundation
import StrataCore
import StrataCrypto

/// Reads a page patch front to back, one frame at a time, verifying as it goes: the header, each
/// frame's page number (strictly increasing, within the result), stored length, encoding and the
/// SHA-256 of its page, and at the end the index against the frames read and the trailer checksum
/// over the whole file. Memory: one page and one stored frame.
///
/// A caller that acts on frames before the end (apply, merge) must read to the end
/// (`next()` returning nil) before trusting its result: only then is the trailer checked.
public final class PagePatchReader {
    public let path: String
    /// The name used in errors: the store key when the patch came from the store.
    public let object: String
    public let header: PagePatchHeader
    public let fileSize: Int64
    private let file: PosixFile
    private let digest = Digest(.sha256)
    private var offset: Int64 = 0
    private var framesRead: UInt32 = 0
    private var lastPage: UInt32 = 0
    private var frameOffsets: [UInt64] = []
    private var pages: [UInt32] = []
    private var done = false
    private var stored: [UInt8]
    private let inflater = PageInflater()
    /// The raw page of the current frame.
    public private(set) var page: [UInt8]

    /// The frame `next()` returned: page number, how it was stored and the page's SHA-256.
    public struct Frame: Sendable {
        public var pgno: UInt32
        public var encoding: PagePatchFormat.Encoding
        public var storedLength: Int
        public var sha256: [UInt8]
    }

    public init(path: String, object: String? = nil) throws {
        self.path = path
        self.object = object ?? path
        let file = try PosixFile(path: path, mode: .read)
        self.file = file
        fileSize = try file.size()
        var h = [UInt8](repeating: 0, count: PagePatchFormat.headerSize)
        let n = try h.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
        let name = object ?? path
        header = try h.withUnsafeBytes {
            try PagePatchHeader.decode(UnsafeRawBufferPointer(rebasing: $0[0..<n]), object: name)
        }
        let minimum = Int64(PagePatchFormat.overhead(frames: Int(header.frameCount)))
        guard fileSize >= minimum else {
            throw Self.corrupt(
                name, "file",
                "is truncated: \(fileSize) bytes, a patch of \(header.frameCount) frames "
                    + "takes at least \(minimum)")
        }
        stored = [UInt8](repeating: 0, count: max(header.pageSize + 8, PageCodec.bound(header.pageSize)))
        page = [UInt8](repeating: 0, count: header.pageSize)
        h.withUnsafeBytes { digest.update($0) }
        offset = Int64(PagePatchFormat.headerSize)
    }

    static func corrupt(_ object: String, _ field: String, _ message: String) -> StrataError {
        StrataError(
            .corrupt, object: object, field: field, message: message,
            fix: "download the patch again; if it stays damaged, rebuild the version from its base "
                + "(snapctl verify --deep names the versions that need it)")
    }

    private func corrupt(_ field: String, _ message: String) -> StrataError { Self.corrupt(object, field, message) }

    private func readExactly(_ buffer: UnsafeMutableRawBufferPointer, what: String) throws {
        let n = try file.read(into: buffer, at: offset)
        guard n == buffer.count else {
            throw corrupt(what, "is truncated at byte \(offset + Int64(n)) of \(fileSize)")
        }
        digest.update(UnsafeRawBufferPointer(buffer))
        offset += Int64(n)
    }

    /// The next frame, with its raw page in `page`; nil after the last frame, once the index and
    /// the trailer are verified.
    public func next() throws -> Frame? {
        if done { return nil }
        guard framesRead < header.frameCount else {
            try finishVerifying()
            return nil
        }
        let frameNo = framesRead
        let frameOffset = offset
        var fh = [UInt8](repeating: 0, count: PagePatchFormat.frameHeaderSize)
        try fh.withUnsafeMutableBytes { try readExactly($0, what: "frame \(frameNo)") }
        let (pgno, enc, len) = fh.withUnsafeBytes { b in (BigEndian.u32(b, 0), b[4], Int(BigEndian.u32(b, 8))) }
        let field = "frame \(frameNo) (page \(pgno))"
        guard pgno > lastPage else {
            throw corrupt(
                "\(field).page_number", pgno == 0 ? "is 0" : "is out of order: page \(pgno) after page \(lastPage)")
        }
        guard pgno <= header.toPageCount else {
            throw corrupt("\(field).page_number", "is past the result's \(header.toPageCount) pages")
        }
        guard let encoding = PagePatchFormat.Encoding(rawValue: enc), fh[5] == 0, fh[6] == 0, fh[7] == 0 else {
            throw corrupt("\(field).encoding", "is \(enc), expected 0 (raw), 1 (zlib) or 2 (zero run)")
        }
        guard len > 0, len <= stored.count, encoding != .raw || len == header.pageSize else {
            throw corrupt("\(field).stored_length", "is \(len) for a \(encoding) page of \(header.pageSize) bytes")
        }
        let sha = Array(fh[12..<44])
        try stored.withUnsafeMutableBytes {
            try readExactly(UnsafeMutableRawBufferPointer(rebasing: $0[0..<len]), what: field)
        }
        switch encoding {
        case .raw:
            page.withUnsafeMutableBytes { p in
                stored.withUnsafeBytes { p.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<len])) }
            }
        case .zlib:
            let ok = page.withUnsafeMutableBytes { p in
                stored.withUnsafeBytes { inflater.decompress(UnsafeRawBufferPointer(rebasing: $0[0..<len]), into: p) }
            }
            guard ok else { throw corrupt("\(field).data", "does not inflate to one \(header.pageSize)-byte page") }
        case .zeroRun:
            let ok = page.withUnsafeMutableBytes { p in
                stored.withUnsafeBytes { PageCodec.fillZeroRun(UnsafeRawBufferPointer(rebasing: $0[0..<len]), into: p) }
            }
            guard ok else { throw corrupt("\(field).data", "is not a zero run of one \(header.pageSize)-byte page") }
        }
        let d = Digest(.sha256)
        page.withUnsafeBytes { d.update($0) }
        guard d.finalize() == sha else { throw corrupt("\(field).sha256", "does not match the page's content") }
        framesRead += 1
        lastPage = pgno
        frameOffsets.append(UInt64(frameOffset))
        pages.append(pgno)
        return Frame(pgno: pgno, encoding: encoding, storedLength: len, sha256: sha)
    }

    /// The stored bytes of the current frame (compressed or raw), for copying it unchanged.
    public func withStoredBytes<R>(_ frame: Frame, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try stored.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<frame.storedLength])) }
    }

    private func finishVerifying() throws {
        let indexBytes = Int(header.frameCount) * PagePatchFormat.indexEntrySize
        guard fileSize - offset == Int64(indexBytes + PagePatchFormat.trailerSize) else {
            throw corrupt(
                "file",
                "is \(fileSize) bytes; \(header.frameCount) frames end at \(offset), so the index "
                    + "and trailer need \(indexBytes + PagePatchFormat.trailerSize) more, not \(fileSize - offset)")
        }
        var index = [UInt8](repeating: 0, count: indexBytes)
        try index.withUnsafeMutableBytes { try readExactly($0, what: "index") }
        try index.withUnsafeBytes { b in
            for i in 0..<Int(header.frameCount) {
                let at = i * PagePatchFormat.indexEntrySize
                guard BigEndian.u32(b, at) == pages[i], BigEndian.u64(b, at + 4) == frameOffsets[i] else {
                    throw corrupt(
                        "index[\(i)]", "does not match frame \(i) (page \(pages[i]) at byte \(frameOffsets[i]))")
                }
            }
        }
        var trailer = [UInt8](repeating: 0, count: PagePatchFormat.trailerSize)
        let n = try trailer.withUnsafeMutableBytes { try file.read(into: $0, at: offset) }
        guard n == trailer.count else { throw corrupt("trailer", "is truncated") }
        guard digest.finalize() == trailer else {
            throw corrupt("trailer.sha256", "does not match the patch's bytes")
        }
        done = true
    }

    /// The page numbers of the frames, from the index at the end of the file, without reading the
    /// frames. Checked for order and range here; checked against the frames by `next()`.
    public func indexedPages() throws -> [UInt32] {
        let count = Int(header.frameCount)
        var index = [UInt8](repeating: 0, count: count * PagePatchFormat.indexEntrySize)
        let at = fileSize - Int64(PagePatchFormat.trailerSize + index.count)
        let n = try index.withUnsafeMutableBytes { try file.read(into: $0, at: at) }
        guard n == index.count else { throw corrupt("index", "is truncated") }
        return try index.withUnsafeBytes { b in
            var out: [UInt32] = []
            out.reserveCapacity(count)
            var last: UInt32 = 0
            for i in 0..<count {
                let p = BigEndian.u32(b, i * PagePatchFormat.indexEntrySize)
                guard p > last, p <= header.toPageCount else {
                    throw corrupt(
                        "index[\(i)].page_number", "is \(p) after \(last) (result has \(header.toPageCount) pages)")
                }
                out.append(p)
                last = p
            }
            return out
        }
    }

    /// Reads the whole patch, verifying everything; returns its header.
    @discardableResult
    public static func verify(path: String, object: String? = nil) throws -> PagePatchHeader {
        let r = try PagePatchReader(path: path, object: object)
        while try r.next() != nil {}
        return r.header
    }
}
