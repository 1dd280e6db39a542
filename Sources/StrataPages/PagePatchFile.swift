import Foundation
import StrataCore

/// A file descriptor owned by this object alone, closed in `deinit`. Positional reads and writes
/// (`pread`/`pwrite`) loop until the whole buffer is done; every failure names the file.
/// `@unchecked Sendable`: positional reads and writes on one descriptor are safe from several
/// threads (`PageHashList.build` hashes slices of a file in parallel); only the owner closes it,
/// after those threads are done.
final class PosixFile: @unchecked Sendable {
    let path: String
    private(set) var fd: Int32

    enum Mode { case read, readWrite, create }

    init(path: String, mode: Mode) throws {
        self.path = path
        let flags: Int32
        switch mode {
        case .read: flags = O_RDONLY
        case .readWrite: flags = O_RDWR
        case .create: flags = O_RDWR | O_CREAT | O_TRUNC
        }
        fd = open(path, flags | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            let e = errno
            throw StrataError(
                e == ENOENT ? .notFound : .io, object: path,
                message: "cannot open: \(String(cString: strerror(e)))",
                fix: e == ENOENT ? "check the path" : "check permissions and free space")
        }
    }

    deinit { if fd >= 0 { Foundation.close(fd) } }

    func close() throws {
        guard fd >= 0 else { return }
        let rc = Foundation.close(fd)
        fd = -1
        if rc != 0 { throw ioError("close") }
    }

    func ioError(_ operation: String) -> StrataError {
        StrataError(
            .io, object: path, message: "\(operation) failed: \(String(cString: strerror(errno)))",
            fix: "check the disk (free space, permissions) and retry")
    }

    /// Reads up to `buffer.count` bytes at `offset`; returns fewer only at end of file.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("read")
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    func write(_ buffer: UnsafeRawBufferPointer, at offset: Int64) throws {
        var done = 0
        while done < buffer.count {
            let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("write")
            }
            done += n
        }
    }

    func size() throws -> Int64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ioError("stat") }
        return Int64(st.st_size)
    }

    func truncate(to size: Int64) throws {
        guard ftruncate(fd, off_t(size)) == 0 else { throw ioError("truncate") }
    }

    func sync() throws {
        guard fsync(fd) == 0 else { throw ioError("fsync") }
    }
}

/// Big-endian integers in byte buffers (the patch format, like SQLite's, is big-endian).
enum BigEndian {
    static func u16(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt16 {
        UInt16(b[at]) << 8 | UInt16(b[at + 1])
    }
    static func u32(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }
    static func u64(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt64 {
        UInt64(u32(b, at)) << 32 | UInt64(u32(b, at + 4))
    }
    static func put(_ v: UInt16, _ out: inout [UInt8]) {
        out.append(UInt8(v >> 8))
        out.append(UInt8(v & 0xff))
    }
    static func put(_ v: UInt32, _ out: inout [UInt8]) {
        for s in stride(from: 24, through: 0, by: -8) { out.append(UInt8((v >> UInt32(s)) & 0xff)) }
    }
    static func put(_ v: UInt64, _ out: inout [UInt8]) {
        put(UInt32(v >> 32), &out)
        put(UInt32(v & 0xffff_ffff), &out)
    }
}

/// What a SQLite file's 100-byte header says about its pages.
public struct SQLiteFileHeader: Equatable, Sendable {
    public var pageSize: Int
    /// The in-header database size (offset 28), in pages.
    public var headerPageCount: UInt32

    /// Reads the header of the file at `path` (the first 100 bytes).
    public static func read(path: String) throws -> SQLiteFileHeader {
        let f = try PosixFile(path: path, mode: .read)
        var b = [UInt8](repeating: 0, count: 100)
        let n = try b.withUnsafeMutableBytes { try f.read(into: $0, at: 0) }
        guard n == 100, b.starts(with: Array("SQLite format 3\u{0}".utf8)) else {
            throw StrataError(
                .corrupt, object: path, field: "header",
                message: "is not a SQLite database (\(n) bytes of header)",
                fix: "give the SQLite file itself")
        }
        return b.withUnsafeBytes { raw in
            let ps = Int(BigEndian.u16(raw, 16))
            return SQLiteFileHeader(pageSize: ps == 1 ? 65536 : ps, headerPageCount: BigEndian.u32(raw, 28))
        }
    }
}
