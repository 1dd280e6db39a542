import CArchive
import Foundation
import StrataCore
import StrataCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// A written bundle.
public struct BundleInfo: Sendable, Equatable {
    public var path: String
    /// The bundle's size in bytes.
    public var size: Int64
    /// Lowercase hex SHA-256 of the bundle's bytes.
    public var sha256: String
    public var manifest: BundleManifest
}

/// Writes `delta.tar.gz` (Docs/FORMATS.md, "Bundle").
///
/// Deterministic: the same delta file and fields give the same bytes (with the same libarchive
/// and zlib). Entries are ustar regular files in a fixed order, `delta.sqlite3` then
/// `manifest.json`, with mtime 0, uid and gid 0, no user or group names, mode 0644; gzip is
/// written without a timestamp or file name. The delta is streamed in 1 MiB chunks and hashed on
/// the way, so memory does not grow with its size; the manifest comes last because it holds
/// that hash.
public enum BundleWriter {
    public static let chunkSize = 1 << 20

    /// Bundles the delta at `deltaFile` into `output` (written as `output.partial`, fsynced and
    /// renamed, so a file at `output` is complete).
    public static func write(
        deltaFile: String, runId: String, collection: String, dimension: Int, upserts: Int,
        deletes: Int, to output: String, compressionLevel: Int = 0
    ) throws -> BundleInfo {
        let partial = output + ".partial"
        unlink(partial)
        var done = false
        defer { if !done { unlink(partial) } }

        func ioError(_ object: String, _ what: String, _ code: Int32 = errno) -> StrataError {
            StrataError(
                .io, object: object, message: "\(what): \(String(cString: strerror(code)))",
                fix: "check the work directory's disk space and permissions")
        }

        let input = open(deltaFile, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw ioError(deltaFile, "cannot open the delta") }
        defer { close(input) }
        var st = stat()
        guard fstat(input, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw ioError(deltaFile, "is not a regular file")
        }
        let size = Int64(st.st_size)

        let fd = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ioError(partial, "cannot create the bundle") }
        let sink = FileSink(fd: fd)
        defer { close(fd) }

        let writer = try ArchiveWriter(sink: sink, object: output, compressionLevel: compressionLevel)

        // delta.sqlite3, streamed and hashed.
        try writer.header(name: BundleManifest.deltaFileName, size: size)
        let digest = Digest(.sha256)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        var copied: Int64 = 0
        while true {
            let n = read(input, buffer, chunkSize)
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError(deltaFile, "cannot read the delta")
            }
            if n == 0 { break }
            copied += Int64(n)
            if copied > size { break }
            let chunk = UnsafeRawBufferPointer(start: buffer, count: n)
            digest.update(chunk)
            try writer.data(chunk)
        }
        guard copied == size else {
            throw StrataError(
                .io, object: deltaFile,
                message: "changed size while it was bundled (\(size) bytes, "
                    + "then \(copied))", fix: "do not modify a delta after finish(); bundle it again")
        }

        let manifest = BundleManifest(
            runId: runId, collection: collection, dimension: dimension, upserts: upserts,
            deletes: deletes,
            files: [
                .init(
                    name: BundleManifest.deltaFileName, size: size,
                    sha256: digest.finalizeHex())
            ])
        let manifestData = manifest.encoded()
        try writer.header(name: BundleManifest.fileName, size: Int64(manifestData.count))
        try manifestData.withUnsafeBytes { try writer.data($0) }
        try writer.close()
        if let e = sink.error { throw ioError(partial, "cannot write the bundle", e) }

        guard fsync(fd) == 0 else { throw ioError(partial, "fsync failed") }
        guard rename(partial, output) == 0 else { throw ioError(output, "cannot rename the bundle into place") }
        done = true
        let dir = (output as NSString).deletingLastPathComponent
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
        return BundleInfo(path: output, size: sink.bytes, sha256: sink.digest.finalizeHex(), manifest: manifest)
    }
}

/// Where libarchive's output goes: a file descriptor, hashed and counted on the way.
final class FileSink {
    let fd: Int32
    let digest = Digest(.sha256)
    var bytes: Int64 = 0
    var error: Int32?

    init(fd: Int32) { self.fd = fd }

    func write(_ buf: UnsafeRawBufferPointer) -> Bool {
        var off = 0
        while off < buf.count {
            let n = Glibc.write(fd, buf.baseAddress! + off, buf.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                error = errno
                return false
            }
            off += n
        }
        digest.update(buf)
        bytes += Int64(buf.count)
        return true
    }
}

/// An owned libarchive writer producing ustar + gzip into a `FileSink`. Freed in `deinit`.
final class ArchiveWriter {
    private let a: OpaquePointer
    private let sink: FileSink
    private let object: String
    private var closed = false

    init(sink: FileSink, object: String, compressionLevel: Int) throws {
        guard let a = archive_write_new() else {
            throw StrataError(.io, object: object, message: "libarchive could not allocate a writer (out of memory)")
        }
        self.a = a
        self.sink = sink
        self.object = object
        try check(archive_write_add_filter_gzip(a), "add the gzip filter")
        try check(archive_write_set_format_ustar(a), "select the ustar format")
        // No zero padding after the gzip trailer (libarchive pads the last block to 10240 bytes by
        // default): the file ends with the gzip trailer, as gzip and GNU tar write it.
        try check(archive_write_set_bytes_in_last_block(a, 1), "set the last block size")
        // No timestamp in the gzip header (the default is the current time), so bytes are stable.
        try check(
            archive_write_set_options(a, "gzip:!timestamp,gzip:compression-level=\(max(0, min(9, compressionLevel)))"),
            "set gzip options")
        let ctx = Unmanaged.passUnretained(sink).toOpaque()
        try check(
            archive_write_open(
                a, ctx, nil,
                { _, ctx, buf, len in
                    let sink = Unmanaged<FileSink>.fromOpaque(ctx!).takeUnretainedValue()
                    return sink.write(UnsafeRawBufferPointer(start: buf, count: len)) ? len : -1
                }, nil), "open the output")
    }

    deinit {
        // archive_write_free also closes; its result no longer matters on this path.
        archive_write_free(a)
    }

    private func check(_ rc: Int32, _ what: String) throws {
        guard rc == ARCHIVE_OK else {
            let msg = archive_error_string(a).map { String(cString: $0) } ?? "error \(rc)"
            throw StrataError(
                .io, object: object, message: "libarchive could not \(what): \(msg)",
                fix: sink.error != nil ? "check the disk space of the work directory" : nil)
        }
    }

    func header(name: String, size: Int64) throws {
        guard let e = archive_entry_new() else { throw StrataError(.io, object: object, message: "out of memory") }
        defer { archive_entry_free(e) }
        archive_entry_set_pathname(e, name)
        archive_entry_set_size(e, size)
        archive_entry_set_filetype(e, 0o100000)  // AE_IFREG
        archive_entry_set_perm(e, 0o644)
        archive_entry_set_mtime(e, 0, 0)
        archive_entry_set_uid(e, 0)
        archive_entry_set_gid(e, 0)
        try check(archive_write_header(a, e), "write the header of \(name)")
    }

    func data(_ buf: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < buf.count {
            let n = archive_write_data(a, buf.baseAddress! + off, buf.count - off)
            if n <= 0 { try check(n == 0 ? ARCHIVE_FATAL : Int32(truncatingIfNeeded: n), "write data") }
            off += n
        }
    }

    /// Flushes the tar end marker and the gzip trailer.
    func close() throws {
        guard !closed else { return }
        closed = true
        try check(archive_write_close(a), "finish the archive")
    }
}
