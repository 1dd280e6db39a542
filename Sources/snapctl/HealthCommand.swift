import ArgumentParser
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The container's HEALTHCHECK: the image has no curl, so snapctl asks its own metrics server.
struct HealthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Exit 0 when a worker's health endpoint answers 200 (for container health checks).",
        discussion: "Example: snapctl health --url http://127.0.0.1:9090/readyz")
    @Option(help: "http://HOST:PORT/PATH of /healthz or /readyz (IPv4 or a name that resolves).")
    var url: String = "http://127.0.0.1:9090/healthz"
    @Option(help: "Seconds to wait for the answer.") var timeout: Int = 3

    func run() throws {
        guard let u = URL(string: url), u.scheme == "http", let host = u.host, let port = u.port ?? 80 as Int? else {
            throw CLIError.usage("--url \(url): expected http://HOST:PORT/PATH")
        }
        let path = u.path.isEmpty ? "/" : u.path
        let status = try Self.get(host: host, port: port, path: path, timeout: timeout)
        print("\(url): \(status)")
        if status != 200 { throw ExitCode(ExitCodes.failure) }
    }

    /// One HTTP/1.0 GET over a plain socket; returns the status code.
    static func get(host: String, port: Int, path: String, timeout: Int) throws -> Int {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &res) == 0, let ai = res else {
            throw CLIError.failed("\(host):\(port): the name does not resolve")
        }
        defer { freeaddrinfo(res) }
        let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
        guard fd >= 0 else { throw CLIError.failed("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else {
            throw CLIError.failed(
                "\(host):\(port): \(String(cString: strerror(errno))) (is the worker running with "
                    + "--metrics-addr?)")
        }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(host)\r\n\r\n".utf8)
        guard send(fd, request, request.count, 0) == request.count else {
            throw CLIError.failed("\(host):\(port): could not send the request")
        }
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n > 12 else { throw CLIError.failed("\(host):\(port): no HTTP answer within \(timeout) s") }
        let line = String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\r\n").first ?? ""
        let parts = line.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let code = Int(parts[1]) else {
            throw CLIError.failed("\(host):\(port): not an HTTP answer: \(line)")
        }
        return code
    }
}
