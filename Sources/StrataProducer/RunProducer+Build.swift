import Foundation
import Logging
import StrataBundle
import StrataCore
import StrataDelta
import StrataEmbed

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
    func build(
        inputs: [ProducerInput], baseRunId: String, workDirectory: String, published: [String: Int] = [:],
        spoolDirectory: String? = nil
    ) throws -> [BuiltRun] {
        var partsByCollection: [String: [BundleInfo]] = [:]
        for input in inputs.sorted(by: { $0.collection < $1.collection }) {
            var dimension = input.dimension ?? published[input.collection]
            var spool: EmbeddingSpool?
            if let spoolDirectory, let client = try embedder() {
                (spool, dimension) = try embed(
                    input: input, dimension: dimension, published: published[input.collection], client: client,
                    spoolDirectory: spoolDirectory)
            }
            partsByCollection[input.collection] = try build(
                input: input, dimension: dimension, spool: spool, baseRunId: baseRunId,
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
    /// The embedding pass over one input: every text-only row's text is embedded into the spool
    /// (texts already there, or seen before in the input, cost nothing); rows with vectors are
    /// validated as usual. Returns the spool and the input's dimension, checked against the
    /// published one, before anything is uploaded.
    private func embed(
        input: ProducerInput, dimension: Int?, published: Int?, client: EmbeddingClient, spoolDirectory: String
    ) throws -> (EmbeddingSpool, Int?) {
        let inputType = client.settings.passageInputType
        let spool = try EmbeddingSpool(
            directory: spoolDirectory, modelKey: client.settings.vectorsKey(inputType: inputType))
        let reader = try NDJSONReader(path: input.path, dimension: dimension, maxLineBytes: settings.maxLineBytes)
        reader.allowsMissingEmbedding = true
        let embedder = TextEmbedder(client: client, spool: spool, inputType: inputType)
        do {
            while let row = try reader.next() {
                if case .upsert = row, let text = reader.textToEmbed { try embedder.add(text) }
            }
            try embedder.finish()
        } catch {
            embedder.cancel()
            throw error
        }
        let before = client.meter.snapshot
        logger.info(
            "embedded texts",
            metadata: ["collection": "\(input.collection)", "spool": "\(spool.path)", "stats": "\(before.summary)"])
        guard let got = spool.dimension else { return (spool, reader.dimension) }
        let expected = reader.dimension ?? published
        if let expected, expected != got {
            let which =
                published == expected ? "the collection is published with" : "the input's rows with vectors have"
            throw StrataError(
                .invalidInput, object: "collection \"\(input.collection)\"", field: "dimension",
                message: "the embedding model (\(client.settings.model)) answers \(got) values; \(which) \(expected)",
                fix: "use a model of dimension \(expected) (or --embed-dimensions \(expected) where the model "
                    + "supports it), or write to another collection")
        }
        return (spool, got)
    }

    private func build(
        input: ProducerInput, dimension: Int?, spool: EmbeddingSpool?, baseRunId: String, workDirectory: String
    ) throws -> [BundleInfo] {
        let reader = try NDJSONReader(path: input.path, dimension: dimension, maxLineBytes: settings.maxLineBytes)
        reader.allowsMissingEmbedding = spool != nil
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
                case .upsert(var r):
                    if let text = reader.textToEmbed, let spool {
                        guard let v = try spool.vector(TextKey(text)) else {
                            throw StrataError(
                                .corrupt, object: spool.path, message: "has no vector for row \(r.id) after embedding",
                                fix: "retry the job; the spool is rebuilt as needed")
                        }
                        r.embedding = v
                    }
                    try writer!.upsert(r)
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
