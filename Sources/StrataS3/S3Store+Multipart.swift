import Foundation
import StrataCore
import StrataCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// A multipart upload in progress, as ListMultipartUploads reports it.
public struct MultipartUploadInfo: Sendable, Equatable {
    public var key: String
    public var uploadId: String
    public var initiated: Date?

    public init(key: String, uploadId: String, initiated: Date?) {
        self.key = key
        self.uploadId = uploadId
        self.initiated = initiated
    }
}

extension S3Store {
    /// S3 limits: parts of 5 MiB to 5 GiB, at most 10,000 of them.
    static let minPartSize = 5 << 20
    static let maxParts = 10_000

    /// Uploads `source` in parts, `concurrency` at a time, in memory bounded by
    /// partSize x concurrency: each worker reads its part into a buffer, hashes it and uploads it.
    /// The whole-object SHA-256 (`sha256`, recorded at initiation) is checked against the bytes
    /// actually read before completing. Any failure aborts the upload so no parts are left behind.
    func multipartUpload(
        _ key: String, source: PartSource, sha256: String, condition: WriteCondition,
        options: PutOptions
    ) throws -> ObjectInfo {
        let size = source.size
        var partSize = max(configuration.partSize, S3Store.minPartSize)
        while (size + Int64(partSize) - 1) / Int64(partSize) > Int64(S3Store.maxParts) { partSize *= 2 }
        let partCount = max(1, Int((size + Int64(partSize) - 1) / Int64(partSize)))
        let writeId = S3Store.newWriteId()

        let initHeaders: [(name: String, value: String)] = [
            ("Content-Type", options.contentType ?? "application/octet-stream"),
            (S3Store.sha256MetaHeader, sha256),
            (S3Store.writeIdMetaHeader, writeId),
        ]
        let createLog = AttemptLog()
        let created: TransportResponse
        do {
            created = try send(
                Request(
                    operation: "CreateMultipartUpload", method: "POST", key: key,
                    query: [.init("uploads", nil)], headers: initHeaders), log: createLog)
        } catch {
            // An attempt whose answer was lost may have opened an upload nobody knows the id of.
            if createLog.attempts > 1 || createLog.ambiguous { abortOpenUploads(onExactKey: key, except: nil) }
            throw error
        }
        markBucketExists()
        guard let uploadId = XMLNode.parse(created.body)?.value("UploadId"), !uploadId.isEmpty else {
            abortOpenUploads(onExactKey: key, except: nil)
            throw StoreError(
                .invalidRequest, operation: "CreateMultipartUpload", key: key,
                message: "the response has no UploadId")
        }
        defer {
            // A retried Create may have opened uploads whose answers were lost: they stay open
            // (and billed) until aborted. Version keys are unique, so only ours can be there.
            if createLog.attempts > 1 { abortOpenUploads(onExactKey: key, except: uploadId) }
        }
        logger.debug("multipart upload of \(key): \(partCount) parts of \(partSize) bytes")

        do {
            let etags = try uploadParts(
                key, uploadId: uploadId, source: source, partSize: partSize,
                partCount: partCount, expectedSHA256: sha256)
            var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            for (i, etag) in etags.enumerated() {
                xml += "<Part><PartNumber>\(i + 1)</PartNumber><ETag>\(XMLNode.escape(etag))</ETag></Part>"
            }
            xml += "</CompleteMultipartUpload>"
            let log = AttemptLog()
            let r: TransportResponse
            do {
                r = try send(
                    Request(
                        operation: "CompleteMultipartUpload", method: "POST", key: key,
                        query: [.init("uploadId", uploadId)],
                        headers: [("Content-Type", "application/xml")] + S3Store.conditionHeaders(condition),
                        body: .data(Data(xml.utf8)), conditional: condition != .none,
                        errorMayComeWith200: true), log: log)
            } catch var e as StoreError where log.ambiguous {
                // An earlier attempt may have completed the upload: then the retry finds no upload
                // (404 NoSuchUpload) or a failed condition. The key then carries our write id.
                if e.kind == .notFound || e.kind == .preconditionFailed,
                    let won = try resolveAmbiguousWrite(key: key, writeId: writeId)
                {
                    return won
                }
                if e.kind == .notFound, condition != .none { e.kind = .preconditionFailed }
                throw e
            } catch var e as StoreError where e.kind == .notFound && condition != .none && e.code != "NoSuchUpload" {
                e.kind = .preconditionFailed
                throw e
            } catch let e as StoreError where e.kind == .preconditionFailed || e.code == "NoSuchUpload" {
                // libcurl may have re-sent a Complete whose answer was lost: the key is then ours.
                if let won = try resolveAmbiguousWrite(key: key, writeId: writeId) { return won }
                throw e
            }
            let etag = XMLNode.parse(r.body)?.value("ETag") ?? r.headers["etag"] ?? ""
            return ObjectInfo(
                key: key, size: size, etag: etag, lastModified: S3Store.parseHTTPDate(r.headers["date"]),
                sha256: sha256)
        } catch {
            abortQuietly(key: key, uploadId: uploadId)
            // Also the uploads of attempts whose CreateMultipartUpload answer was lost (libcurl
            // may re-send one without telling us): every upload open on this exact key.
            abortOpenUploads(onExactKey: key, except: uploadId)
            throw error
        }
    }

    /// Aborts every multipart upload open on exactly `key` (ListMultipartUploads with the key as
    /// prefix, keeping exact matches), best effort: a failure is logged, gc cleans up later.
    func abortOpenUploads(onExactKey key: String, except keep: String?) {
        do {
            for u in try listMultipartUploads(prefix: key) where u.key == key && u.uploadId != keep {
                logger.info("aborting multipart upload \(u.uploadId) left open on \(key)")
                abortQuietly(key: key, uploadId: u.uploadId)
            }
        } catch {
            logger.warning("could not list the multipart uploads open on \(key): \(error)")
        }
    }

    /// Sends one part and returns its ETag. A file part is not re-hashed while it streams: its
    /// file is checked for changes as a whole before the upload completes.
    private func uploadPart(_ key: String, uploadId: String, number: Int, body: TransportBody, sha256: String?) throws
        -> String
    {
        var request = Request(
            operation: "UploadPart", method: "PUT", key: key,
            query: [.init("partNumber", String(number)), .init("uploadId", uploadId)], body: body, bodySHA256: sha256)
        request.verifyFileBody = false
        let r = try send(request)
        guard let etag = r.headers["etag"], !etag.isEmpty else {
            throw StoreError(
                .invalidRequest, operation: "UploadPart", key: key,
                message: "part \(number): the response has no ETag")
        }
        return etag
    }

    private func abortQuietly(key: String, uploadId: String) {
        do {
            try abortMultipartUpload(key: key, uploadId: uploadId)
        } catch {
            logger.warning("could not abort multipart upload \(uploadId) of \(key): \(error)")
        }
    }

    /// Uploads every part with `concurrency` workers. Parts are read in order by the calling
    /// thread (which also computes the whole-object hash) and handed to the workers; at most
    /// `concurrency` part buffers exist at once.
    private func uploadParts(
        _ key: String, uploadId: String, source: PartSource, partSize: Int, partCount: Int,
        expectedSHA256: String
    ) throws -> [String] {
        if let file = source as? FilePartSource {
            return try uploadFileParts(
                key, uploadId: uploadId, file: file, partSize: partSize, partCount: partCount,
                verifyWhole: file.hashIsCallers ? expectedSHA256 : nil)
        }
        let workers = max(1, min(configuration.concurrency, partCount))
        let state = PartPipeline(capacity: workers, partCount: partCount)
        let threads = (0..<workers).map { _ in
            Thread { [self] in
                while let (number, data) = state.next() {
                    do {
                        let etag = try uploadPart(
                            key, uploadId: uploadId, number: number, body: .data(data), sha256: nil)
                        state.finished(number, etag: etag)
                    } catch {
                        state.fail(error)
                    }
                }
                state.workerExited()
            }
        }
        for thread in threads { thread.start() }

        let whole = Digest(.sha256)
        var readError: Error?
        for i in 0..<partCount {
            guard state.waitForSlot() else { break }
            let offset = Int64(i) * Int64(partSize)
            let length = Int(min(Int64(partSize), source.size - offset))
            do {
                let data = try source.read(offset: offset, length: length)
                whole.update(data)
                state.enqueue(i + 1, data)
            } catch {
                readError = error
                state.fail(error)
                break
            }
        }
        state.closeInput()
        state.waitForWorkers()
        if let error = state.firstError ?? readError { throw error }
        let actual = whole.finalizeHex()
        if actual != expectedSHA256 {
            throw StoreError(
                .integrity, operation: "PutObject", key: key, code: "BadDigest",
                message: "the uploaded bytes have SHA-256 \(actual), expected \(expectedSHA256)",
                hint: "the source changed during the upload (or the given SHA-256 is wrong); "
                    + "the upload was aborted")
        }
        return state.etags()
    }

    /// Uploads the parts of a file without buffering them: each worker hashes its part's range
    /// for the signature and streams it from the file. The whole-object SHA-256 was taken before
    /// the upload (recorded at initiation); the file's identity (inode, size, mtime, ctime) is
    /// compared before completing, so a file written to during the upload is refused and the
    /// upload aborted. Memory: a 1 MiB buffer per worker. Each byte is hashed once here, and once
    /// more by this thread, concurrently, when the whole-object hash came from the caller
    /// (`verifyWhole`) rather than from the store's own pre-pass.
    private func uploadFileParts(
        _ key: String, uploadId: String, file: FilePartSource, partSize: Int, partCount: Int,
        verifyWhole: String?
    ) throws -> [String] {
        let workers = max(1, min(configuration.concurrency, partCount))
        let progress = FilePartProgress(partCount: partCount)
        let range: @Sendable (Int) -> (Int64, Int64) = { number in
            let offset = Int64(number - 1) * Int64(partSize)
            return (offset, min(Int64(partSize), file.size - offset))
        }
        let threads = (0..<workers).map { _ in
            Thread { [self] in
                while let number = progress.take() {
                    do {
                        let (offset, length) = range(number)
                        let sha = try file.sha256(offset: offset, length: length)
                        let etag = try uploadPart(
                            key, uploadId: uploadId, number: number,
                            body: .file(fd: file.fd, offset: offset, length: length), sha256: sha)
                        progress.finished(number, etag: etag)
                    } catch {
                        progress.fail(error)
                    }
                }
                progress.workerExited()
            }
        }
        for thread in threads { thread.start() }
        var wholeError: Error?
        if let expected = verifyWhole {
            do {
                let actual = try file.sha256(offset: 0, length: file.size)
                if actual != expected {
                    wholeError = StoreError(
                        .integrity, operation: "PutObject", key: key, code: "BadDigest",
                        message: "the file's SHA-256 is \(actual), the caller said \(expected)",
                        hint: "the file changed after its hash was taken (or the hash is wrong); the upload was aborted"
                    )
                }
            } catch {
                wholeError = error
            }
            if let wholeError { progress.fail(wholeError) }
        }
        progress.waitForWorkers(workers)
        if let error = wholeError ?? progress.firstError { throw error }
        guard file.unchanged() else {
            throw StoreError(
                .integrity, operation: "PutObject", key: key, code: "BadDigest",
                message: "the source file was written to during the upload (its size, mtime or ctime changed)",
                hint: "do not change a file while it is uploaded; the upload was aborted")
        }
        return progress.etags
    }

    // MARK: listing and aborting uploads

    /// Every multipart upload in progress under `prefix` (following pagination).
    public func listMultipartUploads(prefix: String = "") throws -> [MultipartUploadInfo] {
        var result: [MultipartUploadInfo] = []
        var keyMarker: String?
        var uploadIdMarker: String?
        while true {
            var query: [SigV4Signer.QueryItem] = [.init("uploads", nil)]
            if !prefix.isEmpty { query.append(.init("prefix", prefix)) }
            if let keyMarker { query.append(.init("key-marker", keyMarker)) }
            if let uploadIdMarker { query.append(.init("upload-id-marker", uploadIdMarker)) }
            let r = try send(Request(operation: "ListMultipartUploads", method: "GET", key: nil, query: query))
            guard let root = XMLNode.parse(r.body) else {
                throw StoreError(.invalidRequest, operation: "ListMultipartUploads", message: "unreadable response")
            }
            for u in root.all("Upload") {
                guard let key = u.value("Key"), let id = u.value("UploadId") else { continue }
                result.append(
                    MultipartUploadInfo(
                        key: key, uploadId: id,
                        initiated: S3Store.parseISODate(u.value("Initiated"))))
            }
            guard root.value("IsTruncated") == "true" else { break }
            let nextKey = root.value("NextKeyMarker")
            let nextId = root.value("NextUploadIdMarker")
            if nextKey == nil || (nextKey == keyMarker && nextId == uploadIdMarker) { break }
            keyMarker = nextKey
            uploadIdMarker = nextId
        }
        return result
    }

    /// Aborts a multipart upload, freeing its parts. An upload that no longer exists is not an error.
    public func abortMultipartUpload(key: String, uploadId: String) throws {
        do {
            _ = try send(
                Request(
                    operation: "AbortMultipartUpload", method: "DELETE", key: key,
                    query: [.init("uploadId", uploadId)]))
        } catch let e as StoreError where e.kind == .notFound {
            // NoSuchUpload: completed or aborted already.
        }
    }
}

/// The hand-off between the part reader and the upload workers.
// Unchecked: every var is guarded by `cond` (Mutex has no condition wait); `firstError` and `etags()` are
// read unlocked only after `waitForWorkers`, when no worker is left to write them.
private final class PartPipeline: @unchecked Sendable {
    private let cond = NSCondition()
    private let capacity: Int
    private var inFlight = 0
    private var queue: [(Int, Data)] = []
    private var inputClosed = false
    private var liveWorkers: Int
    private var results: [String?]
    private(set) var firstError: Error?

    init(capacity: Int, partCount: Int) {
        self.capacity = capacity
        liveWorkers = capacity
        results = Array(repeating: nil, count: partCount)
    }

    /// Waits until a buffer may be filled; false once something failed.
    func waitForSlot() -> Bool {
        cond.lock()
        defer { cond.unlock() }
        while inFlight >= capacity && firstError == nil { cond.wait() }
        if firstError != nil { return false }
        inFlight += 1
        return true
    }

    func enqueue(_ number: Int, _ data: Data) {
        cond.lock()
        queue.append((number, data))
        cond.broadcast()
        cond.unlock()
    }

    func closeInput() {
        cond.lock()
        inputClosed = true
        cond.broadcast()
        cond.unlock()
    }

    /// The next part to upload, or nil when there is nothing more to do.
    func next() -> (Int, Data)? {
        cond.lock()
        defer { cond.unlock() }
        while queue.isEmpty && !inputClosed && firstError == nil { cond.wait() }
        if firstError != nil || queue.isEmpty { return nil }
        return queue.removeFirst()
    }

    func finished(_ number: Int, etag: String) {
        cond.lock()
        results[number - 1] = etag
        inFlight -= 1
        cond.broadcast()
        cond.unlock()
    }

    func fail(_ error: Error) {
        cond.lock()
        if firstError == nil { firstError = error }
        queue.removeAll()
        cond.broadcast()
        cond.unlock()
    }

    func workerExited() {
        cond.lock()
        liveWorkers -= 1
        cond.broadcast()
        cond.unlock()
    }

    func waitForWorkers() {
        cond.lock()
        while liveWorkers > 0 { cond.wait() }
        cond.unlock()
    }

    func etags() -> [String] { results.map { $0 ?? "" } }
}

extension S3Store: IncompleteUploadCleaning {
    public func incompleteUploads(prefix: String) throws -> [(key: String, uploadId: String, initiated: Date?)] {
        try listMultipartUploads(prefix: prefix).map { ($0.key, $0.uploadId, $0.initiated) }
    }

    public func abortUpload(key: String, uploadId: String) throws {
        try abortMultipartUpload(key: key, uploadId: uploadId)
    }
}

/// Which file parts are taken, sent, and their ETags; shared by the upload threads.
// Unchecked: every var is guarded by `condition` (Mutex has no condition wait); `firstError` is read
// unlocked only after `waitForWorkers`, when no upload thread is left to write it.
final class FilePartProgress: @unchecked Sendable {
    private let condition = NSCondition()
    private var nextPart = 1
    private let partCount: Int
    private var sent: [String?]
    private var exited = 0
    private(set) var firstError: Error?

    init(partCount: Int) {
        self.partCount = partCount
        sent = Array(repeating: nil, count: partCount)
    }

    /// The next part to upload, or nil when none is left or something failed.
    func take() -> Int? {
        condition.lock()
        defer { condition.unlock() }
        guard firstError == nil, nextPart <= partCount else { return nil }
        nextPart += 1
        return nextPart - 1
    }

    func finished(_ number: Int, etag: String) {
        condition.lock()
        sent[number - 1] = etag
        condition.broadcast()
        condition.unlock()
    }

    func fail(_ error: Error) {
        condition.lock()
        if firstError == nil { firstError = error }
        condition.broadcast()
        condition.unlock()
    }

    func workerExited() {
        condition.lock()
        exited += 1
        condition.broadcast()
        condition.unlock()
    }

    func waitForWorkers(_ count: Int) {
        condition.lock()
        while exited < count { condition.wait() }
        condition.unlock()
    }

    var etags: [String] {
        condition.lock()
        defer { condition.unlock() }
        return sent.map { $0 ?? "" }
    }
}
