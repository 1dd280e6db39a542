import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A scripted HTTP/1.1 proxy on loopback in front of an S3 server (SeaweedFS), for the faults
/// only the network can produce: a response lost after the server carried out the request (which
/// libcurl may silently re-send on a fresh connection), a connection closed before the request
/// was forwarded, or a canned answer (503 SlowDown, 500 InternalError, a 200 with an error body).
///
/// Point an `S3Store` at `endpoint` instead of the server's. Every request is offered to `rule`,
/// which returns what to do with it; the default forwards everything. Signatures stay valid: the
/// proxy forwards the request bytes unchanged (the signed Host is the proxy's, as the client sent).
/// It removes only `Expect: 100-continue`, answering the interim 100 itself.
public final class HTTPFaultProxy: Sendable {
    /// One request as the proxy saw it.
    public struct Request: Sendable, CustomStringConvertible {
        public var method: String
        /// Path without the query, percent-encoded as sent.
        public var path: String
        /// Query parameters (names and raw values as sent).
        public var query: [String: String]
        /// Header names in lower case.
        public var headers: [String: String]
        public var bodyLength: Int
        /// The S3 operation this request is (PutObject, GetObject, HeadObject, DeleteObject,
        /// CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload,
        /// ListMultipartUploads, ListObjectsV2, DeleteObjects, CreateBucket, HeadBucket), or
        /// "METHOD path" when not recognised.
        public var operation: String
        /// How many requests of this operation the proxy had seen before, plus one.
        public var sequence: Int
        public var description: String { "\(operation) #\(sequence) \(method) \(path)" }

        /// The object key of a path-style request to `bucket`, percent-decoded.
        public func key(bucket: String) -> String? {
            let p = "/" + bucket + "/"
            guard path.hasPrefix(p) else { return nil }
            return String(path.dropFirst(p.count)).removingPercentEncoding
        }
    }

    public enum Action: Sendable {
        /// Forward the request and its answer.
        case forward
        /// Forward the request, read the server's answer, then close the client connection
        /// without sending it: the request happened, the client cannot know.
        case dropResponse
        /// Close the client connection before forwarding anything: the request did not happen.
        case closeBeforeForward
        /// Answer with this status and body without forwarding.
        case respond(status: Int, body: String)
        /// Answer with an S3 error document of this status and code without forwarding.
        case s3Error(status: Int, code: String)
        /// Forward, then send the server's headers and only the first half of its body, and close:
        /// a read that breaks mid-body.
        case truncateResponse
    }

    /// One request and what the proxy did with it (the server's status when forwarded).
    public struct Entry: Sendable {
        public var request: Request
        public var action: Action
        public var upstreamStatus: Int?
    }

    public let port: Int
    public var endpoint: String { "http://127.0.0.1:\(port)" }
    private let upstreamHost: String
    private let upstreamPort: Int
    private let listenFd: Int32
    private struct State {
        var _rule: @Sendable (Request) -> Action = { _ in .forward }
        var _log: [Entry] = []
        var sequences: [String: Int] = [:]
        var stopped = false
        var openFds: Set<Int32> = []
    }
    private let state = Mutex(State())

    /// Listens on a free loopback port and forwards to `upstream` (e.g. "http://127.0.0.1:8333").
    public init(upstream: String) throws {
        guard let u = URLComponents(string: upstream), let h = u.host, let p = u.port, u.scheme == "http" else {
            throw ProxyError("upstream \(upstream) is not an http://host:port URL")
        }
        upstreamHost = h
        upstreamPort = p
        let listenFd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listenFd >= 0 else { throw ProxyError("socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(listenFd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listenFd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(listenFd, 64) == 0 else {
            close(listenFd)
            throw ProxyError("bind/listen on loopback: errno \(errno)")
        }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listenFd, $0, &len) }
        }
        port = Int(UInt16(bigEndian: addr.sin_port))
        self.listenFd = listenFd
        let t = Thread { [self] in acceptLoop() }
        t.start()
    }

    deinit { stop() }

    /// What to do with each request. Called on the connection's thread, before forwarding.
    public var rule: @Sendable (Request) -> Action {
        get { locked { $0._rule } }
        set { locked { $0._rule = newValue } }
    }

    /// Every request seen, in order.
    public var log: [Entry] { locked { $0._log } }

    /// Requests of `operation` seen so far.
    public func requests(_ operation: String) -> [Request] {
        log.map(\.request).filter { $0.operation == operation }
    }

    public func resetLog() {
        locked {
            $0._log.removeAll()
            $0.sequences.removeAll()
        }
    }

    /// Stops listening and closes every connection.
    public func stop() {
        // Only once: a second close could close a descriptor number reused by another socket.
        // Connections are shut down under the lock, so none is closed (and its number reused) meanwhile.
        let first: Bool = locked {
            if $0.stopped { return false }
            $0.stopped = true
            for fd in $0.openFds { shutdown(fd, Int32(SHUT_RDWR)) }
            return true
        }
        guard first else { return }
        // accept() then fails and the accept thread closes the socket: closing it here could let
        // that thread accept on another socket that got the same descriptor number.
        shutdown(listenFd, Int32(SHUT_RDWR))
    }

    // MARK: connections

    private func acceptLoop() {
        defer { close(listenFd) }
        while true {
            let fd = accept(listenFd, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                return
            }
            let ok: Bool = locked {
                if $0.stopped { return false }
                $0.openFds.insert(fd)
                return true
            }
            guard ok else {
                close(fd)
                return
            }
            let t = Thread { [self] in
                serve(client: Conn(fd))
                locked {
                    _ = $0.openFds.remove(fd)
                    close(fd)
                }
            }
            t.start()
        }
    }

    private func serve(client: Conn) {
        var upstream: Conn?
        defer {
            if let u = upstream {
                locked {
                    _ = $0.openFds.remove(u.fd)
                    close(u.fd)
                }
            }
        }
        while let head = client.readHead() {
            var lines = head.components(separatedBy: "\r\n")
            let start = lines.removeFirst().split(separator: " ")
            guard start.count >= 2 else { return }
            var headers: [String: String] = [:]
            var forwardLines: [String] = []
            for line in lines where !line.isEmpty {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let name = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                headers[name] = value
                if name == "expect" { continue }
                forwardLines.append(line)
            }
            let method = String(start[0])
            let target = String(start[1])
            let length = Int(headers["content-length"] ?? "0") ?? 0
            if headers["expect"]?.lowercased() == "100-continue" {
                guard client.write(Data("HTTP/1.1 100 Continue\r\n\r\n".utf8)) else { return }
            }
            guard let body = client.read(exactly: length) else { return }
            var request = Self.describe(method: method, target: target, headers: headers, bodyLength: length)
            let operation = request.operation
            request.sequence = locked {
                $0.sequences[operation, default: 0] += 1
                return $0.sequences[operation]!
            }
            let action = rule(request)
            // Logged before anything is sent, so a test sees every request its client made.
            let entry = Entry(request: request, action: action, upstreamStatus: nil)
            let index: Int = locked {
                $0._log.append(entry)
                return $0._log.count - 1
            }
            switch action {
            case .closeBeforeForward:
                return
            case .respond(let status, let text):
                guard client.write(Self.response(status: status, body: text)) else { return }
                continue
            case .s3Error(let status, let code):
                let text =
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>\(code)</Code>"
                    + "<Message>injected by the test proxy</Message><RequestId>proxy</RequestId></Error>"
                guard client.write(Self.response(status: status, body: text)) else { return }
                continue
            case .forward, .dropResponse, .truncateResponse:
                break
            }
            if upstream == nil {
                guard let u = connectUpstream() else { return }
                upstream = u
            }
            let forwarded =
                ([String(start.joined(separator: " "))] + forwardLines).joined(separator: "\r\n")
                + "\r\n\r\n"
            guard upstream!.write(Data(forwarded.utf8) + body),
                let (raw, status, closeAfter, headLength) = readResponse(upstream!, isHead: method == "HEAD")
            else { return }
            locked { if index < $0._log.count { $0._log[index].upstreamStatus = status } }
            switch action {
            case .dropResponse:
                return
            case .truncateResponse:
                _ = client.write(raw.prefix(headLength + (raw.count - headLength) / 2))
                return
            default:
                guard client.write(raw), !closeAfter else { return }
            }
        }
    }

    /// Reads one complete response (interim 1xx answers included) and returns its bytes.
    private func readResponse(_ conn: Conn, isHead: Bool) -> (Data, Int, Bool, Int)? {
        var raw = Data()
        while true {
            guard let head = conn.readHead() else { return nil }
            raw += Data((head + "\r\n\r\n").utf8)
            let lines = head.components(separatedBy: "\r\n")
            let parts = lines[0].split(separator: " ")
            guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
            if (100..<200).contains(status) { continue }
            var headers: [String: String] = [:]
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...]
                    .trimmingCharacters(in: .whitespaces)
            }
            let closeAfter = headers["connection"]?.lowercased() == "close"
            let headLength = raw.count
            if isHead || status == 204 || status == 304 { return (raw, status, closeAfter, headLength) }
            if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
                while true {
                    guard let sizeLine = conn.readLine() else { return nil }
                    raw += Data((sizeLine + "\r\n").utf8)
                    let size =
                        Int(
                            sizeLine.split(separator: ";")[0].trimmingCharacters(in: .whitespaces),
                            radix: 16) ?? 0
                    if size == 0 {
                        // Trailers until an empty line.
                        while let t = conn.readLine() {
                            raw += Data((t + "\r\n").utf8)
                            if t.isEmpty { break }
                        }
                        return (raw, status, closeAfter, headLength)
                    }
                    guard let chunk = conn.read(exactly: size + 2) else { return nil }
                    raw += chunk
                }
            }
            if let n = headers["content-length"].flatMap({ Int($0) }) {
                guard let body = conn.read(exactly: n) else { return nil }
                return (raw + body, status, closeAfter, headLength)
            }
            raw += conn.readToEnd()
            return (raw, status, true, headLength)
        }
    }

    private func connectUpstream() -> Conn? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(upstreamPort).bigEndian
        addr.sin_addr.s_addr = inet_addr(upstreamHost == "localhost" ? "127.0.0.1" : upstreamHost)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            return nil
        }
        locked { _ = $0.openFds.insert(fd) }
        return Conn(fd)
    }

    static func describe(method: String, target: String, headers: [String: String], bodyLength: Int) -> Request {
        let q = target.firstIndex(of: "?")
        let path = q.map { String(target[..<$0]) } ?? target
        var query: [String: String] = [:]
        if let q {
            for item in target[target.index(after: q)...].split(separator: "&") {
                let kv = item.split(separator: "=", maxSplits: 1)
                query[String(kv[0])] = kv.count > 1 ? String(kv[1]) : ""
            }
        }
        let depth = path.split(separator: "/").count  // 1: bucket, 2+: object
        let op: String
        switch (method, depth >= 2) {
        case ("PUT", true) where query["uploadId"] != nil: op = "UploadPart"
        case ("PUT", true): op = "PutObject"
        case ("PUT", false): op = "CreateBucket"
        case ("GET", true): op = "GetObject"
        case ("GET", false) where query["uploads"] != nil: op = "ListMultipartUploads"
        case ("GET", false): op = "ListObjectsV2"
        case ("HEAD", true): op = "HeadObject"
        case ("HEAD", false): op = "HeadBucket"
        case ("POST", true) where query["uploads"] != nil: op = "CreateMultipartUpload"
        case ("POST", true) where query["uploadId"] != nil: op = "CompleteMultipartUpload"
        case ("POST", false) where query["delete"] != nil: op = "DeleteObjects"
        case ("DELETE", true) where query["uploadId"] != nil: op = "AbortMultipartUpload"
        case ("DELETE", true): op = "DeleteObject"
        default: op = "\(method) \(path)"
        }
        return Request(
            method: method, path: path, query: query, headers: headers, bodyLength: bodyLength,
            operation: op, sequence: 0)
    }

    static func response(status: Int, body: String) -> Data {
        let b = Data(body.utf8)
        let head =
            "HTTP/1.1 \(status) Injected\r\nContent-Type: application/xml\r\nContent-Length: \(b.count)\r\n"
            + "x-amz-request-id: proxy\r\n\r\n"
        return Data(head.utf8) + b
    }

    private func locked<T: Sendable>(_ body: (inout State) -> T) -> T {
        state.withLock { body(&$0) }
    }

    public struct ProxyError: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = "HTTPFaultProxy: " + d }
    }

    /// A blocking socket with a read buffer.
    final class Conn {
        let fd: Int32
        private var buffer = Data()
        init(_ fd: Int32) { self.fd = fd }

        private func fill() -> Bool {
            var chunk = [UInt8](repeating: 0, count: 64 << 10)
            while true {
                let n = recv(fd, &chunk, chunk.count, 0)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return false }
                buffer.append(contentsOf: chunk[0..<n])
                return true
            }
        }

        /// Bytes up to an empty line (the CRLFCRLF is consumed, not returned); nil at EOF.
        func readHead() -> String? {
            let sep = Data("\r\n\r\n".utf8)
            while true {
                if let r = buffer.range(of: sep) {
                    let head = String(decoding: buffer[buffer.startIndex..<r.lowerBound], as: UTF8.self)
                    buffer = Data(buffer[r.upperBound...])
                    return head
                }
                guard fill() else { return nil }
            }
        }

        func readLine() -> String? {
            let sep = Data("\r\n".utf8)
            while true {
                if let r = buffer.range(of: sep) {
                    let line = String(decoding: buffer[buffer.startIndex..<r.lowerBound], as: UTF8.self)
                    buffer = Data(buffer[r.upperBound...])
                    return line
                }
                guard fill() else { return nil }
            }
        }

        func read(exactly n: Int) -> Data? {
            while buffer.count < n { guard fill() else { return nil } }
            let out = Data(buffer.prefix(n))
            buffer = Data(buffer.dropFirst(n))
            return out
        }

        func readToEnd() -> Data {
            while fill() {}
            defer { buffer = Data() }
            return buffer
        }

        func write(_ data: Data) -> Bool {
            data.withUnsafeBytes { raw -> Bool in
                var off = 0
                while off < raw.count {
                    let n = send(fd, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { return false }
                    off += n
                }
                return true
            }
        }
    }
}
