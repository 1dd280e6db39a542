import Foundation
import StrataCore

/// Versions over time: row counts along the published history, and versions never published.
extension Verifier {
    /// Compares each version's rows with its parent's: rows(new) = rows(parent) + new ids −
    /// deleted existing ids (SPEC invariant 3). A drop to zero, or a drop of more than
    /// `dropThreshold` that the applied runs' deletes do not explain, fails.
    func checkHistoryRows(_ c: String, _ st: CollectionState) {
        let chain = st.chain
        guard !chain.isEmpty else { return }
        let counts = chain.map { "\($0.version): \($0.rowCount)" }
        var failures: [String] = []
        var warnings: [String] = []
        var notes: [String] = []
        var restoreTo: SnapshotManifest? = nil
        for i in 0..<(chain.count - 1) {
            let v = chain[i]
            let parent = chain[i + 1]
            let added = v.appliedRuns.reduce(0) { $0 + $1.newIds }
            let deleted = v.appliedRuns.reduce(0) { $0 + $1.deletedExisting }
            let expected = parent.rowCount + added - deleted
            let lost = parent.rowCount - v.rowCount
            let share = parent.rowCount > 0 ? Double(lost) / Double(parent.rowCount) : 0
            let percent = String(format: "%.0f%%", share * 100)
            if v.rolledBackRuns != nil {
                if lost != 0 {
                    notes.append("\(v.version) is a rollback (\(v.note ?? "no note")): \(parent.rowCount) -> \(v.rowCount) rows")
                }
                continue
            }
            if v.rowCount == expected {
                if lost > 0, share > settings.dropThreshold || v.rowCount == 0 {
                    warnings.append("\(v.version) deleted \(lost) of \(parent.rowCount) rows (\(percent)) with explicit deletes in "
                                        + "\(v.appliedRuns.filter { $0.deletedExisting > 0 }.map(\.runId).joined(separator: ", "))")
                }
                continue
            }
            let unexplained = v.rowCount < expected ? expected - v.rowCount : 0
            if v.rowCount == 0, parent.rowCount > 0 {
                failures.append("\(v.version) dropped to zero from \(parent.rowCount) rows; its runs deleted only \(deleted)")
                restoreTo = restoreTo ?? parent
            } else if unexplained > 0, parent.rowCount > 0, Double(unexplained) / Double(parent.rowCount) > settings.dropThreshold {
                failures.append("\(v.version) lost \(unexplained) rows not explained by deletes: \(parent.rowCount) + \(added) new − "
                                    + "\(deleted) deleted = \(expected), but it has \(v.rowCount)")
                restoreTo = restoreTo ?? parent
            } else {
                warnings.append("\(v.version) has \(v.rowCount) rows; \(parent.rowCount) + \(added) new − \(deleted) deleted = \(expected)")
            }
        }
        var ev: VerifyEvidence = ["versions_checked": .int(chain.count), "rows_newest_first": listed(counts)]
        if let end = st.chainEnd { ev["history_ends"] = .string(end) }
        if !notes.isEmpty { ev["rollbacks"] = listed(notes) }
        if !failures.isEmpty {
            ev["problems"] = listed(failures + warnings)
            add(VerifyCheck.historyRows, c, .failed, "rows were lost without deletes: " + failures.joined(separator: "; "), ev,
                hint: "a version was published that breaks the counts (not by a Strata compactor, or a bug). "
                    + (restoreTo.map { "Roll back to \($0.version) (\($0.rowCount) rows): `snapctl rollback \(c) \($0.version)`, " }
                        ?? "")
                    + "and find who writes to \(layout.snapshotPrefix(c))")
        } else if !warnings.isEmpty {
            ev["problems"] = listed(warnings)
            add(VerifyCheck.historyRows, c, .warning, warnings.joined(separator: "; "), ev,
                hint: "large drops through explicit deletes are legal: check that the producers meant to delete these rows "
                    + "(the run ids are in the applied runs)")
        } else {
            add(VerifyCheck.historyRows, c, .passed,
                chain.count == 1 ? "one version (\(chain[0].rowCount) rows); nothing to compare yet"
                    : "row counts add up over \(chain.count) versions (\(chain.last!.rowCount) -> \(chain[0].rowCount) rows)", ev)
        }
    }

    /// Version directories newer than the pointer: a compaction that crashed after uploading, or
    /// lost the race to another compactor. Harmless (their runs stay pending, `snapctl gc` removes
    /// them); very young ones may be an upload in progress.
    func checkUnpublished(_ c: String, pointer: String) {
        let versions: [String]
        do { versions = try locator.versions(c) } catch {
            addFailure(VerifyCheck.historyUnpublished, c, "cannot list versions", error, status: .warning)
            return
        }
        let newer = versions.filter { $0 > pointer }
        guard !newer.isEmpty else {
            add(VerifyCheck.historyUnpublished, c, .passed, "no version newer than the pointer's (\(versions.count) versions in all)",
                ["versions": .int(versions.count)])
            return
        }
        let young = newer.filter { v in Identifiers.date(of: v).map { now.timeIntervalSince($0) < settings.orphanGrace } ?? false }
        let old = newer.filter { !young.contains($0) }
        let described = newer.map { v -> String in
            let complete = (try? store.head(layout.manifestKey(collection: c, version: v))) != nil
            let when = Identifiers.date(of: v).map { ", \(age($0)) old" } ?? ""
            return "\(v) (\(complete ? "complete, never pointed to" : "no manifest: upload stopped")\(when))"
        }
        let ev: VerifyEvidence = ["pointer": .string(pointer), "newer_versions": listed(described)]
        if old.isEmpty {
            add(VerifyCheck.historyUnpublished, c, .info,
                "\(young.count) version\(young.count == 1 ? "" : "s") newer than the pointer, younger than the grace period: "
                    + "probably a compaction uploading right now", ev)
        } else {
            add(VerifyCheck.historyUnpublished, c, .warning,
                "\(newer.count) version\(newer.count == 1 ? " newer than the pointer was" : "s newer than the pointer were") "
                    + "never published: a compaction crashed or lost the race after uploading", ev,
                hint: "harmless: the runs they hold stay pending and the next compaction applies them; `snapctl gc` removes "
                    + "these directories. If it keeps happening, check the compactor's logs for crashes")
        }
    }
}
