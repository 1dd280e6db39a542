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
        var lost: [String] = []  // failed: to zero, or more than the threshold, without deletes
        var mismatched: [String] = []  // warning: the counts do not add up, by a little
        var deletedMany: [String] = []  // warning: a large drop, by explicit deletes
        var rollbacks: [String] = []
        var restoreTo: SnapshotManifest? = nil
        for i in 0..<(chain.count - 1) {
            let v = chain[i]
            let parent = chain[i + 1]
            let added = v.appliedRuns.reduce(0) { $0 + $1.newIds }
            let deleted = v.appliedRuns.reduce(0) { $0 + $1.deletedExisting }
            let expected = parent.rowCount + added - deleted
            let drop = parent.rowCount - v.rowCount
            func percent(_ n: Int) -> String {
                parent.rowCount > 0 ? String(format: "%.0f%%", Double(n) * 100 / Double(parent.rowCount)) : "-"
            }
            if v.rolledBackRuns != nil {
                if drop != 0 {
                    rollbacks.append(
                        "\(v.version) is a rollback (\(v.note ?? "no note")): \(parent.rowCount) -> \(v.rowCount) rows")
                }
                continue
            }
            let sum = "\(parent.rowCount) + \(added) new − \(deleted) deleted = \(expected)"
            if v.rowCount == expected {
                if drop > 0, parent.rowCount > 0,
                    Double(drop) / Double(parent.rowCount) > settings.dropThreshold || v.rowCount == 0
                {
                    let runs = v.appliedRuns.filter { $0.deletedExisting > 0 }.map(\.runId)
                    deletedMany.append(
                        "\(v.version) deleted \(drop) of \(parent.rowCount) rows (\(percent(drop))) with explicit "
                            + "deletes in run\(runs.count == 1 ? "" : "s") \(runs.joined(separator: ", "))")
                }
                continue
            }
            let unexplained = max(0, expected - v.rowCount)
            if parent.rowCount > 0,
                v.rowCount == 0 || Double(unexplained) / Double(parent.rowCount) > settings.dropThreshold
            {
                lost.append(
                    "\(v.version) has \(v.rowCount) rows where \(sum): \(unexplained) rows (\(percent(unexplained))) missing"
                )
                restoreTo = restoreTo ?? parent
            } else {
                mismatched.append("\(v.version) has \(v.rowCount) rows where \(sum)")
            }
        }
        var ev: VerifyEvidence = ["versions_checked": .int(chain.count), "rows_newest_first": listed(counts)]
        if let end = st.chainEnd { ev["history_ends"] = .string(end) }
        if !rollbacks.isEmpty { ev["rollbacks"] = listed(rollbacks) }
        let all = lost + mismatched + deletedMany
        if all.count > 1 { ev["problems"] = listed(all) }
        let foreign =
            "a version whose counts do not add up was not made by a Strata compactor (which refuses to publish "
            + "one), or its manifest was edited: find who writes to \(layout.snapshotPrefix(c))"
        if !lost.isEmpty {
            add(
                VerifyCheck.historyRows, c, .failed, "rows were lost without deletes: " + lost.joined(separator: "; "),
                ev,
                hint: (restoreTo.map {
                    "Roll back to \($0.version) (\($0.rowCount) rows): `snapctl rollback \(c) \($0.version)`; "
                }
                    ?? "") + foreign)
        } else if !mismatched.isEmpty || !deletedMany.isEmpty {
            var hints: [String] = []
            if !mismatched.isEmpty { hints.append(foreign) }
            if !deletedMany.isEmpty {
                hints.append(
                    "large drops by explicit deletes are legal: check that the producers of these runs meant to "
                        + "delete the rows (their records carry the producers' labels: `snapctl store get runs/RUN.json -`)"
                )
            }
            add(
                VerifyCheck.historyRows, c, .warning, (mismatched + deletedMany).joined(separator: "; "), ev,
                hint: hints.joined(separator: "; "))
        } else {
            add(
                VerifyCheck.historyRows, c, .passed,
                chain.count == 1
                    ? "one version (\(chain[0].rowCount) rows); nothing to compare yet"
                    : "row counts add up over \(chain.count) versions (\(chain.last!.rowCount) -> \(chain[0].rowCount) rows)",
                ev)
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
            add(
                VerifyCheck.historyUnpublished, c, .passed,
                "no version newer than the pointer's (\(versions.count) versions in all)",
                ["versions": .int(versions.count)])
            return
        }
        let young = newer.filter { v in
            Identifiers.date(of: v).map { now.timeIntervalSince($0) < settings.orphanGrace } ?? false
        }
        let old = newer.filter { !young.contains($0) }
        let described = newer.map { v -> String in
            let complete = (try? store.head(layout.manifestKey(collection: c, version: v))) != nil
            let when = Identifiers.date(of: v).map { ", \(age($0)) old" } ?? ""
            return "\(v) (\(complete ? "complete, never pointed to" : "no manifest: upload stopped")\(when))"
        }
        let ev: VerifyEvidence = ["pointer": .string(pointer), "newer_versions": listed(described)]
        if old.isEmpty {
            add(
                VerifyCheck.historyUnpublished, c, .info,
                "\(young.count) version\(young.count == 1 ? "" : "s") newer than the pointer, younger than the grace period: "
                    + "probably a compaction uploading right now", ev)
        } else {
            add(
                VerifyCheck.historyUnpublished, c, .warning,
                "\(newer.count) version\(newer.count == 1 ? " newer than the pointer was" : "s newer than the pointer were") "
                    + "never published: a compaction crashed or lost the race after uploading", ev,
                hint:
                    "harmless: the runs they hold stay pending and the next compaction applies them; `snapctl gc` removes "
                    + "these directories. If it keeps happening, check the compactor's logs for crashes")
        }
    }
}
