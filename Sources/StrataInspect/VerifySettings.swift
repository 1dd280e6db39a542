import Foundation
import StrataCore

/// What `Verifier` checks and where its thresholds lie. Values only; the store, layout, logger
/// and clock are passed to `Verifier` separately.
public struct VerifySettings: Sendable {
    /// Collections to check; empty means every collection found in the store.
    public var collections: [String] = []
    /// Check every row instead of a sample, run `PRAGMA integrity_check` instead of `quick_check`,
    /// and download and hash the deltas of pending runs (not only HEAD them).
    public var deep: Bool = false
    /// The shape every id must have, when given (every collection without its own pattern).
    public var idPattern: IDPattern?
    /// The shape of the ids of one collection (`--id-pattern C=PATTERN`).
    public var idPatterns: [String: IDPattern] = [:]
    /// The newest run of a collection older than this fails `runs.freshness`; without it, a
    /// newest run older than `staleRunWarning` is a warning.
    public var maxRunAge: TimeInterval?
    public var staleRunWarning: TimeInterval = 86400
    /// This machine's host name: a lease held on it by a process that no longer exists is stale.
    public var host: String = VerifySettings.localHost()

    /// gethostname(2), as compactors record it in their leases.
    public static func localHost() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        return String(cString: buf)
    }

    /// The id pattern that applies to `collection`, if any.
    public func idPattern(for collection: String) -> IDPattern? { idPatterns[collection] ?? idPattern }
    /// A run pending for longer than this means compaction is not running (failed).
    public var pendingAge: TimeInterval = 3600
    /// A drop of more than this fraction of a collection's rows, not explained by deletes in the
    /// version's applied runs, fails `history.rows`.
    public var dropThreshold: Double = 0.5
    /// A delta without a run record younger than this is an upload in progress, older an orphan.
    /// Likewise for a version newer than the pointer (a compaction uploading right now).
    public var orphanGrace: TimeInterval = 3600
    /// Rows whose embedding and metadata are checked, spread over the table (all with `deep`).
    public var sampleRows: Int = 1000
    /// Published versions whose row counts are compared, newest first.
    public var historyDepth: Int = 20
    /// Items listed in a finding's evidence at most (offending ids, runs, keys).
    public var maxListed: Int = 10
    /// Where the snapshot is downloaded (in a private directory removed afterwards).
    public var workDirectory: String = NSTemporaryDirectory()

    public init() {}

    /// Parses a duration: `90` or `90s`, `500ms`, `15m`, `1h`, `2d`, or a sum like `1h30m`.
    public static func parseDuration(_ text: String) -> TimeInterval? {
        let s = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard !s.isEmpty else { return nil }
        if let plain = Double(s), plain >= 0, plain.isFinite { return plain }
        var total: Double = 0
        var number = ""
        var unit = ""
        var any = false
        func flush() -> Bool {
            guard let n = Double(number), n >= 0 else { return false }
            let scale: Double
            switch unit {
            case "ms": scale = 0.001
            case "s", "sec": scale = 1
            case "m", "min": scale = 60
            case "h": scale = 3600
            case "d": scale = 86400
            default: return false
            }
            total += n * scale
            number = ""
            unit = ""
            any = true
            return true
        }
        for ch in s {
            if ch.isNumber || ch == "." {
                if !unit.isEmpty { guard flush() else { return nil } }
                number.append(ch)
            } else if ch.isLetter {
                guard !number.isEmpty else { return nil }
                unit.append(ch)
            } else {
                return nil
            }
        }
        guard !number.isEmpty, !unit.isEmpty, flush(), any, total.isFinite else { return nil }
        return total
    }

    /// `3h 12m`, `45s`, `2d 4h`: a rough age for people.
    public static func describe(duration: TimeInterval) -> String {
        let s = Int(max(0, duration).rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m" + (s % 60 > 0 ? " \(s % 60)s" : "") }
        if s < 86400 { return "\(s / 3600)h" + ((s % 3600) / 60 > 0 ? " \((s % 3600) / 60)m" : "") }
        return "\(s / 86400)d" + ((s % 86400) / 3600 > 0 ? " \((s % 86400) / 3600)h" : "")
    }
}
