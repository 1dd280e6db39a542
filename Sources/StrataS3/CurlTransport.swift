import CCurl
import Foundation
import StrataCore
import StrataCrypto
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Transport settings shared by the S3 store and `CurlHTTPClient`.
public struct TransportOptions: Sendable {
    public var verifyTLS: Bool = true
    public var caBundle: String?
    public var connectTimeout: Double = 10
    public var lowSpeedLimit: Int = 1024
    public var lowSpeedTime: Int = 30
    /// Idle handles (each with its open connection) kept for reuse.
    public var maxIdleHandles: Int = 8
    /// Counts body bytes sent and received, for progress display.
    public var meter: TransferMeter?

    public init(
        verifyTLS: Bool = true, caBundle: String? = nil, connectTimeout: Double = 10,
        lowSpeedLimit: Int = 1024, lowSpeedTime: Int = 30, maxIdleHandles: Int = 8
    ) {
        self.verifyTLS = verifyTLS
        self.caBundle = caBundle
        self.connectTimeout = connectTimeout
        self.lowSpeedLimit = lowSpeedLimit
        self.lowSpeedTime = lowSpeedTime
        self.maxIdleHandles = maxIdleHandles
    }

    public init(_ c: S3Configuration) {
        self.init(
            verifyTLS: c.verifyTLS, caBundle: c.caBundle, connectTimeout: c.connectTimeout,
            lowSpeedLimit: c.lowSpeedLimit, lowSpeedTime: c.lowSpeedTime,
            maxIdleHandles: max(4, c.concurrency + 2))
        meter = c.meter
    }
}

/// Where the bytes of a request body come from.
enum TransportBody {
    case none
    case data(Data)
    /// `length` bytes of the open file `fd` from `offset`; read with pread, so it can be rewound.
    case file(fd: Int32, offset: Int64, length: Int64)

    var length: Int64 {
        switch self {
        case .none: return 0
        case .data(let d): return Int64(d.count)
        case .file(_, _, let length): return length
        }
    }
}

/// Where a successful (2xx) response body goes. Error bodies always go to memory.
enum TransportSink {
    /// In memory, refusing more than `limit` bytes.
    case memory(limit: Int)
    /// pwrite into `fd` from `offset`; with `hash`, SHA-256 is computed while writing.
    case file(fd: Int32, offset: Int64, hash: Bool)
}

struct TransportRequest {
    var method: String
    var url: String
    var headers: [(name: String, value: String)]
    var body: TransportBody = .none
    /// Hex SHA-256 the body must have. It is checked while streaming and the transfer is aborted
    /// before the last byte leaves when it differs, so a store never commits a wrong body.
    var expectedBodySHA256: String?
    var sink: TransportSink = .memory(limit: 64 << 20)
    /// Whole-transfer timeout in seconds (0: none; large transfers rely on the low-speed limit).
    var timeout: Double = 0
    /// Stop before the body when a 2xx response announces at least this many bytes: the caller
    /// then fetches it another way (parallel ranges). The response comes back with
    /// `stoppedForSize` and its headers.
    var stopIfLargerThan: Int64?
}

struct TransportResponse {
    var status: Int
    /// Lower-cased names; repeated headers joined with ",".
    var headers: [String: String]
    /// The body for a memory sink or any non-2xx status.
    var body: Data
    var bytesWritten: Int64
    /// Hex SHA-256 of what a hashing file sink wrote.
    var sha256: String?
    /// The body was not read: it is at least `stopIfLargerThan` bytes.
    var stoppedForSize = false
    /// New connections this transfer opened (0 when it reused a pooled one).
    var connectionsOpened = 0
}

/// A request that got no (complete) response.
struct TransportError: Error, CustomStringConvertible {
    enum Kind { case transient, configuration, io, integrity }
    var kind: Kind
    var message: String
    /// True when the server may have received the whole request and acted on it: a write can have
    /// happened even though no response arrived.
    var ambiguous: Bool
    var description: String { message }
}

/// Calls `curl_global_init` once, before any handle exists (required before threads use curl).
private let curlGlobalInit: Void = {
    let rc = curl_global_init(Int(CURL_GLOBAL_ALL))
    precondition(rc == CURLE_OK, "curl_global_init failed: \(rc)")
}()

/// One libcurl easy handle, owned by this object alone and cleaned up in `deinit`. The handle
/// keeps its connection open between requests, which is why handles are pooled.
///
/// The `CURL*` and the error buffer are C allocations that never move; the handle holds a raw
/// pointer to the error buffer, so the buffer is allocated here and freed only after the handle.
// Unchecked: a curl easy handle is used by one thread at a time; the pool gives each to one caller and
// takes it back after that caller's transfer. Sendable only so the pool's Mutex can hold it.
final class CurlEasy: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>

    init() {
        _ = curlGlobalInit
        guard let h = curl_easy_init() else { fatalError("curl_easy_init failed (out of memory)") }
        handle = h
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// Clears every option (the connection cache stays) and sets the ones every request uses.
    func reset(_ options: TransportOptions) {
        curl_easy_reset(handle)
        errorBuffer[0] = 0
        _ = strata_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer))
        setLong(CURLOPT_NOSIGNAL, 1)
        setLong(CURLOPT_FOLLOWLOCATION, 0)
        _ = strata_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https")
        // Keys may contain "." and ".." segments: send the path exactly as signed.
        setLong(CURLOPT_PATH_AS_IS, 1)
        setLong(CURLOPT_TCP_KEEPALIVE, 1)
        // Larger buffers than the 16/64 KiB defaults: fewer callbacks (and preads) per megabyte.
        setLong(CURLOPT_BUFFERSIZE, 256 << 10)
        setLong(CURLOPT_UPLOAD_BUFFERSIZE, 512 << 10)
        setLong(CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1))
        setLong(CURLOPT_CONNECTTIMEOUT_MS, Int(options.connectTimeout * 1000))
        setLong(CURLOPT_LOW_SPEED_LIMIT, options.lowSpeedLimit)
        setLong(CURLOPT_LOW_SPEED_TIME, options.lowSpeedTime)
        setLong(CURLOPT_SSL_VERIFYPEER, options.verifyTLS ? 1 : 0)
        setLong(CURLOPT_SSL_VERIFYHOST, options.verifyTLS ? 2 : 0)
        if let ca = options.caBundle { _ = strata_curl_setopt_string(handle, CURLOPT_CAINFO, ca) }
    }

    func setLong(_ option: CURLoption, _ value: Int) {
        _ = strata_curl_setopt_long(handle, option, value)
    }

    var errorMessage: String { String(cString: errorBuffer) }
}

/// A small pool of easy handles so consecutive requests reuse open connections.
final class CurlHandlePool: Sendable {
    private let idle = Mutex<[CurlEasy]>([])
    let options: TransportOptions

    init(options: TransportOptions) { self.options = options }

    func withHandle<T>(_ body: (CurlEasy) throws -> T) rethrows -> T {
        let easy = idle.withLock { $0.popLast() } ?? CurlEasy()
        defer {
            idle.withLock {
                if $0.count < options.maxIdleHandles { $0.append(easy) }
            }
        }
        return try body(easy)
    }

    func perform(_ request: TransportRequest) throws -> TransportResponse {
        try withHandle { try CurlTransfer.perform(request, on: $0, options: options) }
    }
}

/// The state of one transfer, reached from curl's C callbacks through their userdata pointer.
private final class CurlTransfer {
    let body: TransportBody
    let sink: TransportSink
    let expectedSHA256: String?
    var readPosition: Int64 = 0
    var readDigest: Digest?
    var bodyFullyRead = false
    var bodyMismatch: String?
    var readFailure: String?

    var status = 0
    var headers: [String: String] = [:]
    var memory = Data()
    var errorBody = Data()
    var written: Int64 = 0
    var writeDigest: Digest?
    var writeFailure: String?
    let stopIfLargerThan: Int64?
    var stoppedForSize = false
    var meter: TransferMeter?

    init(_ r: TransportRequest) {
        body = r.body
        sink = r.sink
        stopIfLargerThan = r.stopIfLargerThan
        expectedSHA256 = r.expectedBodySHA256?.lowercased()
        if expectedSHA256 != nil { readDigest = Digest(.sha256) }
    }

    var isSuccess: Bool { (200..<300).contains(status) }

    // MARK: request body

    func read(into buffer: UnsafeMutablePointer<CChar>, max: Int) -> Int {
        let total = body.length
        let n = Int(Swift.min(Int64(max), total - readPosition))
        if n <= 0 {
            bodyFullyRead = true
            return 0
        }
        switch body {
        case .none:
            return 0
        case .data(let d):
            d.withUnsafeBytes { raw in
                let start = Int(readPosition)
                memcpy(buffer, raw.baseAddress! + start, n)
            }
        case .file(let fd, let offset, _):
            var got = 0
            while got < n {
                let r = pread(fd, buffer + got, n - got, off_t(offset + readPosition + Int64(got)))
                if r < 0 {
                    if errno == EINTR { continue }
                    readFailure = "cannot read the source file: \(String(cString: strerror(errno)))"
                    return Int(CURL_READFUNC_ABORT)
                }
                if r == 0 {
                    readFailure = "the source file is shorter than expected (it changed during the upload)"
                    return Int(CURL_READFUNC_ABORT)
                }
                got += r
            }
        }
        if let digest = readDigest, let expected = expectedSHA256 {
            digest.update(UnsafeRawBufferPointer(start: buffer, count: n))
            if readPosition + Int64(n) == total {
                // The last bytes: check before handing them to curl, so a body that does not match
                // its signed hash never reaches the server complete.
                let actual = digest.finalizeHex()
                readDigest = nil
                if actual != expected {
                    bodyMismatch = "the body's SHA-256 is \(actual), expected \(expected)"
                    return Int(CURL_READFUNC_ABORT)
                }
            }
        }
        readPosition += Int64(n)
        meter?.add(Int64(n))
        if readPosition == total { bodyFullyRead = true }
        return n
    }

    func seek(to offset: Int64, origin: Int32) -> Int32 {
        // curl rewinds to the start (redirects, auth, a refused Expect: 100-continue). Only that is
        // supported, so the running digest can start over.
        guard origin == SEEK_SET, offset == 0 else { return 2 }  // CURL_SEEKFUNC_CANTSEEK
        meter?.add(-readPosition)
        readPosition = 0
        bodyFullyRead = false
        if expectedSHA256 != nil { readDigest = Digest(.sha256) }
        return 0  // CURL_SEEKFUNC_OK
    }

    // MARK: response

    func header(_ line: UnsafeRawBufferPointer) {
        // Strip CR LF on bytes: "\r\n" is one Character in Swift, so hasSuffix("\n") misses it.
        var count = line.count
        while count > 0 && (line[count - 1] == 0x0a || line[count - 1] == 0x0d) { count -= 1 }
        let bytes = UnsafeRawBufferPointer(rebasing: line[0..<count])
        guard let text = String(bytes: bytes, encoding: .utf8) ?? String(bytes: bytes, encoding: .isoLatin1) else {
            return
        }
        if text.isEmpty {
            // End of this response's headers.
            if let limit = stopIfLargerThan, isSuccess, let length = headers["content-length"].flatMap({ Int64($0) }),
                length >= limit
            {
                stoppedForSize = true
            }
            return
        }
        if text.hasPrefix("HTTP/") {
            // A new response (after 100 Continue): keep only the final one's headers.
            let parts = text.split(separator: " ", maxSplits: 2)
            status = parts.count >= 2 ? Int(parts[1]) ?? 0 : 0
            headers = [:]
            return
        }
        guard let colon = text.firstIndex(of: ":") else { return }
        let name = text[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
        let value = text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        if let old = headers[name] { headers[name] = old + "," + value } else { headers[name] = value }
    }

    func write(_ data: UnsafeRawBufferPointer) -> Int {
        if stoppedForSize { return 0 }
        guard isSuccess else {
            if errorBody.count < 1 << 20 { errorBody.append(contentsOf: data) }
            return data.count
        }
        switch sink {
        case .memory(let limit):
            if memory.count + data.count > limit {
                writeFailure = "the response is larger than \(limit) bytes"
                return 0
            }
            memory.append(contentsOf: data)
        case .file(let fd, let offset, let hash):
            if hash {
                if writeDigest == nil { writeDigest = Digest(.sha256) }
                writeDigest!.update(data)
            }
            var done = 0
            while done < data.count {
                let w = pwrite(fd, data.baseAddress! + done, data.count - done, off_t(offset + written + Int64(done)))
                if w < 0 {
                    if errno == EINTR { continue }
                    writeFailure = "cannot write the destination file: \(String(cString: strerror(errno)))"
                    return 0
                }
                done += w
            }
        }
        written += Int64(data.count)
        if case .file = sink { meter?.add(Int64(data.count)) }
        return data.count
    }

    /// The hex SHA-256 of what a hashing file sink wrote (of nothing, when the body was empty).
    func finalDigest() -> String? {
        guard case .file(_, _, true) = sink else { return nil }
        return writeDigest?.finalizeHex() ?? SHA256.emptyHex
    }

    // MARK: perform

    static func perform(_ request: TransportRequest, on easy: CurlEasy, options: TransportOptions) throws
        -> TransportResponse
    {
        easy.reset(options)
        let h = easy.handle
        let transfer = CurlTransfer(request)
        transfer.meter = options.meter
        _ = strata_curl_setopt_string(h, CURLOPT_URL, request.url)
        if request.timeout > 0 { easy.setLong(CURLOPT_TIMEOUT_MS, Int(request.timeout * 1000)) }

        var list: UnsafeMutablePointer<curl_slist>? = nil
        defer { curl_slist_free_all(list) }
        for (name, value) in request.headers {
            list = curl_slist_append(list, value.isEmpty ? "\(name);" : "\(name): \(value)")
        }

        let hasBody: Bool
        switch request.body {
        case .none: hasBody = request.method == "PUT" || request.method == "POST"
        default: hasBody = true
        }
        switch request.method {
        case "GET": easy.setLong(CURLOPT_HTTPGET, 1)
        case "HEAD": easy.setLong(CURLOPT_NOBODY, 1)
        default:
            if hasBody {
                // UPLOAD streams from the read callback with a known length; CUSTOMREQUEST turns
                // its PUT into POST where needed.
                easy.setLong(CURLOPT_UPLOAD, 1)
                _ = strata_curl_setopt_off(h, CURLOPT_INFILESIZE_LARGE, curl_off_t(request.body.length))
            }
            _ = strata_curl_setopt_string(h, CURLOPT_CUSTOMREQUEST, request.method)
        }
        if request.body.length < 1 << 20 {
            // Small bodies: no Expect: 100-continue round trip.
            list = curl_slist_append(list, "Expect:")
        }
        _ = strata_curl_setopt_slist(h, CURLOPT_HTTPHEADER, list)

        let userdata = Unmanaged.passUnretained(transfer).toOpaque()
        _ = strata_curl_setopt_pointer(h, CURLOPT_READDATA, userdata)
        _ = strata_curl_setopt_pointer(h, CURLOPT_SEEKDATA, userdata)
        _ = strata_curl_setopt_pointer(h, CURLOPT_HEADERDATA, userdata)
        _ = strata_curl_setopt_pointer(h, CURLOPT_WRITEDATA, userdata)
        _ = strata_curl_setopt_data_cb(h, CURLOPT_READFUNCTION) { buffer, size, count, ud in
            let t = Unmanaged<CurlTransfer>.fromOpaque(ud!).takeUnretainedValue()
            return t.read(into: buffer!, max: size * count)
        }
        _ = strata_curl_setopt_seek_cb(h, CURLOPT_SEEKFUNCTION) { ud, offset, origin in
            let t = Unmanaged<CurlTransfer>.fromOpaque(ud!).takeUnretainedValue()
            return t.seek(to: Int64(offset), origin: origin)
        }
        _ = strata_curl_setopt_data_cb(h, CURLOPT_HEADERFUNCTION) { buffer, size, count, ud in
            let t = Unmanaged<CurlTransfer>.fromOpaque(ud!).takeUnretainedValue()
            t.header(UnsafeRawBufferPointer(start: buffer, count: size * count))
            return size * count
        }
        _ = strata_curl_setopt_data_cb(h, CURLOPT_WRITEFUNCTION) { buffer, size, count, ud in
            let t = Unmanaged<CurlTransfer>.fromOpaque(ud!).takeUnretainedValue()
            return t.write(UnsafeRawBufferPointer(start: buffer, count: size * count))
        }

        let rc = withExtendedLifetime(transfer) { curl_easy_perform(h) }
        if rc == CURLE_WRITE_ERROR && transfer.stoppedForSize {
            var r = TransportResponse(status: transfer.status, headers: transfer.headers, body: Data(), bytesWritten: 0)
            r.stoppedForSize = true
            return r
        }
        if rc != CURLE_OK {
            throw transfer.failure(rc, easy: easy, request: request)
        }
        var code = 0
        _ = strata_curl_getinfo_long(h, CURLINFO_RESPONSE_CODE, &code)
        var connects = 0
        _ = strata_curl_getinfo_long(h, CURLINFO_NUM_CONNECTS, &connects)
        let status = code != 0 ? code : transfer.status
        let ok = (200..<300).contains(status)
        var response = TransportResponse(
            status: status, headers: transfer.headers,
            body: ok ? transfer.memory : transfer.errorBody,
            bytesWritten: ok ? transfer.written : 0,
            sha256: ok ? transfer.finalDigest() : nil)
        response.connectionsOpened = connects
        return response
    }

    private func failure(_ rc: CURLcode, easy: CurlEasy, request: TransportRequest) -> TransportError {
        let detail = easy.errorMessage.isEmpty ? String(cString: curl_easy_strerror(rc)) : easy.errorMessage
        if let bodyMismatch {
            return TransportError(kind: .integrity, message: bodyMismatch, ambiguous: false)
        }
        if let readFailure { return TransportError(kind: .io, message: readFailure, ambiguous: false) }
        if let writeFailure { return TransportError(kind: .io, message: writeFailure, ambiguous: false) }
        switch rc {
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT:
            return TransportError(kind: .transient, message: "cannot connect: \(detail)", ambiguous: false)
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE,
            CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH:
            return TransportError(kind: .configuration, message: "TLS failed: \(detail)", ambiguous: false)
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL:
            return TransportError(kind: .configuration, message: "bad URL: \(detail)", ambiguous: false)
        default:
            // Timeout, reset, a response cut short: the server may have acted on the request
            // if all of it was sent.
            let sentAll = bodyFullyRead || request.body.length == 0
            return TransportError(kind: .transient, message: detail, ambiguous: sentAll)
        }
    }
}
