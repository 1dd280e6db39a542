import Foundation
import StrataCore
import StrataCrypto

#if canImport(Glibc)
    import Glibc
#endif

extension S3Store {
    // MARK: head

    public func head(_ key: String) throws -> ObjectInfo? {
        try headWithHeaders(key)?.info
    }

    /// HEAD, returning the info and the raw headers (for the write id).
    func headWithHeaders(_ key: String) throws -> (info: ObjectInfo, headers: [String: String])? {
        let r = try send(Request(operation: "HeadObject", method: "HEAD", key: key, accept: [404, 400, 403, 301, 307]))
        switch r.status {
        case 404:
            try checkBucketAfter404(operation: "HeadObject", key: key)
            return nil
        case 200..<300:
            markBucketExists()
            return (info(key: key, headers: r.headers), r.headers)
        default:
            // A HEAD error has no body: repeat it as a one-byte GET to learn the error code.
            let g = try send(
                Request(
                    operation: "HeadObject", method: "GET", key: key,
                    headers: [("Range", "bytes=0-0")], accept: [404, 416]))
            if g.status == 404 { return nil }
            let creds = try? credentials("HeadObject")
            throw errorMapper(creds).error(
                operation: "HeadObject", key: key, status: r.status, headers: r.headers,
                body: Data())
        }
    }

    // MARK: get

    @discardableResult
    public func get(_ key: String, toFile path: String, range: Range<Int64>?) throws -> ObjectInfo {
        if let range {
            guard range.lowerBound >= 0, range.upperBound > range.lowerBound else {
                throw StoreError(
                    .invalidRequest, operation: "GetObject", key: key,
                    message: "range \(range) is empty or negative")
            }
        }
        let (tmp, fd) = try createTemporary(beside: path, key: key)
        var keep = false
        defer {
            close(fd)
            if !keep { unlink(tmp) }
        }
        let info: ObjectInfo
        if let range {
            info = try getRange(key, range: range, fd: fd)
        } else {
            info = try getWhole(key, fd: fd, tmp: tmp)
        }
        guard fsync(fd) == 0, rename(tmp, path) == 0 else {
            throw StoreError(
                .io, operation: "GetObject", key: key,
                message: "cannot move the download into \(path): \(String(cString: strerror(errno)))",
                hint: "check that the directory is writable and has free space")
        }
        keep = true
        return info
    }

    /// A temporary file in the destination's directory, so the final rename is atomic.
    func createTemporary(beside path: String, key: String) throws -> (String, Int32) {
        let tmp = path + ".part-" + Hex.encode(SecureRandom.bytes(6))
        let fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw StoreError(
                .io, operation: "GetObject", key: key,
                message: "cannot create \(tmp): \(String(cString: strerror(errno)))",
                hint: "check that the directory exists and is writable")
        }
        return (tmp, fd)
    }

    private func getRange(_ key: String, range: Range<Int64>, fd: Int32) throws -> ObjectInfo {
        let r = try send(
            Request(
                operation: "GetObject", method: "GET", key: key,
                headers: [("Range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)")],
                sink: {
                    guard ftruncate(fd, 0) == 0 else { throw S3Store.ioError("GetObject", key) }
                    return .file(fd: fd, offset: 0, hash: false)
                }))
        markBucketExists()
        if r.status == 200 {
            // The server ignored the range and sent everything: keep the asked part only.
            let want = min(range.upperBound, r.bytesWritten) - range.lowerBound
            try S3Store.shiftFile(fd: fd, from: range.lowerBound, length: max(0, want), key: key)
        }
        return info(key: key, headers: r.headers)
    }

    private func getWhole(_ key: String, fd: Int32, tmp: String) throws -> ObjectInfo {
        let r = try send(
            Request(
                operation: "GetObject", method: "GET", key: key,
                sink: {
                    guard ftruncate(fd, 0) == 0 else { throw S3Store.ioError("GetObject", key) }
                    return .file(fd: fd, offset: 0, hash: true)
                },
                stopIfLargerThan: configuration.parallelDownloadThreshold))
        markBucketExists()
        let info = self.info(key: key, headers: r.headers)
        if r.stoppedForSize {
            return try parallelDownload(key, info: info, fd: fd)
        }
        if let length = r.headers["content-length"].flatMap({ Int64($0) }), length != r.bytesWritten {
            throw StoreError(
                .integrity, operation: "GetObject", key: key,
                message: "received \(r.bytesWritten) bytes of \(length)",
                hint: "the connection was cut: download it again")
        }
        if let expected = info.sha256, let actual = r.sha256, expected != actual {
            throw integrityMismatch(key: key, expected: expected, actual: actual)
        }
        return info
    }

    func integrityMismatch(key: String, expected: String, actual: String) -> StoreError {
        StoreError(
            .integrity, operation: "GetObject", key: key,
            message: "the downloaded bytes have SHA-256 \(actual), the object's recorded SHA-256 is \(expected)",
            hint: "the object or its metadata is damaged, or was changed outside Strata; nothing was kept")
    }

    static func ioError(_ operation: String, _ key: String) -> StoreError {
        StoreError(
            .io, operation: operation, key: key, message: String(cString: strerror(errno)),
            hint: "check the destination's permissions and free space")
    }

    /// Moves `length` bytes at `from` to the start of the file and truncates it there.
    static func shiftFile(fd: Int32, from: Int64, length: Int64, key: String) throws {
        if from > 0 {
            let buf = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { buf.deallocate() }
            var done: Int64 = 0
            while done < length {
                let n = pread(fd, buf, Int(min(Int64(1 << 20), length - done)), off_t(from + done))
                if n <= 0 { throw ioError("GetObject", key) }
                guard pwrite(fd, buf, n, off_t(done)) == n else { throw ioError("GetObject", key) }
                done += Int64(n)
            }
        }
        guard ftruncate(fd, off_t(length)) == 0 else { throw ioError("GetObject", key) }
    }

    public func getData(_ key: String) throws -> (data: Data, info: ObjectInfo) {
        let r = try send(
            Request(
                operation: "GetObject", method: "GET", key: key,
                sink: { .memory(limit: 512 << 20) }))
        markBucketExists()
        let info = self.info(key: key, headers: r.headers)
        if let expected = info.sha256 {
            let actual = SHA256.hex(r.body)
            if actual != expected { throw integrityMismatch(key: key, expected: expected, actual: actual) }
        }
        return (r.body, info)
    }

    // MARK: put

    @discardableResult
    public func put(_ key: String, body: PutBody, condition: WriteCondition, options: PutOptions) throws
        -> ObjectInfo
    {
        try validate(key: key, operation: "PutObject")
        if case .ifMatch(let etag) = condition, etag.isEmpty {
            throw StoreError(.invalidRequest, operation: "PutObject", key: key, message: "If-Match with an empty ETag")
        }
        switch body {
        case .data(let data):
            let sha = SHA256.hex(data)
            if let given = options.sha256, given.lowercased() != sha {
                throw StoreError(
                    .integrity, operation: "PutObject", key: key, code: "BadDigest",
                    message: "the body's SHA-256 is \(sha), the caller said \(given)",
                    hint: "the data changed after its hash was taken")
            }
            if Int64(data.count) >= configuration.multipartThreshold {
                return try multipartUpload(
                    key, source: DataPartSource(data: data), sha256: sha,
                    condition: condition, options: options)
            }
            return try putSingle(key, body: .data(data), sha256: sha, condition: condition, options: options)
        case .file(let path):
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                throw StoreError(
                    .io, operation: "PutObject", key: key,
                    message: "cannot open \(path): \(String(cString: strerror(errno)))",
                    hint: "check that the file exists and is readable")
            }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
                throw StoreError(.io, operation: "PutObject", key: key, message: "\(path) is not a regular file")
            }
            let size = Int64(st.st_size)
            let identity = FileIdentity(fd: fd)
            // The object's SHA-256 goes into its metadata before any byte is sent, so without the
            // caller's hash a pre-pass over the file computes it. A single PUT re-checks the body
            // against it while it streams; a multipart upload checks that the file was not
            // written to (inode, size, mtime, ctime) before it completes. Either way a file changed
            // in between is refused, never stored.
            let sha = try options.sha256.map { $0.lowercased() } ?? hashFile(fd: fd, size: size, key: key)
            if size >= configuration.multipartThreshold {
                return try multipartUpload(
                    key,
                    source: FilePartSource(
                        fd: fd, size: size, identity: identity, hashIsCallers: options.sha256 != nil),
                    sha256: sha,
                    condition: condition, options: options)
            }
            return try putSingle(
                key, body: .file(fd: fd, offset: 0, length: size), sha256: sha,
                condition: condition, options: options)
        }
    }

    func hashFile(fd: Int32, size: Int64, key: String) throws -> String {
        try FilePartSource(fd: fd, size: size).sha256(offset: 0, length: size)
    }

    static func conditionHeaders(_ condition: WriteCondition) -> [(name: String, value: String)] {
        switch condition {
        case .none: return []
        case .ifNoneMatch: return [("If-None-Match", "*")]
        case .ifMatch(let etag): return [("If-Match", etag)]
        }
    }

    private func putSingle(
        _ key: String, body: TransportBody, sha256: String, condition: WriteCondition,
        options: PutOptions
    ) throws -> ObjectInfo {
        let writeId = S3Store.newWriteId()
        var headers: [(name: String, value: String)] = [
            ("Content-Type", options.contentType ?? "application/octet-stream"),
            (S3Store.sha256MetaHeader, sha256),
            (S3Store.writeIdMetaHeader, writeId),
        ]
        headers += S3Store.conditionHeaders(condition)
        let log = AttemptLog()
        do {
            let r = try send(
                Request(
                    operation: "PutObject", method: "PUT", key: key, headers: headers, body: body,
                    bodySHA256: sha256, conditional: condition != .none), log: log)
            markBucketExists()
            return ObjectInfo(
                key: key, size: body.length, etag: r.headers["etag"] ?? "",
                lastModified: S3Store.parseHTTPDate(r.headers["date"]), sha256: sha256)
        } catch var e as StoreError where condition != .none {
            if e.kind == .notFound, case .ifMatch = condition {
                // AWS answers If-Match on a missing key with 404: the condition did not hold.
                e.kind = .preconditionFailed
                e.hint = "the key does not exist (any more): read it again and retry"
            }
            guard e.kind == .preconditionFailed else { throw e }
            // Checked even when no attempt of ours failed: libcurl silently re-sends a request
            // whose response was lost on a reused connection, so our own write can come back 412.
            if let won = try resolveAmbiguousWrite(key: key, writeId: writeId) { return won }
            throw e
        }
    }

    /// After a conditional write failed only on a retry, find out whether an earlier attempt of
    /// the same write succeeded: the key then carries this write's id. Returns its info if so.
    func resolveAmbiguousWrite(key: String, writeId: String) throws -> ObjectInfo? {
        guard let (info, headers) = try headWithHeaders(key) else { return nil }
        if headers[S3Store.writeIdMetaHeader] == writeId {
            logger.info("a retried conditional write to \(key) was refused, but the first attempt had succeeded")
            return info
        }
        return nil
    }

    // MARK: delete

    public func delete(_ key: String) throws {
        do {
            _ = try send(Request(operation: "DeleteObject", method: "DELETE", key: key))
        } catch let e as StoreError where e.kind == .notFound {
            // Already gone (S3 answers 204 anyway; some stores say 404). A missing bucket still throws.
        }
    }
}

/// What changes when a file is written to: compared before and after an upload.
struct FileIdentity: Equatable {
    var inode: UInt64
    var size: Int64
    var mtimeNs: Int64
    var ctimeNs: Int64

    init?(fd: Int32) {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        mtimeNs = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        ctimeNs = Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
    }
}

/// Where the parts of a multipart upload come from.
protocol PartSource {
    var size: Int64 { get }
    func read(offset: Int64, length: Int) throws -> Data
    /// The open file behind the source, when there is one: its parts are then streamed from
    /// file ranges instead of buffered.
    var fileDescriptor: Int32? { get }
}

extension PartSource {
    var fileDescriptor: Int32? { nil }
}

struct DataPartSource: PartSource {
    let data: Data
    var size: Int64 { Int64(data.count) }
    func read(offset: Int64, length: Int) throws -> Data {
        let start = data.startIndex + Int(offset)
        return data.subdata(in: start..<(start + length))
    }
}

struct FilePartSource: PartSource {
    let fd: Int32
    let size: Int64
    var fileDescriptor: Int32? { fd }
    /// The file's identity when the upload began (before its hash was taken).
    let identity: FileIdentity?
    /// The whole-object hash came from the caller (verify it) rather than from a pre-pass.
    let hashIsCallers: Bool

    init(fd: Int32, size: Int64, identity: FileIdentity? = nil, hashIsCallers: Bool = false) {
        self.fd = fd
        self.size = size
        self.identity = identity
        self.hashIsCallers = hashIsCallers
    }

    /// True while the file is the one whose hash was taken: same inode, size, mtime and ctime.
    func unchanged() -> Bool {
        guard let identity else { return true }
        return FileIdentity(fd: fd) == identity
    }

    /// Hex SHA-256 of a range, read through a 1 MiB buffer.
    func sha256(offset: Int64, length: Int64, into digest: Digest? = nil) throws -> String {
        let d = Digest(.sha256)
        let bufferSize = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 16)
        defer { buffer.deallocate() }
        var done: Int64 = 0
        while done < length {
            let want = Int(min(Int64(bufferSize), length - done))
            let n = pread(fd, buffer, want, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                throw StoreError(
                    .io, operation: "UploadPart",
                    message: n == 0
                        ? "the source file became shorter during the upload"
                        : "cannot read the source file: " + String(cString: strerror(errno)),
                    hint: "do not change a file while it is uploaded")
            }
            let chunk = UnsafeRawBufferPointer(start: buffer, count: n)
            d.update(chunk)
            digest?.update(chunk)
            done += Int64(n)
        }
        return d.finalizeHex()
    }
    func read(offset: Int64, length: Int) throws -> Data {
        var data = Data(count: length)
        try data.withUnsafeMutableBytes { raw in
            var got = 0
            while got < length {
                let n = pread(fd, raw.baseAddress! + got, length - got, off_t(offset + Int64(got)))
                if n < 0 && errno == EINTR { continue }
                if n < 0 {
                    throw StoreError(
                        .io, operation: "UploadPart",
                        message: "cannot read the source file: "
                            + String(cString: strerror(errno)))
                }
                if n == 0 {
                    throw StoreError(
                        .io, operation: "UploadPart",
                        message: "the source file became shorter during the upload",
                        hint: "do not change a file while it is uploaded")
                }
                got += n
            }
        }
        return data
    }
}
