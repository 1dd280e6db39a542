import Foundation
import StrataCore
import StrataDelta

/// The snapshot file's contents: opened read-only, as a reader would.
extension Verifier {
    func checkSnapshot(_ c: String, path: String, _ st: inout CollectionState) {
        guard let m = st.manifest else { return }
        let rollbackHint = rollbackHint(c, st)
        let db: Database
        do {
            db = try Database(path: path, mode: .readOnlyImmutable)
            try db.execute("PRAGMA trusted_schema = OFF")
            _ = try db.scalarInt("SELECT count(*) FROM sqlite_master")
        } catch {
            addFailure(
                VerifyCheck.snapshotOpen, c, "the snapshot of version \(m.version) does not open as SQLite", error,
                hint: rollbackHint)
            return
        }
        add(
            VerifyCheck.snapshotOpen, c, .passed, "opens read-only as SQLite",
            [
                "file": .string(SnapshotFormat.fileName),
                "size": .string(Verifier.mib(m.file(SnapshotFormat.fileName)?.size ?? 0)),
            ])

        // Integrity: SQLite's own check of pages and indexes.
        let pragma = settings.deep ? "integrity_check" : "quick_check"
        do {
            let s = try db.prepare("PRAGMA \(pragma)")
            var lines: [String] = []
            while lines.count < settings.maxListed, try s.step() { lines.append(s.columnText(0) ?? "") }
            if lines == ["ok"] {
                add(VerifyCheck.snapshotIntegrity, c, .passed, "PRAGMA \(pragma): ok")
            } else {
                add(
                    VerifyCheck.snapshotIntegrity, c, .failed,
                    "PRAGMA \(pragma) found damage: \(lines.joined(separator: "; "))",
                    ["pragma": .string(pragma), "problems": .list(lines)], hint: rollbackHint)
            }
        } catch {
            addFailure(VerifyCheck.snapshotIntegrity, c, "PRAGMA \(pragma) failed", error, hint: rollbackHint)
        }

        // Format: tables, meta, and that the file is this collection's version.
        var tables = Set<String>()
        var meta: [String: String] = [:]
        var processed: ProcessedRuns? = nil
        do {
            let t = try db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            while try t.step() { if let n = t.columnText(0) { tables.insert(n) } }
            if tables.contains("meta") {
                let s = try db.prepare("SELECT key, value FROM meta")
                while try s.step() { if let k = s.columnText(0) { meta[k] = s.columnText(1) ?? "" } }
            }
            if tables.contains("applied_runs") {
                let s = try db.prepare("SELECT run_id, status FROM applied_runs")
                var statuses: [String: String] = [:]
                while try s.step() { if let id = s.columnText(0) { statuses[id] = s.columnText(1) ?? "applied" } }
                processed = ProcessedRuns(appliedRunsTable: statuses)
            }
        } catch {
            addFailure(VerifyCheck.snapshotFormat, c, "cannot read the snapshot's schema", error, hint: rollbackHint)
            return
        }
        var problems: [String] = []
        let missing = ["meta", "embeddings", "applied_runs"].filter { !tables.contains($0) }
        if !missing.isEmpty {
            problems.append("missing table\(missing.count == 1 ? "" : "s") \(missing.joined(separator: ", "))")
        }
        if tables.contains("meta") {
            if meta["format"] != SnapshotFormat.name {
                problems.append(
                    "meta.format is \(meta["format"].map { "\"\($0)\"" } ?? "missing"), expected \"\(SnapshotFormat.name)\""
                )
            }
            if let v = meta["format_version"], let major = DeltaFormat.major(ofVersion: v) {
                if major > SnapshotFormat.majorVersion {
                    problems.append(
                        "meta.format_version is \(v); this snapctl reads version \(SnapshotFormat.majorVersion) (upgrade snapctl)"
                    )
                }
            } else {
                problems.append("meta.format_version is \(meta["format_version"] ?? "missing")")
            }
            if meta["collection"] != c {
                problems.append("meta.collection is \(meta["collection"] ?? "missing"), expected \(c)")
            }
            if let v = meta["version"], v != m.version {
                problems.append("meta.version is \(v): the file belongs to another version than \(m.version)")
            }
        }
        if let processed {
            let unrecorded = m.appliedRuns.map(\.runId).filter { !processed.processed.contains($0) }
            if !unrecorded.isEmpty {
                problems.append("applied_runs lacks \(unrecorded.count) run(s) the manifest says this version applied")
            }
        }
        var ev: VerifyEvidence = [
            "format": .string(meta["format"] ?? "-"), "format_version": .string(meta["format_version"] ?? "-"),
            "collection": .string(meta["collection"] ?? "-"), "tables": .list(tables.sorted()),
        ]
        if problems.isEmpty {
            add(
                VerifyCheck.snapshotFormat, c, .passed,
                "\(SnapshotFormat.name) v\(meta["format_version"] ?? "?") for \(c)", ev)
            st.processed = processed
        } else {
            ev["problems"] = .list(problems)
            add(
                VerifyCheck.snapshotFormat, c, .failed,
                "not a valid snapshot of \(c): " + problems.joined(separator: "; "), ev,
                hint: rollbackHint)
            if missing.contains("embeddings") { return }
            if processed != nil { st.processed = processed }
        }

        // Dimension: the manifest's, the file's, and (below) every sampled blob's.
        let fileDimension = meta["dimension"].flatMap { Int($0) }
        if fileDimension == m.dimension && m.dimension > 0 {
            add(
                VerifyCheck.snapshotDimension, c, .passed, "dimension \(m.dimension), as the manifest says",
                ["manifest": .int(m.dimension), "file": .int(m.dimension)])
        } else {
            add(
                VerifyCheck.snapshotDimension, c, .failed,
                "wrong dimension: the manifest says \(m.dimension), the file's meta says \(meta["dimension"] ?? "nothing")",
                ["manifest": .int(m.dimension), "file": .string(meta["dimension"] ?? "-")],
                hint: "readers that trust either one get vectors of the wrong size: this version is unusable. "
                    + (rollbackHint ?? ""))
        }

        let rows: Int
        do {
            rows = Int(try db.scalarInt("SELECT count(*) FROM embeddings") ?? 0)
        } catch {
            addFailure(VerifyCheck.snapshotRows, c, "cannot count the rows", error, hint: rollbackHint)
            return
        }
        checkRows(c, rows: rows, meta: meta, st)
        checkSample(c, db, dimension: fileDimension ?? m.dimension, rows: rows, rollbackHint: rollbackHint)
        if let pattern = settings.idPattern(for: c) { checkIds(c, db, pattern: pattern) }
        if settings.deep, rows > 0 { checkQuery(c, path: path, db, rows: rows, rollbackHint: rollbackHint) }
    }

    /// `snapctl rollback` to the newest ancestor, when there is one.
    func rollbackHint(_ c: String, _ st: CollectionState) -> String? {
        guard st.chain.count > 1 else { return nil }
        let reason = "version \(st.chain[0].version) is damaged"
        return "Roll back to the version before it: `"
            + VersionHistory.restoreCommand(c, version: st.chain[1].version, reason: reason) + "`"
    }

    private func checkRows(_ c: String, rows: Int, meta: [String: String], _ st: CollectionState) {
        guard let m = st.manifest else { return }
        var ev: VerifyEvidence = ["file_rows": .int(rows), "manifest_rows": .int(m.rowCount)]
        if let r = meta["row_count"] { ev["meta_row_count"] = .string(r) }
        if rows != m.rowCount || (meta["row_count"].flatMap { Int($0) }.map { $0 != rows } ?? false) {
            add(
                VerifyCheck.snapshotRows, c, .failed,
                "count mismatch: the file has \(rows) rows, the manifest says \(m.rowCount)"
                    + (meta["row_count"].map { " and the file's meta \($0)" } ?? ""), ev,
                hint: "the version was not made (or was changed after) by a compactor that checks counts. "
                    + (rollbackHint(c, st) ?? "Produce the rows again and compact."))
            return
        }
        guard rows == 0 else {
            add(VerifyCheck.snapshotRows, c, .passed, "\(rows) rows, as the manifest says", ev)
            return
        }
        // Empty: fine only when explicit deletes emptied it.
        let lastWithRows = st.chain.first { $0.rowCount > 0 }
        if let i = st.chain.firstIndex(where: { $0.rowCount > 0 }), i > 0 {
            let emptied = st.chain[i - 1]
            let before = st.chain[i].rowCount
            let deleted = emptied.appliedRuns.reduce(0) { $0 + $1.deletedExisting }
            ev["emptied_by_version"] = .string(emptied.version)
            ev["rows_before"] = .int(before)
            ev["deleted_by_its_runs"] = .int(deleted)
            if emptied.rolledBackRuns == nil, deleted >= before {
                add(
                    VerifyCheck.snapshotRows, c, .info,
                    "empty, as intended: version \(emptied.version) deleted all \(before) rows with explicit deletes",
                    ev)
                return
            }
            add(
                VerifyCheck.snapshotRows, c, .failed,
                "empty snapshot: version \(emptied.version) went from \(before) rows to 0"
                    + (emptied.rolledBackRuns != nil
                        ? " in a rollback"
                        : deleted == 0 ? " without explicit deletes" : " although its runs deleted only \(deleted)"),
                ev,
                hint: "readers see no rows. Roll back to the last version with rows: "
                    + "`" + VersionHistory.restoreCommand(c, version: lastWithRows!.version, reason: "empty snapshot")
                    + "` (\(before) rows)")
            return
        }
        ev["history"] = .string(st.chainEnd ?? "every version back to the first is empty")
        add(
            VerifyCheck.snapshotRows, c, .failed,
            "empty snapshot: 0 rows, and the history kept shows no version with rows that explicit deletes emptied", ev,
            hint: "readers see no rows. Check `snapctl verify` for quarantined runs; produce the rows again and compact"
        )
    }

    /// Embeddings (blob length, finite float32) and metadata (a flat JSON object) of up to
    /// `sampleRows` rows spread evenly over the table, or of every row with `deep`.
    private func checkSample(_ c: String, _ db: Database, dimension: Int, rows: Int, rollbackHint: String?) {
        guard rows > 0 else { return }
        let columns = "SELECT rowid, id, typeof(embedding), embedding, typeof(metadata), metadata FROM embeddings"
        var sampled = 0
        var badEmbeddings: [String] = []
        var badMetadata: [String] = []
        var seen = Set<Int64>()
        func inspect(_ s: Statement) {
            let rowid = s.columnInt64(0)
            guard seen.insert(rowid).inserted else { return }
            sampled += 1
            let id = s.columnText(1) ?? "(rowid \(rowid))"
            let type = s.columnText(2) ?? ""
            let blob = s.columnBytes(3)
            if type != "blob" {
                badEmbeddings.append("\(id): embedding is \(type), not a BLOB")
            } else if blob.count != dimension * 4 {
                badEmbeddings.append("\(id): \(blob.count) bytes, expected \(dimension * 4) (dimension \(dimension))")
            } else if let i = Verifier.firstNonFinite(blob) {
                badEmbeddings.append("\(id): value [\(i)] is NaN or infinite")
            }
            switch s.columnText(4) {
            case "null": break
            case "text":
                let text = s.columnText(5) ?? ""
                if let problem = Verifier.metadataProblem(text) { badMetadata.append("\(id): \(problem)") }
            default:
                badMetadata.append("\(id): metadata is \(s.columnText(4) ?? "?"), not TEXT")
            }
        }
        do {
            if settings.deep || rows <= settings.sampleRows {
                let s = try db.prepare(columns + " ORDER BY rowid")
                while try s.step() { inspect(s) }
            } else {
                let lo = Double(try db.scalarInt("SELECT min(rowid) FROM embeddings") ?? 0)
                let hi = Double(try db.scalarInt("SELECT max(rowid) FROM embeddings") ?? 0)
                let s = try db.prepare(columns + " WHERE rowid >= ? ORDER BY rowid LIMIT 1")
                let n = max(2, settings.sampleRows)
                for i in 0..<n {
                    let target = Int64((lo + (hi - lo) * Double(i) / Double(n - 1)).rounded(.down))
                    s.reset()
                    try s.bind(1, int: target)
                    if try s.step() { inspect(s) }
                }
            }
        } catch {
            addFailure(VerifyCheck.snapshotEmbeddings, c, "cannot read rows", error, hint: rollbackHint)
            return
        }
        let scope = sampled == rows ? "all \(rows) rows" : "\(sampled) sampled rows of \(rows)"
        if badEmbeddings.isEmpty {
            add(
                VerifyCheck.snapshotEmbeddings, c, .passed, "\(scope): \(dimension) finite float32 values each",
                ["checked": .int(sampled), "rows": .int(rows), "dimension": .int(dimension)])
        } else {
            add(
                VerifyCheck.snapshotEmbeddings, c, .failed,
                "\(badEmbeddings.count) of \(scope) \(badEmbeddings.count == 1 ? "has a bad embedding" : "have bad embeddings")",
                [
                    "checked": .int(sampled), "rows": .int(rows), "dimension": .int(dimension),
                    "bad": listed(badEmbeddings),
                ],
                hint: "similarity search on these rows fails or returns nonsense. " + (rollbackHint ?? "")
                    + (sampled < rows ? " Run with --deep to check every row." : ""))
        }
        if badMetadata.isEmpty {
            add(
                VerifyCheck.snapshotMetadata, c, .passed, "\(scope): metadata is NULL or a flat JSON object",
                ["checked": .int(sampled)])
        } else {
            add(
                VerifyCheck.snapshotMetadata, c, .failed,
                "\(badMetadata.count) of \(scope) \(badMetadata.count == 1 ? "has" : "have") metadata that is not a flat JSON object",
                ["checked": .int(sampled), "bad": listed(badMetadata)],
                hint: "filters on metadata fail for these rows; fix the producer and upsert the rows again")
        }
    }

    private func checkIds(_ c: String, _ db: Database, pattern: IDPattern) {
        var total = 0
        var bad: [String] = []
        var badCount = 0
        do {
            let s = try db.prepare("SELECT id FROM embeddings")
            while try s.step() {
                total += 1
                let id = s.columnText(0) ?? ""
                if !pattern.matches(id) {
                    badCount += 1
                    if bad.count < settings.maxListed { bad.append(id) }
                }
            }
        } catch {
            addFailure(VerifyCheck.snapshotIds, c, "cannot read the ids", error)
            return
        }
        if badCount == 0 {
            add(
                VerifyCheck.snapshotIds, c, .passed, "all \(total) ids match \(pattern.source)",
                ["pattern": .string(pattern.source), "checked": .int(total)])
        } else {
            add(
                VerifyCheck.snapshotIds, c, .failed,
                "\(badCount) of \(total) ids do not match \(pattern.source), e.g. \(bad[0])",
                [
                    "pattern": .string(pattern.source), "checked": .int(total), "offending": .int(badCount),
                    "examples": .list(bad),
                ],
                hint: "a producer writes ids of another shape: fix it, then remove these rows with deletes "
                    + "({\"id\": \"...\", \"delete\": true}) in a new run and compact")
        }
    }

    /// The index of the first float32 (little-endian) that is NaN or infinite.
    static func firstNonFinite(_ blob: UnsafeRawBufferPointer) -> Int? {
        var i = 0
        while i + 4 <= blob.count {
            let exponent = (UInt16(blob[i + 3] & 0x7f) << 1) | UInt16(blob[i + 2] >> 7)
            if exponent == 0xff { return i / 4 }
            i += 4
        }
        return nil
    }

    /// Why metadata text is not a flat JSON object of strings, numbers and booleans, or nil.
    static func metadataProblem(_ text: String) -> String? {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) else {
            return "metadata is not JSON"
        }
        guard let dict = obj as? [String: Any] else { return "metadata is JSON but not an object" }
        for (k, v) in dict where !(v is String || v is NSNumber || v is Bool || v is Int || v is Double) {
            return "metadata key \"\(k)\" holds \(v is NSNull ? "null" : "a nested value")"
        }
        return nil
    }
}
