import CArchive
import Foundation
import StrataCore
import StrataCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// Limits for extracting an untrusted bundle.
public struct ExtractionLimits: Sendable, Equatable {
    /// The largest `delta.sqlite3`.
    public var maxEntryBytes: Int64
    /// The largest `manifest.json`.
    public var maxManifestBytes: Int64
    /// The most bytes the gzip stream may expand to (tar headers and padding included).
    public var maxExpandedBytes: Int64
    /// The expanded stream may be at most this many times the compressed size...
    public var maxExpansionRatio: Int64
    /// ...once it is larger than this (small bundles compress well and are harmless).
    public var ratioFloorBytes: Int64

    public init(
        maxEntryBytes: Int64 = 4 << 30, maxManifestBytes: Int64 = 1 << 20, maxExpandedBytes: Int64 = 4 << 30,
        maxExpansionRatio: Int64 = 100, ratioFloorBytes: Int64 = 64 << 20
    ) {
        self.maxEntryBytes = maxEntryBytes
        self.maxManifestBytes = maxManifestBytes
        self.maxExpandedBytes = maxExpandedBytes
        self.maxExpansionRatio = maxExpansionRatio
        self.ratioFloorBytes = ratioFloorBytes
    }
}

/// An extracted and verified bundle.
public struct ExtractedBundle: Sendable, Equatable {
    /// The directory the files were written to (created by the extractor).
    public var directory: String
    public var manifest: BundleManifest
    /// `directory/delta.sqlite3`, whose size and SHA-256 match the manifest.
    public var deltaPath: String
    /// The bundle's size and its size once gunzipped.
    public var compressedBytes: Int64
    public var expandedBytes: Int64
}

/// Extracts untrusted bundles safely (Docs/FORMATS.md, "Bundle", "Reading a bundle safely").
///
/// - Only gzip and tar are read (`archive_read_support_filter_gzip` and `_format_tar`, never
///   the `_all` variants), and the input must start with the gzip magic bytes.
/// - Entries must be exactly `manifest.json` and `delta.sqlite3`, regular files, each once. An
///   absolute name, a ".." component, a link, a directory, a device, a FIFO or a sparse file is
///   refused, as are entries over the size limits.
/// - The gzip stream is read to its very end, so a bad CRC or length after the tar end marker is
///   caught, and its expanded size is bounded in total and as a ratio to the compressed size,
///   which stops gzip bombs before they are written.
/// - Files are created only inside a new directory, with `O_EXCL | O_NOFOLLOW`; on any failure
///   everything written is removed. libarchive never writes to disk itself.
/// - Finally the manifest is checked: format and version, the expected run and collection, and
///   the delta's size and SHA-256.
///
/// The delta's row counts are checked against the manifest by the delta reader:
/// `DeltaReader(path: extracted.deltaPath, expecting: .init(collection:, runId:, upserts:, deletes:))`.
public enum BundleExtractor {
    /// Extracts `bundlePath` into `directory`, which must not exist (its parent must).
    /// `name` is how errors name the bundle (its object key); defaults to the path.
    public static func extract(
        bundle bundlePath: String, into directory: String, expectedRunId: String?,
        expectedCollection: String?, limits: ExtractionLimits = ExtractionLimits(),
        name: String? = nil
    ) throws -> ExtractedBundle {
        let label = name ?? bundlePath
        func fail(_ reason: BundleError.Reason, _ entry: String? = nil, _ message: String, fix: String? = nil)
            -> BundleError
        {
            BundleError(reason, bundle: label, entry: entry, message: message, fix: fix)
        }

        let input = open(bundlePath, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else {
            throw fail(.io, nil, "cannot open: \(String(cString: strerror(errno)))", fix: "check the path")
        }
        defer { close(input) }
        var st = stat()
        guard fstat(input, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw fail(.io, nil, "is not a regular file")
        }
        let compressed = Int64(st.st_size)
        if compressed == 0 {
            throw fail(.empty, nil, "is empty (0 bytes)", fix: "the upload was cut short; produce the run again")
        }
        var magic: [UInt8] = [0, 0]
        if pread(input, &magic, 2, 0) != 2 || magic != [0x1f, 0x8b] {
            throw fail(
                .notGzip, nil, "is not gzip data (it does not start with 1f 8b)",
                fix: "a bundle is a tar archive compressed with gzip (tar -czf)")
        }
        // The smallest gzip member: a 10-byte header, an empty deflate block, an 8-byte trailer.
        if compressed < 20 {
            throw fail(
                .truncated, nil, "is \(compressed) bytes, too short for gzip data",
                fix: "the upload was cut short; produce the run again")
        }

        guard mkdir(directory, 0o700) == 0 else {
            let e = errno
            throw fail(
                e == EEXIST ? .destinationExists : .io, nil,
                "cannot create the directory \(directory): \(String(cString: strerror(e)))",
                fix: e == EEXIST ? "extract into a new directory" : "check that its parent exists and is writable")
        }
        let extraction = Extraction(directory: directory, label: label, limits: limits, compressed: compressed)
        do {
            let result = try extraction.run(fd: input)
            return try verify(
                result, directory: directory, label: label, expectedRunId: expectedRunId,
                expectedCollection: expectedCollection, compressed: compressed)
        } catch {
            extraction.removeWritten()
            rmdir(directory)
            throw error
        }
    }

    private static func verify(
        _ r: Extraction.Result, directory: String, label: String, expectedRunId: String?,
        expectedCollection: String?, compressed: Int64
    ) throws -> ExtractedBundle {
        for name in BundleManifest.entryNames where r.entries[name] == nil {
            throw BundleError(
                .missingEntry, bundle: label, entry: name, message: "is missing",
                fix: "a bundle holds exactly manifest.json and delta.sqlite3")
        }
        let m = try BundleManifest.decode(r.manifestData, bundle: label)
        if let expectedRunId, m.runId != expectedRunId {
            throw BundleError(
                .wrongRun, bundle: label, entry: BundleManifest.fileName, field: "run_id",
                message: "is \"\(m.runId)\", expected \"\(expectedRunId)\"",
                fix: "the bundle belongs to another run; check the run record's delta key")
        }
        if let expectedCollection, m.collection != expectedCollection {
            throw BundleError(
                .wrongRun, bundle: label, entry: BundleManifest.fileName, field: "collection",
                message: "is \"\(m.collection)\", expected \"\(expectedCollection)\"",
                fix: "the bundle belongs to another collection; check the run record's delta key")
        }
        let delta = r.entries[BundleManifest.deltaFileName]!
        let listed = m.file(BundleManifest.deltaFileName)!
        if listed.size != delta.size || listed.sha256 != delta.sha256 {
            throw BundleError(
                .checksumMismatch, bundle: label, entry: BundleManifest.deltaFileName,
                message: "is \(delta.size) bytes with SHA-256 \(delta.sha256); the manifest says "
                    + "\(listed.size) bytes with SHA-256 \(listed.sha256)",
                fix: "the bundle is damaged or was altered; produce the run again")
        }
        return ExtractedBundle(
            directory: directory, manifest: m, deltaPath: directory + "/" + BundleManifest.deltaFileName,
            compressedBytes: compressed, expandedBytes: r.expanded)
    }
}

/// One extraction: two libarchive readers chained so the gzip stream is read to its end.
///
/// `gzip` reads the file with the gzip filter and the raw format, yielding the decompressed
/// stream; `tar` reads that stream with the tar format and no filter. When `tar` reaches its end
/// marker, the rest of `gzip` is drained, which makes libarchive check the CRC and length. Every
/// decompressed byte passes through `pull`, where the expansion limits are enforced.
final class Extraction {
    struct Entry {
        var size: Int64
        var sha256: String
    }
    struct Result {
        var entries: [String: Entry]
        var manifestData: Data
        var expanded: Int64
    }

    let directory: String
    let label: String
    let limits: ExtractionLimits
    let compressed: Int64
    private var fd: Int32 = -1
    private var created: [String] = []
    private var expanded: Int64 = 0
    private var crc = CRC32()
    /// The first error seen inside a callback, reported instead of libarchive's generic one.
    private var callbackError: BundleError?
    private let rawBuffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 16)
    private let pipeBuffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 16)
    private var gzip: OpaquePointer?

    init(directory: String, label: String, limits: ExtractionLimits, compressed: Int64) {
        self.directory = directory
        self.label = label
        self.limits = limits
        self.compressed = compressed
    }

    deinit {
        rawBuffer.deallocate()
        pipeBuffer.deallocate()
    }

    func removeWritten() {
        for name in created { unlink(directory + "/" + name) }
        created.removeAll()
    }

    private func fail(_ reason: BundleError.Reason, _ entry: String? = nil, _ message: String, fix: String? = nil)
        -> BundleError
    {
        BundleError(reason, bundle: label, entry: entry, message: message, fix: fix)
    }

    private var expansionLimit: Int64 {
        min(limits.maxExpandedBytes, max(limits.ratioFloorBytes, limits.maxExpansionRatio * compressed))
    }

    // MARK: callbacks

    /// Raw bytes of the bundle file for the gzip reader.
    fileprivate func readRaw(_ out: UnsafeMutablePointer<UnsafeRawPointer?>) -> Int {
        while true {
            let n = read(fd, rawBuffer, 1 << 16)
            if n < 0 && errno == EINTR { continue }
            if n < 0 {
                callbackError = callbackError ?? fail(.io, nil, "cannot read: \(String(cString: strerror(errno)))")
                return -1
            }
            out.pointee = UnsafeRawPointer(rawBuffer)
            return n
        }
    }

    /// Decompressed bytes for the tar reader (and for draining), with the expansion limits.
    fileprivate func pull(into buffer: UnsafeMutableRawPointer, count: Int) -> Int {
        guard let gzip else { return 0 }
        let n = archive_read_data(gzip, buffer, count)
        if n < 0 {
            let msg = archive_error_string(gzip).map { String(cString: $0) } ?? "error \(n)"
            let truncated = msg.lowercased().contains("truncated") || msg.lowercased().contains("premature")
            callbackError =
                callbackError
                ?? fail(
                    truncated ? .truncated : .corrupt, nil,
                    "the gzip stream is \(truncated ? "cut short" : "damaged"): \(msg)",
                    fix: "download the bundle again; if it persists, produce the run again")
            return -1
        }
        expanded += Int64(n)
        crc.update(UnsafeRawBufferPointer(start: buffer, count: n))
        if expanded > expansionLimit {
            callbackError =
                callbackError
                ?? fail(
                    .expansionLimit, nil,
                    "expands to more than \(expansionLimit) bytes from \(compressed) compressed bytes (limits: "
                        + "\(limits.maxExpandedBytes) bytes in total, \(limits.maxExpansionRatio)x the compressed size "
                        + "above \(limits.ratioFloorBytes) bytes)",
                    fix: "refused as a possible gzip bomb; raise ExtractionLimits only if the bundle is trusted")
            return -1
        }
        return n
    }

    // MARK: running

    func run(fd input: Int32) throws -> Result {
        fd = input
        guard let g = archive_read_new(), let t = archive_read_new() else {
            throw fail(.io, nil, "libarchive could not allocate a reader (out of memory)")
        }
        gzip = g
        defer {
            archive_read_free(t)
            archive_read_free(g)
            gzip = nil
        }
        let ctx = Unmanaged.passUnretained(self).toOpaque()

        // Reader 1: gzip filter + raw format = the decompressed stream.
        archive_read_support_filter_gzip(g)
        archive_read_support_format_raw(g)
        guard
            archive_read_open(
                g, ctx, nil,
                { _, ctx, out in
                    Unmanaged<Extraction>.fromOpaque(ctx!).takeUnretainedValue().readRaw(out!)
                }, nil) == ARCHIVE_OK
        else {
            if let callbackError { throw callbackError }
            // The raw format bids on any byte; it finds none when the stream decompresses to nothing.
            if archive_filter_code(g, 0) == ARCHIVE_FILTER_GZIP,
                (archive_error_string(g).map { String(cString: $0) } ?? "").contains("Unrecognized archive format")
            {
                throw fail(
                    .empty, nil, "holds no data once decompressed",
                    fix: "a bundle holds manifest.json and delta.sqlite3; produce the run again")
            }
            throw libarchiveError(g, .corrupt, "cannot open the gzip stream")
        }
        var rawEntry: OpaquePointer?
        guard archive_read_next_header(g, &rawEntry) == ARCHIVE_OK else {
            throw callbackError ?? libarchiveError(g, .corrupt, "cannot read the gzip stream")
        }
        guard archive_filter_count(g) >= 2, archive_filter_code(g, 0) == ARCHIVE_FILTER_GZIP else {
            throw fail(
                .corrupt, nil, "starts like gzip but its gzip header is damaged",
                fix: "download the bundle again; if it persists, produce the run again")
        }

        // Reader 2: tar format, no filter, fed from reader 1.
        archive_read_support_format_tar(t)
        guard
            archive_read_open(
                t, ctx, nil,
                { _, ctx, out in
                    let me = Unmanaged<Extraction>.fromOpaque(ctx!).takeUnretainedValue()
                    let n = me.pull(into: me.pipeBuffer, count: 1 << 16)
                    out!.pointee = UnsafeRawPointer(me.pipeBuffer)
                    return n
                }, nil) == ARCHIVE_OK
        else {
            throw callbackError ?? libarchiveError(t, .corrupt, "is not a tar archive")
        }

        var entries: [String: Extraction.Entry] = [:]
        var manifestData = Data()
        var written: Int64 = 0
        while true {
            var entry: OpaquePointer?
            let rc = archive_read_next_header(t, &entry)
            if rc == ARCHIVE_EOF { break }
            guard rc == ARCHIVE_OK || rc == ARCHIVE_WARN, let entry else {
                throw callbackError ?? libarchiveError(t, .corrupt, "has a damaged tar header")
            }
            let name = try checkEntry(entry, seen: entries)
            let (size, sha, data) = try copyEntry(
                t, name: name, declared: archive_entry_size(entry),
                keepInMemory: name == BundleManifest.fileName)
            written += size
            if written > limits.maxExpandedBytes {
                throw fail(.expansionLimit, name, "the entries add up to more than \(limits.maxExpandedBytes) bytes")
            }
            entries[name] = Entry(size: size, sha256: sha)
            if let data { manifestData = data }
        }

        // Drain the gzip stream to its end: this is where a bad CRC or length is noticed.
        while true {
            let n = pull(into: pipeBuffer, count: 1 << 16)
            if n == 0 { break }
            if n < 0 { throw callbackError! }
        }
        if let callbackError { throw callbackError }
        try checkTrailer()
        return Result(entries: entries, manifestData: manifestData, expanded: expanded)
    }

    /// libarchive 3.6 does not check the gzip trailer, so check it here. A bundle is one gzip
    /// member whose 8-byte trailer (CRC-32 and length mod 2^32 of the decompressed stream, both
    /// little-endian) ends the file, optionally followed by fewer than 10240 zero bytes: bsdtar
    /// and libarchive pad their output to whole 10240-byte blocks. Anything else after the
    /// member, including a second member, is refused.
    private func checkTrailer() throws {
        let size = UInt32(truncatingIfNeeded: expanded)
        var expected = [UInt8](repeating: 0, count: 8)
        for i in 0..<4 {
            expected[i] = UInt8(truncatingIfNeeded: crc.value >> (8 * i))
            expected[4 + i] = UInt8(truncatingIfNeeded: size >> (8 * i))
        }
        let tailCount = Int(min(compressed, 10240 + 8))
        var tail = [UInt8](repeating: 0, count: tailCount)
        guard pread(fd, &tail, tailCount, off_t(compressed - Int64(tailCount))) == tailCount else {
            throw fail(.io, nil, "cannot read the gzip trailer: \(String(cString: strerror(errno)))")
        }
        // The trailer ends somewhere in (last non-zero byte, last non-zero byte + 8].
        let lastNonZero = tail.lastIndex { $0 != 0 } ?? -1
        var ok = false
        var end = max(8, lastNonZero + 1)
        while !ok && end <= min(tailCount, lastNonZero + 8 + 1) && end - 8 >= 0 {
            if Array(tail[(end - 8)..<end]) == expected && tailCount - end < 10240 { ok = true }
            end += 1
        }
        if !ok {
            let stored = Array(tail.suffix(8))
            let storedCRC = stored[0..<4].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            let storedSize = stored[4..<8].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            throw fail(
                .corrupt, nil,
                "its gzip trailer does not match the data (CRC-32 \(hex(crc.value)) and length \(size) "
                    + "computed; the last 8 bytes say \(hex(storedCRC)) and \(storedSize)): the bundle is damaged, "
                    + "cut short, has bytes after the gzip data, or is more than one gzip member",
                fix: "download the bundle again; if it persists, produce the run again")
        }
    }

    private func hex(_ v: UInt32) -> String { String(format: "%08x", v) }

    private func libarchiveError(_ a: OpaquePointer, _ reason: BundleError.Reason, _ what: String) -> BundleError {
        let msg = archive_error_string(a).map { String(cString: $0) } ?? "unknown error"
        let truncated = msg.lowercased().contains("truncated") || msg.lowercased().contains("premature")
        return fail(
            truncated ? .truncated : reason, nil, "\(what): \(msg)",
            fix: "download the bundle again; if it persists, produce the run again")
    }

    /// Checks an entry's header; returns its name.
    private func checkEntry(_ e: OpaquePointer, seen: [String: Entry]) throws -> String {
        guard let cName = archive_entry_pathname(e) else {
            throw fail(.unexpectedEntry, nil, "has an entry whose name cannot be read")
        }
        let name = String(cString: cName)
        if name.hasPrefix("/") {
            throw fail(.absolutePath, name, "has an absolute path", fix: "entries are plain file names")
        }
        if name.split(separator: "/", omittingEmptySubsequences: false).contains("..") {
            throw fail(
                .pathTraversal, name, "has a \"..\" component (it would escape the directory)",
                fix: "entries are plain file names")
        }
        if archive_entry_hardlink(e) != nil {
            throw fail(.hardlink, name, "is a hard link", fix: "a bundle holds regular files only")
        }
        let type = archive_entry_filetype(e) & 0o170000
        switch type {
        case 0o100000: break
        case 0o120000: throw fail(.symlink, name, "is a symbolic link", fix: "a bundle holds regular files only")
        case 0o040000: throw fail(.notRegularFile, name, "is a directory", fix: "a bundle holds regular files only")
        default:
            let kinds: [UInt32: String] = [
                0o010000: "a FIFO", 0o020000: "a character device",
                0o060000: "a block device", 0o140000: "a socket",
            ]
            throw fail(
                .notRegularFile, name, "is \(kinds[UInt32(type)] ?? "not a regular file")",
                fix: "a bundle holds regular files only")
        }
        if archive_entry_sparse_count(e) > 0 {
            throw fail(.notRegularFile, name, "is a sparse file", fix: "a bundle holds plain regular files only")
        }
        guard BundleManifest.entryNames.contains(name) else {
            throw fail(
                .unexpectedEntry, name, "is not expected in a bundle",
                fix: "a bundle holds exactly manifest.json and delta.sqlite3, at the top level")
        }
        if seen[name] != nil {
            throw fail(.duplicateEntry, name, "appears twice", fix: "a bundle holds each file once")
        }
        let limit = name == BundleManifest.fileName ? limits.maxManifestBytes : limits.maxEntryBytes
        if archive_entry_size_is_set(e) == 0 {
            throw fail(.corrupt, name, "has no size in its header")
        }
        let size = archive_entry_size(e)
        if size > limit || size < 0 {
            throw fail(
                .entryTooLarge, name, "is \(size) bytes, more than the limit of \(limit)",
                fix: "split large inputs into several runs; raise ExtractionLimits only for trusted bundles")
        }
        return name
    }

    /// Streams an entry's data into a new file (and memory, for the manifest), hashing it.
    private func copyEntry(_ t: OpaquePointer, name: String, declared: Int64, keepInMemory: Bool) throws
        -> (Int64, String, Data?)
    {
        let path = directory + "/" + name
        let out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard out >= 0 else {
            throw fail(.io, name, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        created.append(name)
        defer { close(out) }
        let digest = Digest(.sha256)
        var data: Data? = keepInMemory ? Data() : nil
        var size: Int64 = 0
        let buf = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buf.deallocate() }
        while true {
            let n = archive_read_data(t, buf, 1 << 20)
            if n == 0 { break }
            if n < 0 { throw callbackError ?? libarchiveError(t, .corrupt, "cannot read the data of \(name)") }
            size += Int64(n)
            if size > declared {
                throw fail(.corrupt, name, "has more data than its header says (\(declared) bytes)")
            }
            let chunk = UnsafeRawBufferPointer(start: buf, count: n)
            digest.update(chunk)
            data?.append(contentsOf: chunk)
            var off = 0
            while off < n {
                let w = write(out, buf + off, n - off)
                if w < 0 {
                    if errno == EINTR { continue }
                    throw fail(
                        .io, name, "cannot write \(path): \(String(cString: strerror(errno)))",
                        fix: "check the disk space of the work directory")
                }
                off += w
            }
        }
        guard size == declared else {
            throw fail(.truncated, name, "has \(size) bytes of data, its header says \(declared)")
        }
        return (size, digest.finalizeHex(), data)
    }
}
