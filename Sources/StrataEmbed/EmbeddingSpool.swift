import Foundation
import StrataCore
import StrataCrypto
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A text's key in the spool: the SHA-256 of its UTF-8 bytes.
public struct TextKey: Hashable, Sendable {
    var a: UInt64, b: UInt64, c: UInt64, d: UInt64

    public init(_ text: String) {
        let h = SHA256.hash(Data(text.utf8))
        self.init(bytes: h)
    }

    init(bytes h: [UInt8]) {
        func word(_ i: Int) -> UInt64 { (0..<8).reduce(0) { $0 << 8 | UInt64(h[i * 8 + $1]) } }
        a = word(0)
        b = word(1)
        c = word(2)
        d = word(3)
    }

    var bytes: [UInt8] {
        [a, b, c, d].flatMap { w in (0..<8).reversed().map { UInt8(truncatingIfNeeded: w >> (UInt64($0) * 8)) } }
    }
}

/// Vectors a job has already paid for, on disk (Docs/FORMATS.md, "Embedding spool"): one
/// append-only file per model key (endpoint, model, dimensions, input type), records of
/// `[32-byte SHA-256 of the text][UInt32 count][count float32]`, little-endian, fsynced after
/// each batch. A crash can leave a torn last record; it is cut off when the spool is opened.
/// Only a compact index is in memory: the first 8 bytes of each key and its record number
/// (about 16 bytes a text); the full key is checked against the file on a match. Thread-safe.
public final class EmbeddingSpool: Sendable {
    public let path: String
    private let fd: Int32
    private struct State {
        /// Key prefix -> record number; keys whose prefix is taken by another key go to `overflow`.
        var index: [UInt64: UInt32] = [:]
        var overflow: [TextKey: UInt32] = [:]
        var records = 0
        var end: Int64 = 0
        var dimension: Int?

        var recordSize: Int64 { 36 + Int64(dimension ?? 0) * 4 }

        /// Records `key` as record `r`.
        mutating func insert(_ key: TextKey, record r: UInt32) {
            if index[key.a] == nil { index[key.a] = r } else { overflow[key] = r }
            records += 1
        }
    }
    private let state = Mutex(State())
    /// The dimension of the vectors in the spool (nil while empty).
    public var dimension: Int? { state.withLock { $0.dimension } }

    /// Opens (or creates) the spool file for `modelKey` in `directory`.
    public init(directory: String, modelKey: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw StrataError(
                .io, object: directory, message: "cannot create the embedding spool: \(error.localizedDescription)",
                fix: "point the spool (work directory) at a writable place")
        }
        path = directory + "/" + String(SHA256.hex(modelKey).prefix(24)) + ".spool"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw StrataError(.io, object: path, message: "cannot open the spool: \(String(cString: strerror(errno)))")
        }
        try load()
    }

    deinit { close(fd) }

    public var count: Int { state.withLock { $0.records } }

    public func contains(_ key: TextKey) -> Bool {
        state.withLock { offset(key, in: $0) != nil }
    }

    /// The record offset of `key` (`s` read under the lock).
    private func offset(_ key: TextKey, in s: State) -> Int64? {
        if let r = s.overflow[key] { return Int64(r) * s.recordSize }
        guard let r = s.index[key.a] else { return nil }
        let off = Int64(r) * s.recordSize
        return storedKey(at: off) == key ? off : nil
    }

    private func storedKey(at off: Int64) -> TextKey? {
        var k = [UInt8](repeating: 0, count: 32)
        guard pread(fd, &k, 32, off_t(off)) == 32 else { return nil }
        return TextKey(bytes: k)
    }

    private func load() throws {
        state.withLock { load(into: &$0) }
    }

    private func load(into s: inout State) {
        var st = stat()
        fstat(fd, &st)
        let size = Int64(st.st_size)
        var off: Int64 = 0
        var header = [UInt8](repeating: 0, count: 36)
        while off + 36 <= size {
            guard pread(fd, &header, 36, off_t(off)) == 36 else { break }
            let n = Int(header[32]) | Int(header[33]) << 8 | Int(header[34]) << 16 | Int(header[35]) << 24
            guard n >= 1, n <= 65536, off + 36 + Int64(n) * 4 <= size else { break }
            if let d = s.dimension, d != n { break }
            s.dimension = n
            s.insert(TextKey(bytes: Array(header[0..<32])), record: UInt32(off / (36 + Int64(n) * 4)))
            off += 36 + Int64(n) * 4
        }
        if off != size { ftruncate(fd, off_t(off)) }  // a torn record from a crash
        s.end = off
    }

    /// The vector of `key`, or nil.
    public func vector(_ key: TextKey) throws -> [Float]? {
        let (off, n) = state.withLock { (offset(key, in: $0), $0.dimension) }
        guard let off, let n else { return nil }
        var v = [Float](repeating: 0, count: n)
        let want = n * 4
        let got = v.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(off + 36)) }
        guard got == want else {
            throw StrataError(.io, object: path, message: "cannot read the spool: \(String(cString: strerror(errno)))")
        }
        #if _endian(big)
            v = v.map { Float(bitPattern: UInt32(littleEndian: $0.bitPattern)) }
        #endif
        return v
    }

    /// Appends vectors (all of one dimension) and makes them durable.
    public func append(_ items: [(key: TextKey, vector: [Float])]) throws {
        guard let first = items.first else { return }
        let n = first.vector.count
        try state.withLock { try append(items, dimension: n, to: &$0) }
    }

    /// `append` with the lock held.
    private func append(_ items: [(key: TextKey, vector: [Float])], dimension n: Int, to s: inout State) throws {
        var buf: [UInt8] = []
        buf.reserveCapacity(items.count * (36 + n * 4))
        if let d = s.dimension, d != n {
            throw StrataError(
                .refused, object: path, field: "dimension",
                message: "holds vectors of \(d) values; the server now answers \(n)",
                fix: "the model behind the endpoint changed: remove the spool or use another --embed-model")
        }
        var fresh: [TextKey] = []
        var seen = Set<TextKey>()
        var off = s.end
        for item in items where offset(item.key, in: s) == nil && seen.insert(item.key).inserted {
            precondition(item.vector.count == n)
            buf.append(contentsOf: item.key.bytes)
            withUnsafeBytes(of: UInt32(n).littleEndian) { buf.append(contentsOf: $0) }
            for f in item.vector { withUnsafeBytes(of: f.bitPattern.littleEndian) { buf.append(contentsOf: $0) } }
            fresh.append(item.key)
            off += 36 + Int64(n) * 4
        }
        guard !fresh.isEmpty else { return }
        var written = 0
        while written < buf.count {
            let w = buf.withUnsafeBytes {
                pwrite(fd, $0.baseAddress! + written, buf.count - written, off_t(s.end) + off_t(written))
            }
            if w < 0 {
                if errno == EINTR { continue }
                ftruncate(fd, off_t(s.end))
                throw StrataError(
                    .io, object: path, message: "cannot write the spool: \(String(cString: strerror(errno)))",
                    fix: "free space in the work directory")
            }
            written += w
        }
        fsync(fd)
        s.dimension = n
        let firstRecord = UInt32(s.end / s.recordSize)
        for (i, k) in fresh.enumerated() { s.insert(k, record: firstRecord + UInt32(i)) }
        s.end = off
    }

    /// Removes the spool file (after its job is published).
    public func remove() { unlink(path) }
}
