import FlyingFox
import Foundation
import Logging
import ServiceLifecycle
import StrataCore
import Synchronization

/// `--metrics-addr HOST:PORT`: where the health server listens. Port 0 picks a free port (the
/// bound address is logged as `metrics listening`).
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public var isIPv6: Bool

    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses `HOST:PORT`, `:PORT` (all IPv4 interfaces) or `[IPV6]:PORT`. `what` names the option
    /// or variable in errors.
    public static func parse(_ raw: String, what: String) throws -> ListenAddress {
        func bad(_ why: String) -> StrataError {
            StrataError(
                .invalidInput, object: what, field: raw, message: why,
                fix: "give HOST:PORT, e.g. 0.0.0.0:9090 or 127.0.0.1:9090 ([::1]:9090 for IPv6)")
        }
        var host: String
        var portText: Substring
        var v6 = false
        if raw.hasPrefix("[") {
            guard let close = raw.firstIndex(of: "]"), raw[raw.index(after: close)...].hasPrefix(":") else {
                throw bad("an IPv6 address needs brackets and a port")
            }
            host = String(raw[raw.index(after: raw.startIndex)..<close])
            portText = raw[raw.index(close, offsetBy: 2)...]
            v6 = true
        } else {
            guard let colon = raw.lastIndex(of: ":") else { throw bad("has no port") }
            host = String(raw[..<colon])
            portText = raw[raw.index(after: colon)...]
            if host.isEmpty { host = "0.0.0.0" }
            if host == "localhost" { host = "127.0.0.1" }
        }
        guard let port = UInt16(portText) else { throw bad("the port \"\(portText)\" is not a number 0-65535") }
        if v6 {
            var a = in6_addr()
            guard inet_pton(AF_INET6, host, &a) == 1 else { throw bad("\"\(host)\" is not an IPv6 address") }
        } else {
            var a = in_addr()
            guard inet_pton(AF_INET, host, &a) == 1 else { throw bad("\"\(host)\" is not an IPv4 address") }
        }
        return ListenAddress(host: host, port: port, isIPv6: v6)
    }
}

/// Whether the worker may take work: the conditional-write probe passed at start and the store
/// answers a one-key listing now. The answer is remembered a few seconds so a busy prober does not
/// turn into store traffic.
public final class Readiness: Sendable {
    let store: any ObjectStore
    let layout: Layout
    let cacheSeconds: Double
    private struct State {
        var probePassed = false
        var last: (at: Date, ready: Bool, detail: String)?
    }
    private let state = Mutex(State())

    public init(store: any ObjectStore, layout: Layout, cacheSeconds: Double = 5) {
        self.store = store
        self.layout = layout
        self.cacheSeconds = cacheSeconds
    }

    public func markProbePassed() {
        state.withLock { $0.probePassed = true }
    }

    /// (ready, a one-line reason). Blocks on the store: call from a thread that may block.
    public func check(now: Date = Date()) -> (Bool, String) {
        let (passed, last) = state.withLock { ($0.probePassed, $0.last) }
        if let last, now.timeIntervalSince(last.at) < cacheSeconds {
            return (last.ready, last.detail)
        }
        guard passed else { return (false, "the conditional-write probe has not passed yet") }
        let result: (Bool, String)
        do {
            _ = try store.listPage(prefix: layout.runsPrefix, delimiter: nil, continuation: nil, maxKeys: 1)
            result = (true, "store \(store.location) reachable, probe passed")
        } catch {
            result = (false, "store \(store.location) unreachable: \(error)")
        }
        state.withLock { $0.last = (now, result.0, result.1) }
        return result
    }
}

/// The worker's HTTP side: GET /metrics (Prometheus text), GET /healthz (the process is up),
/// GET /readyz (store reachable, probe passed), POST /wake (start a pass now).
public final class HealthServer: Service, Sendable {
    let server: HTTPServer
    let address: ListenAddress
    let logger: Logger
    let metrics: CompactorMetrics
    let readiness: Readiness
    let wake: @Sendable () -> Void

    public init(
        address: ListenAddress, metrics: CompactorMetrics, readiness: Readiness, logger: Logger,
        wake: @escaping @Sendable () -> Void
    ) throws {
        self.address = address
        self.logger = logger
        self.metrics = metrics
        self.readiness = readiness
        self.wake = wake
        if address.isIPv6 {
            server = HTTPServer(
                address: try .inet6(ip6: address.host, port: address.port), timeout: 15,
                logger: .disabled)
        } else {
            server = HTTPServer(
                address: try .inet(ip4: address.host, port: address.port), timeout: 15,
                logger: .disabled)
        }
    }

    func addRoutes() async {
        let (metrics, readiness, wake) = (self.metrics, self.readiness, self.wake)
        let text: HTTPHeaders = [.contentType: "text/plain; charset=utf-8"]
        do {
            await server.appendRoute("GET /metrics") { _ in
                HTTPResponse(
                    statusCode: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                    body: Data(metrics.exposition().utf8))
            }
            await server.appendRoute("GET /healthz") { _ in
                HTTPResponse(statusCode: .ok, headers: text, body: Data("ok\n".utf8))
            }
            await server.appendRoute("GET /readyz") { _ in
                let (ready, detail) = await withCheckedContinuation { c in
                    DispatchQueue.global().async { c.resume(returning: readiness.check()) }
                }
                return HTTPResponse(
                    statusCode: ready ? .ok : .serviceUnavailable, headers: text,
                    body: Data(((ready ? "ready: " : "not ready: ") + detail + "\n").utf8))
            }
            await server.appendRoute("POST /wake") { _ in
                metrics.recordWake()
                wake()
                return HTTPResponse(statusCode: .accepted, headers: text, body: Data("a pass starts now\n".utf8))
            }
        }
    }

    /// The bound address once listening (useful with port 0).
    public func boundAddress() async -> String? {
        switch await server.listeningAddress {
        case .ip4(let h, let p): return "\(h):\(p)"
        case .ip6(let h, let p): return "[\(h)]:\(p)"
        default: return nil
        }
    }

    public func run() async throws {
        let server = self.server
        await addRoutes()
        let stopping = StopMark()
        do {
            try await withTaskCancellationOrGracefulShutdownHandler {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await server.run() }
                    try await server.waitUntilListening(timeout: 30)
                    let bound = await self.boundAddress() ?? "\(address)"
                    logger.notice("metrics listening", metadata: ["address": "\(bound)"])
                    try await group.waitForAll()
                }
            } onCancelOrGracefulShutdown: {
                stopping.set()
                Task { await server.stop(timeout: 0.5) }
            }
        } catch {
            // Stopping ends the listener with an error of its own; only an unasked-for end is a failure.
            if !stopping.isSet && !(error is CancellationError) { throw error }
        }
    }

    final class StopMark: Sendable {
        private let value = Mutex(false)
        var isSet: Bool { value.withLock { $0 } }
        func set() { value.withLock { $0 = true } }
    }
}
