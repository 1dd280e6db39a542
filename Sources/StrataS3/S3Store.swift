import Foundation
import Logging
import StrataCore
import StrataCrypto
import Synchronization

/// An `ObjectStore` on S3 or an S3-compatible server (MinIO, Ceph RGW, SeaweedFS, R2).
///
/// - Every request is signed with SigV4 and the real SHA-256 of its body.
/// - Objects carry their SHA-256 as `x-amz-meta-sha256`; whole downloads are verified against it.
/// - Writes carry a unique `x-amz-meta-strata-write-id`, so a conditional write retried after an
///   ambiguous failure (the first attempt may have won) is resolved by reading the key back
///   instead of reporting a false conflict.
/// - Large files go up in parts and come down in parallel ranges, in bounded memory.
///
/// Thread-safe: one store may serve many threads; connections are pooled.
public final class S3Store: ObjectStore, Sendable {
    public let configuration: S3Configuration
    let logger: Logger
    let signer: SigV4Signer
    let pool: CurlHandlePool
    let scheme: String
    /// Host (with a non-default port) requests go to.
    let host: String
    /// Path prefix before the key: "/bucket" in path style, "" virtual-hosted.
    let basePath: String

    static let sha256MetaHeader = "x-amz-meta-sha256"
    static let writeIdMetaHeader = "x-amz-meta-strata-write-id"

    private let bucketKnownToExist = Mutex(false)
    private let clockOffset = Mutex<TimeInterval>(0)

    public var location: String {
        if let endpoint = configuration.endpoint { return "s3://\(configuration.bucket) at \(endpoint)" }
        return "s3://\(configuration.bucket)"
    }

    public init(
        configuration: S3Configuration,
        logger: Logger = Logger(
            label: "strata.s3",
            factory: { _ in
                SwiftLogNoOpLogHandler()
            })
    ) throws {
        self.configuration = configuration
        self.logger = logger
        signer = SigV4Signer(region: configuration.region, service: "s3")
        pool = CurlHandlePool(options: TransportOptions(configuration))
        let bucket = configuration.bucket
        guard !bucket.isEmpty, !bucket.contains("/") else {
            throw StoreError(
                .configuration, operation: "OpenStore", message: "invalid bucket name \"\(bucket)\"",
                hint: "give a bucket name without \"/\", e.g. s3://my-bucket")
        }
        var pathStyle = configuration.usesPathStyle
        if let endpoint = configuration.endpoint {
            guard let url = URLComponents(string: endpoint), let s = url.scheme?.lowercased(),
                s == "http" || s == "https", let h = url.host, !h.isEmpty
            else {
                throw StoreError(
                    .configuration, operation: "OpenStore",
                    message: "invalid endpoint \"\(endpoint)\"",
                    hint: "give a URL like http://127.0.0.1:8333 or https://minio.example.com")
            }
            scheme = s
            var hostPort = h.contains(":") ? "[\(h)]" : h
            if let port = url.port, !(s == "http" && port == 80) && !(s == "https" && port == 443) {
                hostPort += ":\(port)"
            }
            let prefix = url.path.hasSuffix("/") ? String(url.path.dropLast()) : url.path
            if pathStyle {
                host = hostPort
                basePath = prefix + "/" + bucket
            } else {
                host = bucket + "." + hostPort
                basePath = prefix
            }
        } else {
            scheme = "https"
            // Bucket names with dots break TLS on virtual-hosted names: use path style for them.
            if bucket.contains(".") { pathStyle = true }
            let regional = "s3.\(configuration.region).amazonaws.com"
            host = pathStyle ? regional : "\(bucket).\(regional)"
            basePath = pathStyle ? "/" + bucket : ""
        }
    }

    // MARK: test seams

    // Network faults are injected by tests outside the store (a scripted proxy, or the
    // FaultInjectingStore decorator), never by hooks in here.

    /// Signs requests as if the clock were off by `seconds` (to test clock-skew handling).
    func setClockOffset(_ seconds: TimeInterval) {
        clockOffset.withLock { $0 = seconds }
    }

    func now() -> Date {
        Date().addingTimeInterval(clockOffset.withLock { $0 })
    }

    // MARK: requests

    struct Request {
        var operation: String
        var method: String
        var key: String?
        var query: [SigV4Signer.QueryItem] = []
        var headers: [(name: String, value: String)] = []
        var body: TransportBody = .none
        /// Hex SHA-256 of the body (computed from `.data` when nil).
        var bodySHA256: String?
        /// Re-hash a file body while it streams and abort on a mismatch. Multipart parts turn it
        /// off: their file is checked for changes as a whole before the upload completes.
        var verifyFileBody = true
        /// Called before each attempt: where the response body goes (files are reset here).
        var sink: () throws -> TransportSink = { .memory(limit: 64 << 20) }
        var stopIfLargerThan: Int64?
        /// A conditional write: 409 means the condition lost.
        var conditional = false
        /// CompleteMultipartUpload and CopyObject can answer 200 with an error document.
        var errorMayComeWith200 = false
        /// Status codes the caller handles itself (not turned into errors), e.g. 404 for HEAD.
        var accept: Set<Int> = []
    }

    /// Records what happened across the attempts of one request.
    final class AttemptLog {
        /// An attempt may have been carried out by the server although it failed for us.
        var ambiguous = false
        var attempts = 0
    }

    func url(forKey key: String?, query: [SigV4Signer.QueryItem]) -> (url: String, path: String) {
        let path = basePath + "/" + (key ?? "")
        let q = SigV4Signer.canonicalQuery(query)
        return ("\(scheme)://\(host)\(signer.canonicalURI(path))" + (q.isEmpty ? "" : "?" + q), path)
    }

    func credentials(_ operation: String) throws -> Credentials {
        do {
            return try configuration.credentials.credentials()
        } catch let e as StoreError {
            throw e
        } catch {
            throw StoreError(
                .configuration, operation: operation, message: "no credentials: \(error)",
                hint: "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile")
        }
    }

    func errorMapper(_ creds: Credentials?) -> S3ErrorMapper {
        S3ErrorMapper(
            bucket: configuration.bucket, region: configuration.region,
            credentialsSource: configuration.credentials.source, accessKeyId: creds?.accessKeyId)
    }

    /// Sends `request` with retries per the retry policy and returns a response whose status is
    /// 2xx or in `request.accept`; anything else is thrown as a `StoreError`.
    func send(_ request: Request, log: AttemptLog = AttemptLog()) throws -> TransportResponse {
        if let key = request.key { try validate(key: key, operation: request.operation) }
        let policy = configuration.retry
        let started = Date()
        var payloadHash = request.bodySHA256
        if payloadHash == nil {
            switch request.body {
            case .none: payloadHash = SHA256.emptyHex
            case .data(let d): payloadHash = SHA256.hex(d)
            case .file: preconditionFailure("a file body needs its SHA-256")
            }
        }
        let isWrite = request.method != "GET" && request.method != "HEAD"
        var attempt = 0
        while true {
            attempt += 1
            log.attempts = attempt
            let creds = try credentials(request.operation)
            let (url, path) = self.url(forKey: request.key, query: request.query)
            // Host is set explicitly so curl sends exactly the signed value.
            var headers = [("Host", host)] + request.headers
            let signed = signer.sign(
                SigV4Signer.Request(
                    method: request.method, path: path, query: request.query,
                    headers: headers.map { SigV4Signer.Header($0.name, $0.value) }),
                payloadHash: payloadHash!, credentials: creds, date: now())
            headers.append(contentsOf: signed.headersToAdd.map { ($0.name, $0.value) })

            var transport = TransportRequest(method: request.method, url: url, headers: headers)
            transport.body = request.body
            if case .file = request.body, request.verifyFileBody {
                // A file can change under us: check it while it streams (Data cannot).
                transport.expectedBodySHA256 = request.bodySHA256
            }
            transport.sink = try request.sink()
            transport.stopIfLargerThan = request.stopIfLargerThan

            let t0 = Date()
            let failure: StoreError
            do {
                let response = try pool.perform(transport)
                let ms = Int(Date().timeIntervalSince(t0) * 1000)
                logger.debug(
                    "\(request.operation) \(request.method) \(Redaction.url(url)) -> \(response.status)",
                    metadata: ["ms": "\(ms)", "attempt": "\(attempt)"])
                let ok = (200..<300).contains(response.status)
                if ok && request.errorMayComeWith200 && !response.stoppedForSize
                    && S3ErrorBody.parse(response.body) != nil
                {
                    // 200 with an <Error> document: mapped by its code (InternalError: retried).
                    failure = errorMapper(creds).error(
                        operation: request.operation, key: request.key,
                        status: response.status, headers: response.headers, body: response.body,
                        conditional: request.conditional)
                } else if ok || request.accept.contains(response.status) {
                    return response
                } else {
                    failure = errorMapper(creds).error(
                        operation: request.operation, key: request.key,
                        status: response.status, headers: response.headers,
                        body: response.body, conditional: request.conditional)
                }
                if isWrite && response.status >= 500 { log.ambiguous = true }
            } catch let e as TransportError {
                if e.ambiguous && isWrite { log.ambiguous = true }
                let kind: StoreError.Kind
                switch e.kind {
                case .transient: kind = .transient
                case .configuration: kind = .configuration
                case .io: kind = .io
                case .integrity: kind = .integrity
                }
                let hint: String?
                switch kind {
                case .configuration: hint = "check the endpoint URL and the TLS settings (CA bundle, verifyTLS)"
                case .transient: hint = "check that the endpoint \(scheme)://\(host) is reachable"
                case .integrity: hint = "the source changed while it was uploaded; upload it again"
                default: hint = nil
                }
                failure = StoreError(
                    kind, operation: request.operation, key: request.key, message: e.message,
                    hint: hint)
                logger.debug(
                    "\(request.operation) \(request.method) \(Redaction.url(url)) failed: \(e.message)",
                    metadata: ["attempt": "\(attempt)"])
            }
            guard failure.isRetryable, attempt < policy.maxAttempts else { throw failure }
            let delay = policy.delay(afterAttempt: attempt - 1)
            guard Date().timeIntervalSince(started) + delay < policy.maxTotalTime else { throw failure }
            logger.notice(
                "retrying \(request.operation) after: \(failure.message)",
                metadata: ["attempt": "\(attempt)", "delay": "\(String(format: "%.2f", delay))"])
            if delay > 0 { Thread.sleep(forTimeInterval: delay) }
        }
    }

    func validate(key: String, operation: String) throws {
        if key.isEmpty || key.utf8.count > 1024 {
            throw StoreError(
                .invalidRequest, operation: operation, key: key,
                message: key.isEmpty ? "the key is empty" : "the key is longer than 1024 bytes",
                hint: "S3 keys are 1 to 1024 bytes of UTF-8")
        }
    }

    // MARK: responses

    static let httpDateFormatter: DateFormatter = {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return f
    }()
    private static let dateLock = NSLock()

    static func parseHTTPDate(_ s: String?) -> Date? {
        guard let s else { return nil }
        dateLock.lock()
        defer { dateLock.unlock() }
        return httpDateFormatter.date(from: s)
    }

    /// `2024-05-01T12:34:56.789Z` (fraction optional), as S3 listings give it. Parsed by hand:
    /// a listing page has up to 1000 of them and a formatter per call is slow.
    static func parseISODate(_ s: String?) -> Date? {
        guard let s else { return nil }
        let u = Array(s.utf8)
        guard u.count >= 20, u[4] == 0x2d, u[7] == 0x2d, u[10] == 0x54, u[13] == 0x3a, u[16] == 0x3a,
            u.last == 0x5a
        else { return nil }
        func num(_ r: Range<Int>) -> Int? {
            var v = 0
            for i in r {
                guard u[i] >= 0x30 && u[i] <= 0x39 else { return nil }
                v = v * 10 + Int(u[i] - 0x30)
            }
            return v
        }
        guard let y = num(0..<4), let mo = num(5..<7), let d = num(8..<10), let h = num(11..<13),
            let mi = num(14..<16), let sec = num(17..<19)
        else { return nil }
        var fraction = 0.0
        if u[19] == 0x2e {
            var scale = 0.1
            for i in 20..<(u.count - 1) {
                guard u[i] >= 0x30 && u[i] <= 0x39 else { return nil }
                fraction += Double(u[i] - 0x30) * scale
                scale /= 10
            }
        } else if u.count != 20 {
            return nil
        }
        var t = tm()
        t.tm_year = Int32(y - 1900)
        t.tm_mon = Int32(mo - 1)
        t.tm_mday = Int32(d)
        t.tm_hour = Int32(h)
        t.tm_min = Int32(mi)
        t.tm_sec = Int32(sec)
        return Date(timeIntervalSince1970: Double(timegm(&t)) + fraction)
    }

    /// ObjectInfo from the headers of a HEAD or GET (whole size taken from Content-Range when
    /// the response is partial).
    func info(key: String, headers: [String: String]) -> ObjectInfo {
        var size = Int64(headers["content-length"] ?? "") ?? 0
        if let range = headers["content-range"], let slash = range.lastIndex(of: "/"),
            let total = Int64(range[range.index(after: slash)...])
        {
            size = total
        }
        let sha = headers[S3Store.sha256MetaHeader].map { $0.lowercased() }
        return ObjectInfo(
            key: key, size: size, etag: headers["etag"] ?? "",
            lastModified: S3Store.parseHTTPDate(headers["last-modified"]),
            sha256: sha.flatMap { S3Store.isHexSHA256($0) ? $0 : nil })
    }

    static func isHexSHA256(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    static func newWriteId() -> String { Hex.encode(SecureRandom.bytes(16)) }

    /// Confirms that the bucket exists, once per store: a HEAD answers 404 without a body, so a
    /// missing bucket would otherwise look like a missing key.
    func checkBucketAfter404(operation: String, key: String) throws {
        if bucketKnownToExist.withLock({ $0 }) { return }
        let r = try send(Request(operation: "HeadBucket", method: "HEAD", key: nil, accept: [404]))
        if r.status == 404 {
            throw errorMapper(nil).error(
                operation: operation, key: key, status: 404, headers: r.headers,
                body: Data(
                    "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>"
                        .utf8))
        }
        bucketKnownToExist.withLock { $0 = true }
    }

    func markBucketExists() {
        bucketKnownToExist.withLock { $0 = true }
    }
}
