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
                    "Roll back to \($0.version) (\($0.rowCount) rows): `"
                        + VersionHistory.restoreCommand(c, version: $0.version, reason: "rows lost without deletes")
                        + "`; "
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
    func checkUnpublished(_ c: String, pointer: String, processed: Set<String>?) {
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
        let history = VersionHistory(store: store, layout: layout)
        var completeNewer: [SnapshotManifest] = []
        let described = newer.map { v -> String in
            let checked = try? history.check(c, version: v)
            if let checked, checked.isComplete, let m = checked.manifest { completeNewer.append(m) }
            let when = Identifiers.date(of: v).map { ", \(age($0)) old" } ?? ""
            let state = checked.map {
                $0.isComplete ? "complete, never pointed to" : $0.problems.joined(separator: "; ")
            }
            return "\(v) (\(state ?? "could not be checked")\(when))"
        }
        var ev: VerifyEvidence = ["pointer": .string(pointer), "newer_versions": listed(described)]
        // The pointer lags: a complete version newer than the pointer's applied runs that are no
        // longer pending (their records are gone), so compacting on the pointer loses their rows.
        if let newest = completeNewer.max(by: { $0.version < $1.version }) {
            let lost = Set(completeNewer.flatMap { $0.appliedRuns.map(\.runId) }).filter {
                !(processed?.contains($0) ?? true) && runKeys[$0] == nil
            }.sorted()
            let command = VersionHistory.restoreCommand(c, version: newest.version, reason: "the pointer lags")
            ev["newest_complete_newer_version"] = .string(newest.version)
            ev["newest_complete_newer_rows"] = .int(newest.rowCount)
            if !lost.isEmpty {
                ev["runs_only_in_newer_versions"] = listed(lost)
                add(
                    VerifyCheck.historyUnpublished, c, .failed,
                    "the pointer lags: version \(newest.version) (\(newest.rowCount) rows) is complete and newer than the "
                        + "pointer's, and \(lost.count) run\(lost.count == 1 ? " it applied is" : "s it applied are") no "
                        + "longer in the store, so their rows exist only in the newer version", ev,
                    hint: "the pointer was set back (a restore, a script): move it forward again with `\(command)`")
                return
            }
            ev["command_if_the_pointer_was_set_back"] = .string(command)
        }
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
                    + "these directories. If it keeps happening, check the compactor's logs for crashes"
                    + (ev["command_if_the_pointer_was_set_back"].map {
                        ". If the pointer was set back instead (a restore, a script), move it forward: `\($0)`"
                    } ?? ""))
        }
    }
}
