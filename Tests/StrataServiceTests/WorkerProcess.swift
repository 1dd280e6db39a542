import Foundation
import StrataTestSupport
import XCTest

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A `snapctl compactor` process started by a test: logs (JSON, stderr) go to a file the test
/// reads, the metrics port comes from its "metrics listening" log line. Killed if the test forgets.
final class WorkerProcess {
    let process = Process()
    let logPath: String
    private(set) var exited = false

    init(arguments: [String], environment: [String: String], dir: TempDir, name: String = "worker") throws {
        logPath = dir.file("\(name)-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: TestPaths.snapctl)
        process.arguments = ["compactor", "--log-format", "json"] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardError = log
        process.standardOutput = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    var pid: Int32 { process.processIdentifier }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The log lines (parsed JSON objects).
    var logLines: [[String: Any]] {
        log.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// Waits for a log line whose "msg" contains `message` (and, optionally, more); fails after
    /// `timeout` seconds (a generous bound for a readiness wait, not a performance assertion).
    @discardableResult
    func waitForLog(
        _ message: String, timeout: Double = 120, where extra: ([String: Any]) -> Bool = { _ in true },
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let hit = logLines.first(where: { ($0["msg"] as? String)?.contains(message) == true && extra($0) }) {
                return hit
            }
            if !process.isRunning, logLines.first(where: { ($0["msg"] as? String)?.contains(message) == true }) == nil {
                XCTFail(
                    "the worker exited (status \(process.terminationStatus)) before logging \"\(message)\":\n\(log)",
                    file: file, line: line)
                throw XCTSkip("worker gone")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTFail("no \"\(message)\" within \(timeout) s; log:\n\(log)", file: file, line: line)
        throw XCTSkip("timed out waiting for the log")
    }

    /// http://127.0.0.1:PORT of the metrics server.
    func baseURL() throws -> String {
        let line = try waitForLog("metrics listening")
        let address = try XCTUnwrap(line["address"] as? String)
        return "http://\(address)"
    }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits for the exit (at most `timeout` s, then fails) and returns the status.
    func waitForExit(timeout: Double = 120, file: StaticString = #filePath, line: UInt = #line) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        guard !process.isRunning else {
            XCTFail("the worker did not exit within \(timeout) s:\n\(log)", file: file, line: line)
            return nil
        }
        return process.terminationStatus
    }
}

/// A blocking HTTP request (status, body).
func http(_ method: String, _ url: String) throws -> (status: Int, body: String) {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = method
    request.timeoutInterval = 30
    let box = Locked<(result: (Int, String)?, error: Error?)>((nil, nil))
    let done = DispatchSemaphore(value: 0)
    URLSession.shared.dataTask(with: request) { data, response, error in
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let result = (status, data.map { String(decoding: $0, as: UTF8.self) } ?? "")
        box.update { $0 = (result, error) }
        done.signal()
    }.resume()
    done.wait()
    if let error = box.value.error { throw error }
    return box.value.result!
}

/// Scrapes and parses /metrics.
func scrape(_ base: String, file: StaticString = #filePath, line: UInt = #line) throws -> PrometheusText {
    let (status, body) = try http("GET", base + "/metrics")
    XCTAssertEqual(status, 200, body, file: file, line: line)
    return try PrometheusText(body)
}

/// Scrapes until `condition` holds (or fails after `timeout` s) and returns that scrape.
@discardableResult
func scrape(
    _ base: String, until condition: (PrometheusText) -> Bool, timeout: Double = 120,
    file: StaticString = #filePath, line: UInt = #line
) throws -> PrometheusText {
    let deadline = Date().addingTimeInterval(timeout)
    var last = try scrape(base, file: file, line: line)
    while !condition(last) && Date() < deadline {
        Thread.sleep(forTimeInterval: 0.1)
        last = try scrape(base, file: file, line: line)
    }
    XCTAssertTrue(
        condition(last), "the metrics never reached the expected state:\n\(last.samples)",
        file: file, line: line)
    return last
}
