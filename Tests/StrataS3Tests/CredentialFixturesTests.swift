import Foundation
import StrataCore
import StrataTestSupport
import Synchronization
import XCTest

@testable import StrataS3

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

// Test fixtures of the credential tests: a loopback-only HTTP client over URLSession, the fake
// AWS metadata server (Fixtures/fake_aws_metadata.py), a settable clock and a temporary HOME.

/// A synchronous `HTTPClient` over URLSession, for tests only (the product uses the curl
/// client). It refuses every host that is not loopback and remembers the attempt, so a test can
/// assert that nothing left the machine.
final class LoopbackURLSessionClient: HTTPClient, Sendable {
    private let session: URLSession
    private let _refused = Mutex<[String]>([])
    private let _sent = Mutex<[String]>([])

    init() {
        let config = URLSessionConfiguration.ephemeral
        config.requestCachePolicy = .reloadIgnoringLocalCacheData
        config.urlCache = nil
        session = URLSession(configuration: config)
    }

    deinit { session.invalidateAndCancel() }

    /// URLs refused because their host was not loopback.
    var refused: [String] { _refused.withLock { $0 } }

    /// "METHOD URL" of every request sent.
    var sent: [String] { _sent.withLock { $0 } }

    func send(_ request: HTTPRequest) throws -> HTTPResponse {
        guard let url = URL(string: request.url), let host = CredentialHTTP.host(of: request.url),
            CredentialHTTP.isLoopback(host)
        else {
            _refused.withLock { $0.append(request.url) }
            throw StoreError(
                .transient, operation: "test HTTP", key: request.url,
                message: "refused: tests only talk to loopback")
        }
        _sent.withLock { $0.append("\(request.method) \(request.url)") }

        var r = URLRequest(url: url)
        r.httpMethod = request.method
        r.timeoutInterval = request.timeout
        for h in request.headers { r.addValue(h.value, forHTTPHeaderField: h.name) }
        r.httpBody = request.body

        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<HTTPResponse, Error>?
        let task = session.dataTask(with: r) { data, response, error in
            if let error {
                result = .failure(
                    StoreError(
                        .transient, operation: "test HTTP", key: request.url,
                        message: error.localizedDescription))
            } else if let http = response as? HTTPURLResponse {
                var headers: [String: String] = [:]
                for (k, v) in http.allHeaderFields {
                    headers[String(describing: k).lowercased()] = String(describing: v)
                }
                result = .success(HTTPResponse(status: http.statusCode, headers: headers, body: data ?? Data()))
            } else {
                result = .failure(
                    StoreError(
                        .transient, operation: "test HTTP", key: request.url,
                        message: "no HTTP response"))
            }
            done.signal()
        }
        task.resume()
        if done.wait(timeout: .now() + request.timeout + 5) == .timedOut {
            task.cancel()
            throw StoreError(.transient, operation: "test HTTP", key: request.url, message: "timed out")
        }
        return try result!.get()
    }
}

/// The fake AWS metadata/STS server on a free loopback port. Stopped by `stop()` (tests call it
/// from a teardown block); it also exits when this process dies, because its stdin closes.
final class FakeAWSMetadataServer {
    let port: Int
    private let process: Process
    private let stdin: Pipe
    private let client = LoopbackURLSessionClient()

    var base: String { "http://127.0.0.1:\(port)" }
    var imdsEndpoint: String { base }
    var stsEndpoint: String { base + "/sts/" }
    func ecsURL(_ path: String = "/ecs/v2/credentials/task-1") -> String { base + path }

    static var scriptPath: String {
        TestPaths.projectRoot + "/Tests/StrataS3Tests/Fixtures/fake_aws_metadata.py"
    }

    /// Starts a server and registers its stop with `testCase`'s teardown.
    static func start(for testCase: XCTestCase) throws -> FakeAWSMetadataServer {
        let server = try FakeAWSMetadataServer()
        testCase.addTeardownBlock { server.stop() }
        return server
    }

    init() throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.scriptPath, "--max-seconds", "300"]
        stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        var text = ""
        while !text.contains("\n") {
            let chunk = stdout.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("PORT=") }),
            let port = Int(line.dropFirst(5))
        else {
            process.terminate()
            throw StoreError(
                .io, operation: "start fake AWS metadata server", key: Self.scriptPath,
                message: "no PORT line; got \"\(text)\"")
        }
        self.port = port
    }

    /// A loopback port with nothing listening on it (bound, read, closed).
    static func closedPort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        precondition(fd >= 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? stdin.fileHandleForWriting.close()
    }

    /// Merges `update` (e.g. `["imds": ["role": NSNull()]]`) into the server's state.
    func configure(_ update: [String: [String: Any]]) throws {
        let body = try JSONSerialization.data(withJSONObject: update)
        let r = try client.send(HTTPRequest(method: "POST", url: base + "/_control/configure", body: body))
        XCTAssertEqual(r.status, 200)
    }

    struct SeenRequest {
        var method: String
        var path: String
        var headers: [String: String]
        var form: [String: String]
    }

    /// Requests seen so far (control requests excluded).
    func requests() throws -> [SeenRequest] {
        let r = try client.send(HTTPRequest(method: "GET", url: base + "/_control/requests"))
        let list = try JSONSerialization.jsonObject(with: r.body) as? [[String: Any]] ?? []
        return list.map {
            SeenRequest(
                method: $0["method"] as? String ?? "", path: $0["path"] as? String ?? "",
                headers: $0["headers"] as? [String: String] ?? [:],
                form: $0["form"] as? [String: String] ?? [:])
        }
    }
}

/// A clock the test moves by hand.
final class TestClock: Sendable {
    private let current: Mutex<Date>

    init(_ start: Date = Date(timeIntervalSince1970: 4_000_000_000)) { current = Mutex(start) }

    var now: Date { current.withLock { $0 } }

    func advance(_ seconds: TimeInterval) {
        current.withLock { $0 = $0.addingTimeInterval(seconds) }
    }

    var function: @Sendable () -> Date { { [self] in self.now } }

    /// ISO 8601 for `now + seconds`, as the servers write expirations.
    func iso(in seconds: TimeInterval) -> String {
        ISO8601DateFormatter().string(from: now.addingTimeInterval(seconds))
    }
}

/// A temporary HOME with `.aws/` in it.
final class TempHome {
    let dir = TempDir(prefix: "strata-cred")
    var path: String { dir.path }
    var credentialsPath: String { path + "/.aws/credentials" }
    var configPath: String { path + "/.aws/config" }

    init() {
        try! FileManager.default.createDirectory(atPath: path + "/.aws", withIntermediateDirectories: true)
    }

    func write(_ relative: String, _ text: String) {
        let full = relative.hasPrefix("/") ? relative : path + "/" + relative
        try! FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try! text.write(toFile: full, atomically: true, encoding: .utf8)
    }

    func credentials(_ text: String) { write(".aws/credentials", text) }
    func config(_ text: String) { write(".aws/config", text) }
}

/// The environment every test starts from: IMDS off, so nothing can reach 169.254.169.254.
let noIMDS = ["AWS_EC2_METADATA_DISABLED": "true"]

/// Fails the test if `text` contains any of `secrets`.
func assertNoSecret(_ text: String, _ secrets: [String], file: StaticString = #filePath, line: UInt = #line) {
    for s in secrets where text.contains(s) {
        XCTFail("text shows a secret (\(s.prefix(3))…): \(text)", file: file, line: line)
    }
}

/// The sanity of the fixtures themselves: the fake server enforces the IMDSv2 token.
final class CredentialFixturesTests: XCTestCase {
    func testFakeServerRefusesIMDSGetWithoutToken() throws {
        let server = try FakeAWSMetadataServer.start(for: self)
        let client = LoopbackURLSessionClient()
        let url = server.imdsEndpoint + "/latest/meta-data/iam/security-credentials/"
        XCTAssertEqual(try client.send(HTTPRequest(method: "GET", url: url, timeout: 5)).status, 401)
        let token = try client.send(
            HTTPRequest(
                method: "PUT", url: server.imdsEndpoint + "/latest/api/token",
                headers: [("X-aws-ec2-metadata-token-ttl-seconds", "60")],
                timeout: 5))
        XCTAssertEqual(token.status, 200)
        let listing = try client.send(
            HTTPRequest(
                method: "GET", url: url,
                headers: [("X-aws-ec2-metadata-token", String(decoding: token.body, as: UTF8.self))],
                timeout: 5))
        XCTAssertEqual(listing.status, 200)
        XCTAssertEqual(String(decoding: listing.body, as: UTF8.self), "strata-test-role")
    }

    func testClientRefusesNonLoopback() {
        let client = LoopbackURLSessionClient()
        XCTAssertThrowsError(try client.send(HTTPRequest(method: "GET", url: "http://169.254.169.254/", timeout: 1)))
        XCTAssertEqual(client.refused, ["http://169.254.169.254/"])
    }
}
