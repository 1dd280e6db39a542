import Foundation

public enum TestPaths {
    /// The package root (the directory holding Package.swift).
    public static let projectRoot: String = {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while url.path != "/" {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
                return url.path
            }
            url.deleteLastPathComponent()
        }
        fatalError("Package.swift not found above \(#filePath)")
    }()

    /// `../shared` beside the project.
    public static var shared: String { (projectRoot as NSString).deletingLastPathComponent + "/shared" }

    /// A new empty directory under the system temp dir. Callers remove it (see `TempDir`).
    public static func makeTempDir(prefix: String = "strata-test") -> String {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        let path = "\(base)/\(prefix)-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    public struct ProcessResult: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// Runs a program to completion, capturing its output. `input` is written to its stdin.
    @discardableResult
    public static func run(
        _ argv: [String], environment: [String: String]? = nil, input: Data? = nil,
        currentDirectory: String? = nil
    ) throws -> ProcessResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0].hasPrefix("/") ? argv[0] : "/usr/bin/env")
        p.arguments = argv[0].hasPrefix("/") ? Array(argv.dropFirst()) : argv
        if let environment {
            p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        if let currentDirectory { p.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        let outPipe = Pipe()
        let errPipe = Pipe()
        let inPipe = Pipe()
        p.standardOutput = outPipe
        p.standardError = errPipe
        p.standardInput = inPipe
        try p.run()
        // Read both pipes concurrently so a chatty child cannot block on a full pipe.
        let outBox = Locked(Data())
        let errBox = Locked(Data())
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) {
            let data = outPipe.fileHandleForReading.readDataToEndOfFile()
            outBox.update { $0 = data }
        }
        DispatchQueue.global().async(group: group) {
            let data = errPipe.fileHandleForReading.readDataToEndOfFile()
            errBox.update { $0 = data }
        }
        if let input { inPipe.fileHandleForWriting.write(input) }
        try? inPipe.fileHandleForWriting.close()
        group.wait()
        p.waitUntilExit()
        return ProcessResult(
            status: p.terminationStatus, stdout: String(decoding: outBox.value, as: UTF8.self),
            stderr: String(decoding: errBox.value, as: UTF8.self))
    }
}

/// A temporary directory removed when the object goes away.
public final class TempDir: Sendable {
    public let path: String
    public init(prefix: String = "strata-test") { path = TestPaths.makeTempDir(prefix: prefix) }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    public func file(_ name: String) -> String { path + "/" + name }
}

extension TestPaths {
    /// The shipped `snapctl` (`make release`, which `make test` runs first), or nil when it has not
    /// been built. Memory targets are the shipped binary's: a debug build links and allocates more.
    public static var releaseSnapctl: String? {
        let path = projectRoot + "/.build/release/snapctl"
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    /// The built `snapctl` next to the test bundle.
    public static var snapctl: String {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidate = dir.appendingPathComponent("snapctl").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        return projectRoot + "/.build/debug/snapctl"
    }

    /// Starts `count` copies of a command at once and returns their exit statuses.
    public static func runConcurrently(_ argvs: [[String]], environment: [String: String]? = nil) throws -> [Int32] {
        var procs: [Process] = []
        for argv in argvs {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: argv[0])
            p.arguments = Array(argv.dropFirst())
            if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            procs.append(p)
        }
        for p in procs { try p.run() }
        for p in procs { p.waitUntilExit() }
        return procs.map(\.terminationStatus)
    }
}
