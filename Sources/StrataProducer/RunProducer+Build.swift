import Foundation
import Logging
import StrataBundle
import StrataCore
import StrataDelta

/// A run built locally and ready to publish.
struct BuiltRun {
    var runId: String
    var part: Int
    var parts: Int
    /// One bundle per collection, sorted by collection.
    var bundles: [(collection: String, bundle: BundleInfo)]
}

extension RunProducer {
    /// Reads every input into deltas and bundles under `workDirectory`, splitting large inputs.
    /// Throws on the first bad line, before anything is published.
    func build(inputs: [ProducerInput], baseRunId: String, workDirectory: String) throws -> [BuiltRun] {
        var partsByCollection: [String: [BundleInfo]] = [:]
        for input in inputs.sorted(by: { $0.collection < $1.collection }) {
            partsByCollection[input.collection] = try build(
                input: input, baseRunId: baseRunId,
                workDirectory: workDirectory)
        }
        let count = partsByCollection.values.map(\.count).max() ?? 0
        return (0..<count).map { i in
            let bundles = partsByCollection.keys.sorted().compactMap { c -> (String, BundleInfo)? in
                let parts = partsByCollection[c]!
                return i < parts.count ? (c, parts[i]) : nil
            }
            return BuiltRun(
                runId: RunProducer.runId(base: baseRunId, part: i + 1), part: i + 1, parts: count,
                bundles: bundles.map { (collection: $0.0, bundle: $0.1) })
        }
    }

    /// One input's parts, in order.
    private func build(input: ProducerInput, baseRunId: String, workDirectory: String) throws -> [BundleInfo] {
        let reader = try NDJSONReader(path: input.path, dimension: input.dimension, maxLineBytes: settings.maxLineBytes)
        var bundles: [BundleInfo] = []
        var writer: DeltaWriter?
        var partRows = 0
        var partStart: Int64 = 0
        let maxRows = max(1, settings.maxRowsPerRun)
        let maxBytes = max(1, settings.maxInputBytesPerRun)

        func finishPart() throws {
            guard let w = writer else { return }
            writer = nil
            let summary = try w.finish()
            let bundle = try BundleWriter.write(
                deltaFile: summary.path, runId: summary.runId, collection: summary.collection,
                dimension: summary.dimension, upserts: summary.upserts, deletes: summary.deletes,
                to: (summary.path as NSString).deletingLastPathComponent + "/" + Layout.deltaFileName,
                compressionLevel: settings.compressionLevel)
            // The delta is inside the bundle now; keep only the bundle on disk.
            if !settings.keepWorkFiles { try? FileManager.default.removeItem(atPath: summary.path) }
            bundles.append(bundle)
            logger.debug(
                "built delta",
                metadata: [
                    "run": "\(summary.runId)", "collection": "\(summary.collection)", "upserts": "\(summary.upserts)",
                    "deletes": "\(summary.deletes)", "bundle_bytes": "\(bundle.size)",
                ])
        }

        var rowStart = reader.bytesRead
        while let row = try reader.next() {
            defer { rowStart = reader.bytesRead }
            if writer == nil {
                let runId = RunProducer.runId(base: baseRunId, part: bundles.count + 1)
                guard bundles.count + 1 <= 999_999 else {
                    throw StrataError(
                        .invalidInput, object: input.path, message: "needs more than 999999 runs",
                        fix: "raise maxRowsPerRun or maxInputBytesPerRun")
                }
                let dir = "\(workDirectory)/\(runId)/\(input.collection)"
                try createDirectory(dir)
                writer = try DeltaWriter(
                    path: dir + "/" + DeltaFormat.fileName, collection: input.collection,
                    runId: runId, dimension: reader.dimension, batchSize: settings.batchRows)
                partRows = 0
                partStart = rowStart
            }
            do {
                if let pattern = settings.idPatterns[input.collection] {
                    switch row {
                    case .upsert(let r): try pattern.check(r.id, object: "row")
                    case .delete(let id): try pattern.check(id, object: "delete")
                    }
                }
                switch row {
                case .upsert(let r): try writer!.upsert(r)
                case .delete(let id): try writer!.delete(id: id)
                }
            } catch var e as StrataError where e.kind == .invalidInput {
                e.object = "\(input.path) line \(reader.lineNumber): \(e.object)"
                throw e
            }
            partRows += 1
            if partRows >= maxRows || reader.bytesRead - partStart >= maxBytes {
                try finishPart()
            }
        }
        try finishPart()
        return bundles
    }

    func createDirectory(_ dir: String) throws {
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw StrataError(
                .io, object: dir, message: "cannot create: \(error.localizedDescription)",
                fix: "check the work directory's permissions and free space")
        }
    }
}
