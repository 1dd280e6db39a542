import Foundation
import StrataCore

/// A run waiting to be applied to one collection, with what its record says of the delta.
public struct PendingRun: Sendable, Equatable {
    public var runId: String
    public var createdAt: Date
    public var deltaKey: String
    public var size: Int64
    public var sha256: String
    public var upserts: Int
    public var deletes: Int

    public init(
        runId: String, createdAt: Date, deltaKey: String, size: Int64, sha256: String, upserts: Int,
        deletes: Int
    ) {
        self.runId = runId
        self.createdAt = createdAt
        self.deltaKey = deltaKey
        self.size = size
        self.sha256 = sha256
        self.upserts = upserts
        self.deletes = deletes
    }
}

/// A run the planner will not apply, with the quarantine reason and the error in words.
public struct RefusedRun: Sendable, Equatable {
    public var run: PendingRun
    public var reason: String
    public var detail: String
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
            if !out.isEmpty
                && (out.count >= settings.maxRunsPerPublish || rows + r > settings.maxRowsPerPublish
                    || bytes + run.size > settings.maxBytesPerPublish)
            {
                break
            }
            out.append(run)
            rows += r
            bytes += run.size
        }
        return out
    }

    /// A run created more than this far ahead of the compactor's clock is quarantined `futureRunId`:
    /// its rows would win over every run made until then.
    public static let maxFutureSkew: TimeInterval = 3600

    /// Splits pending runs into those that may be applied and those to quarantine (SPEC invariant
    /// 4): `futureRunId` when created more than an hour after `now`; `tooLate` when created before
    /// `now - settings.lateRunWindow` (its tombstones may be purged already) unless the operator
    /// named it in `settings.allowLateRuns`.
    public static func triage(_ runs: [PendingRun], collection: String, now: Date, settings: CompactorSettings)
        -> (accepted: [PendingRun], refused: [RefusedRun])
    {
        var accepted: [PendingRun] = []
        var refused: [RefusedRun] = []
        let cutoff = now.addingTimeInterval(-settings.lateRunWindow)
        let window = CompactorSettings.describe(seconds: settings.lateRunWindow)
        for run in order(runs) {
            let created = RunRecord.timestamp(run.createdAt)
            let idTime = Identifiers.date(of: run.runId)
            if run.createdAt > now.addingTimeInterval(maxFutureSkew)
                || idTime.map({ $0 > now.addingTimeInterval(maxFutureSkew) }) == true
            {
                refused.append(
                    RefusedRun(
                        run: run, reason: "futureRunId",
                        detail: "the run was created at \(created) (id \(run.runId)), more than an hour after this "
                            + "compactor's clock (\(RunRecord.timestamp(now))); fix the producer's clock or run id and "
                            + "produce the rows again as a new run"))
            } else if run.createdAt < cutoff, !settings.allowLateRuns.contains(run.runId) {
                refused.append(
                    RefusedRun(
                        run: run, reason: "tooLate",
                        detail: "the run was created at \(created), before the late-run window of \(window) "
                            + "(tombstones older than \(RunRecord.timestamp(cutoff)) are purged); apply it anyway with "
                            + "`snapctl compact --collection \(collection) --allow-late \(run.runId)`"))
            } else {
                accepted.append(run)
            }
        }
        return (accepted, refused)
    }
}
