import Foundation
import Logging
import StrataBundle
import StrataCore

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
            try upload(run.bundles[i].bundle.path, as: d, log: log)
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

    /// Uploads a bundle unless the same bytes are already there. Overwriting is safe here: no
    /// record names this run yet, so no reader relies on the object.
    private func upload(_ path: String, as d: RunRecord.Delta, log: Logger) throws {
        // Skip only when the store vouches for the same bytes; without a stored SHA-256, upload again.
        if let info = try store.head(d.key), info.size == d.size, info.sha256 == d.sha256 {
            log.debug("delta already uploaded", metadata: ["key": "\(d.key)"])
            return
        }
        try store.put(
            d.key, file: path, condition: .none,
            options: PutOptions(contentType: "application/gzip", sha256: d.sha256))
        log.debug("uploaded delta", metadata: ["key": "\(d.key)", "bytes": "\(d.size)"])
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
                    fix: "retry the same run id (the bundle is uploaded again)")
            }
        }
    }
}
