import Foundation
import Logging
import StrataBundle
import StrataCore
import StrataCrypto

extension RunProducer {
    /// Uploads a built run's bundles, checks them, then writes its record create-only.
    func publish(_ run: BuiltRun, createdAt: Date, labels: [String: String]) throws -> PublishedRun {
        let recordKey = layout.runRecordKey(run.runId)
        let deltas = run.bundles.map { c, b in
            RunRecord.Delta(
                collection: c, key: layout.deltaKey(collection: c, runId: run.runId), size: b.size,
                sha256: b.sha256, upserts: b.manifest.upserts, deletes: b.manifest.deletes,
                dimension: b.manifest.dimension)
        }
        let record = RunRecord(runId: run.runId, createdAt: createdAt, collections: deltas, labels: labels)
        func result(_ r: RunRecord, created: Bool) -> PublishedRun {
            PublishedRun(
                runId: r.runId, recordKey: recordKey, createdAt: r.createdAt, deltas: r.collections,
                labels: r.labels, created: created, part: run.part, parts: run.parts)
        }
        var log = logger
        log[metadataKey: "run"] = "\(run.runId)"

        // A retry after the record was written: nothing to upload, and nothing may be overwritten.
        // (The record was written only after its deltas were checked, so they were complete; they
        // may since have been applied and collected.)
        if let existing = try existingRecord(recordKey, matching: record) {
            log.info("the run was already published; nothing to do")
            return result(existing, created: false)
        }

        for (i, d) in deltas.enumerated() {
            try upload(run.bundles[i].bundle.path, as: d, runId: run.runId, log: log)
        }
        // The record must never name a delta that is not fully there.
        try verifyUploaded(deltas)

        do {
            try store.put(
                recordKey, data: record.encoded(), condition: .ifNoneMatch,
                options: PutOptions(contentType: "application/json"))
        } catch let e as StoreError where e.kind == .preconditionFailed {
            // Someone (an earlier attempt whose answer was lost, or a concurrent retry) wrote it.
            guard let existing = try existingRecord(recordKey, matching: record) else {
                throw StrataError(
                    .conflict, object: recordKey,
                    message: "the store refused to create the record but "
                        + "it cannot be read back", fix: "retry; if it persists, check the store")
            }
            log.info("the record appeared meanwhile with the same content")
            return result(existing, created: false)
        }
        log.notice(
            "published run",
            metadata: [
                "record": "\(recordKey)",
                "deltas": "\(deltas.map { "\($0.collection): +\($0.upserts) -\($0.deletes)" })",
            ])
        return result(record, created: true)
    }

    /// The record at `key` when it exists and describes the same run; throws `.conflict` when it
    /// exists with other content.
    private func existingRecord(_ key: String, matching record: RunRecord) throws -> RunRecord? {
        guard let (data, _) = try store.getDataIfExists(key) else { return nil }
        let existing = try RunRecord.decode(data, key: key, layout: layout)
        guard existing.sameContent(as: record) else {
            throw StrataError(
                .conflict, object: key,
                message: "a run with this id is already published with different content "
                    + "(deltas or labels differ)",
                fix: "publish these inputs under a new run id; a published run is never changed")
        }
        return existing
    }

    /// Uploads a bundle create-only (`If-None-Match: *`) unless the same bytes are already there.
    /// A delta is never overwritten: two producers given one run id and different inputs race on
    /// the key, and the one whose bytes are not there stops before writing a record, so the record,
    /// the delta and the snapshot always agree. Deltas are uploaded in collection order, so the
    /// loser stops at the first key whose content differs and only one of them can go on.
    private func upload(_ path: String, as d: RunRecord.Delta, runId: String, log: Logger) throws {
        // Skip only when the stored bytes are this bundle's.
        if let info = try store.head(d.key) {
            if try holdsSameBytes(info, as: d, localPath: path) {
                log.debug("delta already uploaded", metadata: ["key": "\(d.key)"])
                return
            }
            throw differentDelta(d, existing: info, runId: runId)
        }
        do {
            try store.put(
                d.key, file: path, condition: .ifNoneMatch,
                options: PutOptions(contentType: "application/gzip", sha256: d.sha256))
        } catch let e as StoreError where e.kind == .preconditionFailed {
            // Created meanwhile: by an earlier attempt of ours whose answer was lost, or by a
            // retry of the same run (same bytes, fine), or by another producer (not fine).
            let info = try store.head(d.key)
            if let info, try holdsSameBytes(info, as: d, localPath: path) {
                log.info("the delta appeared meanwhile with the same bytes", metadata: ["key": "\(d.key)"])
                return
            }
            throw differentDelta(d, existing: info, runId: runId)
        }
        log.debug("uploaded delta", metadata: ["key": "\(d.key)", "bytes": "\(d.size)"])
    }

    /// Whether the stored object is this delta: same size and SHA-256. When the store does not
    /// know the object's SHA-256 (the file store), the stored bytes are downloaded and hashed.
    private func holdsSameBytes(_ info: ObjectInfo, as d: RunRecord.Delta, localPath: String) throws -> Bool {
        guard info.size == d.size else { return false }
        if let sha = info.sha256 { return sha.lowercased() == d.sha256.lowercased() }
        let copy = localPath + ".stored"
        defer { try? FileManager.default.removeItem(atPath: copy) }
        try store.get(d.key, toFile: copy)
        return try SHA256.hexOfFile(atPath: copy).hex == d.sha256.lowercased()
    }

    private func differentDelta(_ d: RunRecord.Delta, existing: ObjectInfo?, runId: String) -> StrataError {
        let found = existing.map { i in
            "\(i.size) bytes" + (i.sha256.map { " with SHA-256 \($0)" } ?? " (SHA-256 unknown)")
        }
        return StrataError(
            .conflict, object: d.key,
            message: "run \(runId): the delta of collection \(d.collection) already exists with other content ("
                + (found ?? "it changed while being checked")
                + ", this run's is \(d.size) bytes with SHA-256 \(d.sha256)); another producer is publishing "
                + "this run id with different inputs, or an earlier attempt had other inputs. No record was written",
            fix: "publish these inputs under a new --run-id (a delta is never overwritten)")
    }

    /// Checks with HEAD that every delta is there with the expected size (and SHA-256 when the
    /// store knows it).
    func verifyUploaded(_ deltas: [RunRecord.Delta]) throws {
        for d in deltas {
            guard let info = try store.head(d.key) else {
                throw StrataError(
                    .notFound, object: d.key, message: "the delta is missing after its upload",
                    fix: "retry the same run id; check the store's consistency and lifecycle rules")
            }
            if info.size != d.size || (info.sha256 != nil && info.sha256 != d.sha256) {
                throw StrataError(
                    .corrupt, object: d.key,
                    message: "the stored delta is \(info.size) bytes"
                        + (info.sha256.map { " with SHA-256 \($0)" } ?? "")
                        + ", expected \(d.size) bytes with SHA-256 \(d.sha256)",
                    fix: "publish under a new --run-id (a delta is never overwritten); "
                        + "check the store if it happens again")
            }
        }
    }
}
