import Foundation

/// A run waiting to be applied to one collection, with what its record says of the delta.
public struct PendingRun: Sendable, Equatable {
    public var runId: String
    public var createdAt: Date
    public var deltaKey: String
    public var size: Int64
    public var sha256: String
    public var upserts: Int
    public var deletes: Int

    public init(runId: String, createdAt: Date, deltaKey: String, size: Int64, sha256: String, upserts: Int,
                deletes: Int) {
        self.runId = runId
        self.createdAt = createdAt
        self.deltaKey = deltaKey
        self.size = size
        self.sha256 = sha256
        self.upserts = upserts
        self.deletes = deletes
    }
}

/// Which pending runs one publish applies: in order (creation time, then run id), cut by the
/// per-publish limits. Pure, so it is tested on its own.
public enum RunPlanner {
    public static func order(_ runs: [PendingRun]) -> [PendingRun] {
        runs.sorted { a, b in
            a.createdAt != b.createdAt ? a.createdAt < b.createdAt : a.runId < b.runId
        }
    }

    public static func plan(_ runs: [PendingRun], settings: CompactorSettings) -> [PendingRun] {
        var out: [PendingRun] = []
        var rows = 0
        var bytes: Int64 = 0
        for run in order(runs) {
            let r = run.upserts + run.deletes
            // Always take at least one run, so an oversized run cannot block the collection.
            if !out.isEmpty && (out.count >= settings.maxRunsPerPublish || rows + r > settings.maxRowsPerPublish
                                || bytes + run.size > settings.maxBytesPerPublish) {
                break
            }
            out.append(run)
            rows += r
            bytes += run.size
        }
        return out
    }
}
