import Foundation
import Synchronization

/// A private SeaweedFS S3 server on loopback for this test process: started on first use on
/// ports chosen at run time, stopped when the process exits (a watchdog stops it even when the
/// process is killed). Two test runs at once each get their own server.
public final class SeaweedFS: Sendable {
    public let endpoint: String
    public let accessKey: String
    public let secretKey: String
    public let pid: Int32
    let dir: String

    private static let state = Mutex<(instance: SeaweedFS?, startError: Error?)>((nil, nil))

    /// The shared server of this process, started on the first call.
    public static func shared() throws -> SeaweedFS {
        try state.withLock { state in
            if let instance = state.instance { return instance }
            if let startError = state.startError { throw startError }
            do {
                let s = try SeaweedFS.start()
                state.instance = s
                atexit { SeaweedFS.state.withLock { $0.instance }?.stop() }
                return s
            } catch {
                state.startError = error
                throw error
            }
        }
    }

    private init(endpoint: String, accessKey: String, secretKey: String, pid: Int32, dir: String) {
        self.endpoint = endpoint
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.pid = pid
        self.dir = dir
    }

    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Starts a new server (most tests want `shared()`).
    public static func start() throws -> SeaweedFS {
        let dir = TestPaths.makeTempDir(prefix: "strata-weed")
        let out = try TestPaths.run([
            TestPaths.projectRoot + "/Scripts/seaweedfs.sh", "start", dir, "--watch",
            String(getpid()),
        ])
        guard out.status == 0 else {
            throw StartError(
                description: "could not start SeaweedFS (is `weed` installed? run `make setup`):\n"
                    + out.stderr)
        }
        var values: [String: String] = [:]
        for line in out.stdout.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        guard let ep = values["STRATA_TEST_ENDPOINT"], let ak = values["AWS_ACCESS_KEY_ID"],
            let sk = values["AWS_SECRET_ACCESS_KEY"], let pid = values["SEAWEED_PID"].flatMap({ Int32($0) })
        else { throw StartError(description: "unexpected output from seaweedfs.sh: \(out.stdout)") }
        return SeaweedFS(endpoint: ep, accessKey: ak, secretKey: sk, pid: pid, dir: dir)
    }

    public func stop() {
        _ = try? TestPaths.run([TestPaths.projectRoot + "/Scripts/seaweedfs.sh", "stop", dir])
    }

    /// A fresh bucket name, unique in this process and across processes.
    public static func uniqueBucketName(_ hint: String = "t") -> String {
        let clean = hint.lowercased().filter { $0.isLetter || $0.isNumber }.prefix(20)
        return "\(clean)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Environment for running the AWS CLI (or snapctl) against this server.
    public var awsEnvironment: [String: String] {
        [
            "AWS_ACCESS_KEY_ID": accessKey, "AWS_SECRET_ACCESS_KEY": secretKey, "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
        ]
    }
}
