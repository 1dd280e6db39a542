import Foundation
import StrataPages

/// How the compactor keeps the base snapshot between runs (like our users' CHROMADB_STORAGE_MODE).
public enum CacheMode: String, Sendable, CaseIterable {
    /// A temporary directory per compaction: always download the base.
    case s3
    /// A local or EFS directory that keeps verified versions and reuses them.
    case cache
    /// `cache` when a cache directory is configured and writable, otherwise `s3`.
    case auto
}

/// Settings of a compactor, as values with defaults. Components (store, logger, clock) are passed
/// separately.
public struct CompactorSettings: Sendable {
    /// Identifies this compactor in leases, manifests and quarantine records.
    public var compactorId: String
    public var host: String
    public var strataVersion: String = "0.1.0"

    /// Limits per publish; the rest stays pending for the next round.
    public var maxRunsPerPublish: Int = 500
    public var maxRowsPerPublish: Int = 2_000_000
    public var maxBytesPerPublish: Int64 = 4 << 30

    public var cacheMode: CacheMode = .auto
    /// Where `cache` mode keeps versions, and where temporary work happens.
    public var cacheDirectory: String?
    public var workDirectory: String = NSTemporaryDirectory()

    /// Refuse a store that does not enforce conditional writes unless this is set.
    public var singleWriter: Bool = false
    /// Seconds a lease lasts; renewed at step boundaries when a third has passed.
    public var leaseDuration: Double = 120
    /// Rebuilds after losing the pointer race before giving up this round.
    public var maxConflictRetries: Int = 5

    /// Limits for untrusted delta bundles.
    public var maxDeltaBytes: Int64 = 2 << 30
    /// Run `PRAGMA quick_check` on the merged snapshot before publishing.
    public var integrityCheck: Bool = true

    /// The late-run window, in seconds (default 7 days): how long a delete is kept as a tombstone.
    /// A run created longer ago than this is quarantined `tooLate` (SPEC invariant 4).
    public var lateRunWindow: TimeInterval = 7 * 86400
    /// Runs to apply even when older than the window (`snapctl compact --allow-late RUN_ID`),
    /// under the normal per-row rule; a `tooLate` quarantine of such a run is lifted.
    public var allowLateRuns: Set<String> = []

    /// When a version is a patch on the chain, a merged patch, or a new base (Docs/design/0002,
    /// "Chain policy"): K = 8 single patches, 8 merged ones, chain bytes at most half the base
    /// (so a cold reader downloads at most 1.5x the file), a patch rewriting over half the pages
    /// is a new base.
    public var chainPolicy = PageChainPolicy()
    /// How patch pages are stored (`PageCompression.standard`: the zero run).
    public var pageCompression: PageCompression = .standard

    /// Test-only fault injection: the process kills itself with SIGKILL at this step boundary
    /// (after-download, after-merge, after-objects, after-upload, after-pointer). Set from STRATA_CRASH_AT.
    public var crashAt: String?
    /// Fault injection for tests of graceful stop: "POINT" (same names as crashAt) sleeps 5 s there,
    /// logging "fault injection: pausing at POINT" first (STRATA_PAUSE_AT).
    public var pauseAt: String?
    /// A worker's pass lists runs/ from (oldest pending run − this many seconds); see RunWatermark.
    public var runLookback: Double = 900
    /// Every this many passes a collection's listing is full (catches records later than the lookback).
    public var fullListingEvery: Int = 100

    public init(compactorId: String, host: String) {
        self.compactorId = compactorId
        self.host = host
    }
}

extension CompactorSettings {
    /// "7d", "36h", "90m" or "45s": the largest unit that divides `seconds`.
    public static func describe(seconds: TimeInterval) -> String {
        let s = Int(seconds.rounded())
        for (unit, n) in [("d", 86400), ("h", 3600), ("m", 60)] where s >= n && s % n == 0 { return "\(s / n)\(unit)" }
        return "\(s)s"
    }

    /// Parses "7d", "36h", "90m", "45s" or a plain number of seconds; nil when it is none of these.
    public static func parseDuration(_ text: String) -> TimeInterval? {
        let t = text.trimmingCharacters(in: .whitespaces)
        guard let last = t.last else { return nil }
        let units: [Character: Double] = ["d": 86400, "h": 3600, "m": 60, "s": 1]
        if let unit = units[last], let v = Double(t.dropLast()), v >= 0, v.isFinite { return v * unit }
        if let v = Double(t), v >= 0, v.isFinite { return v }
        return nil
    }
}
