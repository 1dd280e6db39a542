import Foundation

/// Keys of the compactor workers' heartbeats (Docs/OPERATIONS.md, "Many workers"). The directory
/// starts with a dot, which no collection name may, so it cannot collide with a collection.
extension Layout {
    public static let workersDirectory = ".strata-workers"

    public var workersPrefix: String { "\(prefix)\(Layout.workersDirectory)/" }

    /// `worker` must pass `Layout.isValidWorkerId`.
    public func heartbeatKey(worker: String) -> String { "\(workersPrefix)\(worker).json" }

    /// The worker id of a heartbeat key, or nil when the key is not one.
    public func workerId(fromHeartbeatKey key: String) -> String? {
        guard key.hasPrefix(workersPrefix), key.hasSuffix(".json") else { return nil }
        let id = String(key.dropFirst(workersPrefix.count).dropLast(5))
        return Layout.isValidWorkerId(id) ? id : nil
    }

    /// 1 to 200 characters of A-Z a-z 0-9 . _ - (one key segment, safe in logs and labels).
    public static func isValidWorkerId(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 200 && !id.hasPrefix(".")
            && id.unicodeScalars.allSatisfy {
                $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "." || $0 == "_" || $0 == "-")
            }
    }
}
