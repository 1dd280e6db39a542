import Foundation

/// What one compaction round did, for the CLI's summary, `--json`, and logs.
public struct CompactionSummary: Codable, Sendable {
    public enum Outcome: String, Codable, Sendable {
        /// A new version was published and the pointer moved.
        case published
        /// No pending runs (or every pending run was quarantined).
        case upToDate
        /// Another compactor holds the collection's lease.
        case leaseHeld
    }

    public struct Quarantined: Codable, Sendable {
        public var runId: String
        public var reason: String
        public var detail: String
        /// The quarantine record's store key.
        public var key: String?
        /// The run's delta in the store, when its record names one.
        public var deltaKey: String?
    }

    public var collection: String
    public var outcome: Outcome
    public var baseVersion: String?
    public var newVersion: String?
    public var runsApplied: [String] = []
    public var runsQuarantined: [Quarantined] = []
    /// Pending runs left for a later round by the per-publish limits.
    public var runsDeferred: Int = 0
    /// Creation time of the oldest run left pending after this round (nil: none left).
    public var oldestPendingAt: Date?
    public var rowsUpserted: Int = 0
    public var rowsDeleted: Int = 0
    public var newIds: Int = 0
    public var deletedExisting: Int = 0
    /// Upserts and deletes that lost to a later run's write of the same id (SPEC invariant 4).
    public var writesSuperseded: Int = 0
    /// Tombstones kept after this round, and those purged because their run left the late-run window.
    public var tombstones: Int = 0
    public var tombstonesPurged: Int = 0
    /// 1 when this round upgraded the base snapshot from format 1.
    public var upgradedFromFormat: Int?
    public var rowsBefore: Int = 0
    public var rowsAfter: Int = 0
    public var bytesDownloaded: Int64 = 0
    public var bytesUploaded: Int64 = 0
    /// Lost pointer races that made this round rebuild on a newer version.
    public var conflicts: Int = 0
    public var baseFromCache: Bool = false
    /// How the new version was stored: "patch", "merged tail", "merged chain", or "new base (reason)".
    public var publishedAs: String?
    /// Patches in the new version's chain (0 for a new base).
    public var chainLength: Int = 0
    /// Seconds per step: pointer, base, plan, deltas, merge, check, upload, publish, total.
    public var seconds: [String: Double] = [:]
    public var leaseHolder: String?

    init(collection: String, outcome: Outcome) {
        self.collection = collection
        self.outcome = outcome
    }
}

/// Measures the steps of a round.
struct StepClock {
    private var last = DispatchTime.now().uptimeNanoseconds
    private let start = DispatchTime.now().uptimeNanoseconds
    var seconds: [String: Double] = [:]

    mutating func lap(_ step: String) {
        let now = DispatchTime.now().uptimeNanoseconds
        seconds[step, default: 0] += Double(now - last) / 1e9
        last = now
    }

    var total: Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
}
