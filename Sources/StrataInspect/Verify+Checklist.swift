import Foundation
import StrataCore
import StrataDelta

#if canImport(Glibc)
    import Glibc
#endif

/// The seed's checklist beyond the version itself: is the data queryable, are deltas still
/// being created, which prefixes of a shared bucket are not Strata's.
extension Verifier {
    /// `--deep`: a query smoke test, as a reader would run it. A row from the middle of the table
    /// must be its own nearest neighbour (L2 distance 0), through the same scan `snapctl query` uses.
    func checkQuery(_ c: String, path: String, _ db: Database, rows: Int, rollbackHint: String?) {
        do {
            let mid = try db.scalarInt("SELECT rowid FROM embeddings ORDER BY rowid LIMIT 1 OFFSET \(rows / 2)") ?? 0
            let s = try db.prepare("SELECT id FROM embeddings WHERE rowid = ?")
            try s.bind(1, int: mid)
            guard try s.step(), let id = s.columnText(0) else {
                add(VerifyCheck.snapshotQuery, c, .failed, "cannot pick a row to query (rowid \(mid))")
                return
            }
            let reader = try SnapshotReader(path: path)
            defer { try? reader.close() }
            guard let row = try reader.row(id: id) else {
                add(
                    VerifyCheck.snapshotQuery, c, .failed, "the row \(id) is in the table but a lookup by id misses it",
                    ["id": .string(id)], hint: "the id index is damaged. " + (rollbackHint ?? ""))
                return
            }
            let k = 5
            let result = try VectorSearch.search(reader, query: row.embedding, metric: .l2, k: k)
            let exact = result.hits.filter { $0.score == 0 }.map(\.id)
            var ev: VerifyEvidence = [
                "id": .string(id), "scanned": .int(result.scanned), "metric": .string("l2"),
                "nearest": listed(result.hits.map { "\($0.id) (\(String(format: "%g", $0.score)))" }),
            ]
            if exact.contains(id) || (exact.count == k && result.hits.count == k) {
                if exact.count > 1 { ev["same_vector"] = .int(exact.count) }
                add(
                    VerifyCheck.snapshotQuery, c, .passed,
                    "a query by the vector of \(id) finds it first, at distance 0, scanning \(result.scanned) rows", ev)
            } else {
                add(
                    VerifyCheck.snapshotQuery, c, .failed,
                    "a query by the vector of \(id) does not find it: the nearest is "
                        + (result.hits.first.map { "\($0.id) at \(String(format: "%g", $0.score))" } ?? "nothing"), ev,
                    hint: "readers get wrong neighbours from this version. " + (rollbackHint ?? ""))
            }
        } catch {
            addFailure(VerifyCheck.snapshotQuery, c, "the query smoke test failed", error, hint: rollbackHint)
        }
    }

    /// Freshness: when the newest run of `c` was created (records still in the store, and the
    /// runs the published version applied). Old runs mean the producers stopped.
    func checkFreshness(_ c: String, _ st: CollectionState) {
        var newest: (id: String, at: Date)? = nil
        func consider(_ id: String, _ at: Date?) {
            guard let at else { return }
            if newest == nil || at > newest!.at { newest = (id, at) }
        }
        for r in runsNaming(c) { consider(r.runId, r.createdDate ?? Identifiers.date(of: r.runId)) }
        for m in st.chain.prefix(1) {
            for r in m.appliedRuns { consider(r.runId, Identifiers.date(of: r.runId)) }
        }
        guard let newest else {
            add(VerifyCheck.runsFreshness, c, .info, "no runs to judge freshness by (none in the store or the version)")
            return
        }
        let waited = now.timeIntervalSince(newest.at)
        var ev: VerifyEvidence = [
            "newest_run": .string(newest.id), "newest_run_created_at": .string(StrataJSON.iso8601(newest.at)),
            "newest_run_age": .string(age(newest.at)),
        ]
        let limit = settings.maxRunAge ?? settings.staleRunWarning
        let shown = VerifySettings.describe(duration: limit)
        ev["limit"] = .string(shown + (settings.maxRunAge == nil ? " (default)" : ""))
        guard waited > limit else {
            add(VerifyCheck.runsFreshness, c, .passed, "the newest run is \(age(newest.at)) old", ev)
            return
        }
        add(
            VerifyCheck.runsFreshness, c, settings.maxRunAge == nil ? .warning : .failed,
            "the newest run of \(c) is \(age(newest.at)) old, older than "
                + "\(VerifySettings.describe(duration: limit)): are deltas being created?", ev,
            hint: "readers see nothing newer than \(StrataJSON.iso8601(newest.at)). Check that the producers (the OCR "
                + "jobs running `snapctl produce`) run and can write to \(layout.deltasPrefix(c)); "
                + "set --max-run-age to the longest quiet period you expect")
    }

    /// Top-level prefixes that hold nothing of Strata's (no snapshot, delta or quarantine
    /// directory, and no run names them): another application's data in a shared bucket.
    func splitForeignPrefixes(_ found: [String]) -> (collections: [String], foreign: [String]) {
        var collections: [String] = []
        var foreign: [String] = []
        for c in found {
            if settings.collections.contains(c) {
                collections.append(c)
                continue
            }
            let markers = [layout.snapshotPrefix(c), layout.deltasPrefix(c), layout.quarantinePrefix(c)]
            let hasMarker = markers.contains { p in
                (try? store.listPage(prefix: p, delimiter: nil, continuation: nil, maxKeys: 1).objects.isEmpty == false)
                    ?? true  // cannot tell: check it as a collection
            }
            if hasMarker || !runsNaming(c).isEmpty { collections.append(c) } else { foreign.append(c) }
        }
        return (collections, foreign)
    }

    /// Whether process `pid` exists on this machine (kill with signal 0: ESRCH means gone).
    static func processExists(_ pid: Int32) -> Bool {
        if pid <= 0 { return false }
        return kill(pid, 0) == 0 || errno != ESRCH
    }
}
