import Foundation
import Logging
import StrataBundle
import StrataCore
import StrataCrypto
import StrataDelta
import StrataEmbed

#if canImport(Glibc)
    import Glibc
#endif

/// Turns NDJSON inputs into published runs (Docs/FORMATS.md; SPEC invariants 6 and 8).
///
/// For one job: every input is read and validated into local deltas first, so a bad line
/// publishes nothing. Each delta is bundled, uploaded to `Layout.deltaKey`, and checked with a
/// HEAD; only then is the COMPACTION_RUN record written, with `If-None-Match: *`.
///
/// Retrying a job with the same run id after a crash or a timeout is safe and creates nothing
/// twice: deltas and bundles are deterministic, a bundle already uploaded with the same size and
/// SHA-256 is not uploaded again, and when the record already exists the producer succeeds if it
/// describes the same run (and fails with `.conflict` if not). A large input is split into
/// several runs (`ProducerSettings.maxRowsPerRun`, `maxInputBytesPerRun`) whose ids sort in
/// input order: the first is the job's run id, the next ones add `-p000002`, `-p000003`, ...
///
/// Errors are `StrataError` (bad input, conflicts, local I/O) or `StoreError` (the store).
public final class RunProducer {
    public let store: any ObjectStore
    public let layout: Layout
    public let settings: ProducerSettings
    public let logger: Logger
    /// Embeds text-only rows when `settings.embedding` is set (made on first use unless given).
    public private(set) var embeddingClient: EmbeddingClient?

    public init(
        store: any ObjectStore, layout: Layout = Layout(), settings: ProducerSettings = ProducerSettings(),
        logger: Logger = Logger(label: "strata.producer", factory: { _ in SwiftLogNoOpLogHandler() }),
        embeddingClient: EmbeddingClient? = nil
    ) {
        self.store = store
        self.layout = layout
        self.settings = settings
        self.logger = logger
        self.embeddingClient = embeddingClient
    }

    /// What embedding cost so far in this producer (nil without embedding).
    public var embeddingStats: EmbeddingStats? { embeddingClient?.meter.snapshot }

    func embedder() throws -> EmbeddingClient? {
        if let embeddingClient { return embeddingClient }
        guard let e = settings.embedding else { return nil }
        let c = try EmbeddingClient(settings: e)
        embeddingClient = c
        return c
    }

    /// A job's failure, and whether it came before anything was uploaded.
    struct JobFailure: Error {
        var error: Error
        var beforeUpload: Bool
    }

    /// How far ahead of this machine's clock a given `--run-id` may be (seconds).
    public static let maxRunIdLead: TimeInterval = 300

    /// The run id of part `part` (1-based) of a job whose run id is `base`.
    public static func runId(base: String, part: Int) -> String {
        part == 1 ? base : base + "-p" + String(format: "%06d", part)
    }

    /// Publishes one job: one input per collection, as one run (or several, when an input is
    /// larger than the settings allow). `runId` nil makes a new id; pass the id of an earlier,
    /// interrupted attempt to retry it safely. Returns the runs in order.
    public func produce(inputs: [ProducerInput], labels: [String: String] = [:], runId: String? = nil) throws
        -> [PublishedRun]
    {
        do { return try produceJob(inputs: inputs, labels: labels, runId: runId, spoolRoot: nil) } catch let f
            as JobFailure
        {
            throw f.error
        }
    }

    /// `produce`, with failures wrapped in `JobFailure`.
    func produceJob(inputs: [ProducerInput], labels: [String: String], runId: String?, spoolRoot: String?) throws
        -> [PublishedRun]
    {
        do { try check(inputs: inputs, labels: labels) } catch { throw JobFailure(error: error, beforeUpload: true) }
        let base = runId ?? Identifiers.make()
        guard Identifiers.isValid(base), base.utf8.count <= 100 else {
            throw StrataError(
                .invalidInput, object: "run id \"\(base)\"", field: "run_id",
                message: "must be 1 to 100 characters of A-Z a-z 0-9 - _ .",
                fix: "use the id printed by an earlier attempt, or let Strata make one")
        }
        let now = Date()
        if let t = Identifiers.date(of: base), t > now.addingTimeInterval(RunProducer.maxRunIdLead) {
            throw StrataError(
                .invalidInput, object: "run id \"\(base)\"", field: "run_id",
                message: "names \(RunRecord.timestamp(t)), more than 5 minutes after this machine's clock "
                    + "(\(RunRecord.timestamp(now))); its rows would win over every run made until then",
                fix: "check this machine's clock (NTP), and pass a run id made now, or none to let Strata make one")
        }
        let createdAt = Identifiers.date(of: base) ?? now
        var meta = logger
        meta[metadataKey: "run"] = "\(base)"
        meta.info("building deltas", metadata: ["inputs": "\(inputs.map { "\($0.collection)=\($0.path)" })"])

        let work: String
        let built: [BuiltRun]
        var spool: String?
        do {
            work = try makeWorkDirectory(base)
            do {
                let dims = try publishedDimensions(inputs)
                if try embedder() != nil {
                    let root =
                        spoolRoot ?? settings.spoolDirectory
                        ?? (settings.workDirectory ?? (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"))
                        + "/strata-embed-spool"
                    spool = root + "/" + base
                }
                built = try build(
                    inputs: inputs, baseRunId: base, workDirectory: work, published: dims, spoolDirectory: spool)
            } catch {
                if !settings.keepWorkFiles { try? FileManager.default.removeItem(atPath: work) }
                throw error
            }
        } catch {
            throw JobFailure(error: error, beforeUpload: true)
        }
        defer {
            if !settings.keepWorkFiles { try? FileManager.default.removeItem(atPath: work) }
        }
        if built.isEmpty { meta.notice("the inputs hold no rows; nothing to publish") }
        var published: [PublishedRun] = []
        do {
            for run in built {
                published.append(try publish(run, createdAt: createdAt, labels: labels))
            }
        } catch {
            throw JobFailure(error: error, beforeUpload: false)
        }
        // Published: the vectors are in the store now; the spool has done its work.
        if let spool, !settings.keepWorkFiles { try? FileManager.default.removeItem(atPath: spool) }
        return published
    }

    /// Each input collection's published dimension (nil when it has no snapshot yet), and a
    /// check of a given `dimension` against it, before anything is read or uploaded.
    func publishedDimensions(_ inputs: [ProducerInput]) throws -> [String: Int] {
        guard settings.checkPublishedDimension else { return [:] }
        var dims: [String: Int] = [:]
        for input in inputs {
            // A damaged pointer or manifest is the compactor's to report and an operator's to
            // restore (`snapctl verify`); producers keep queueing runs meanwhile, and the compactor
            // checks their dimension when it applies them.
            let m: SnapshotManifest
            do {
                guard let (version, _) = try Pointer.read(from: store, layout: layout, collection: input.collection)
                else { continue }
                m = try SnapshotManifest.fetch(
                    from: store, layout: layout, collection: input.collection, version: version)
            } catch let e as StrataError where e.kind == .corrupt || e.kind == .notFound {
                continue
            }
            dims[input.collection] = m.dimension
            if let d = input.dimension, d != m.dimension {
                throw StrataError(
                    .invalidInput, object: "collection \"\(input.collection)\"", field: "dimension",
                    message: "is given as \(d), but the collection is published with dimension \(m.dimension)",
                    fix: "embed with a model of dimension \(m.dimension), or write to another collection")
            }
        }
        return dims
    }

    /// `produce` for (collection, path) pairs.
    public func produce(
        inputs: [(collection: String, path: String)], labels: [String: String] = [:],
        runId: String? = nil
    ) throws -> [PublishedRun] {
        try produce(
            inputs: inputs.map { ProducerInput(collection: $0.collection, path: $0.path) }, labels: labels,
            runId: runId)
    }

    // MARK: checks

    func check(inputs: [ProducerInput], labels: [String: String]) throws {
        guard !inputs.isEmpty else {
            throw StrataError(
                .invalidInput, object: "inputs", message: "no input was given",
                fix: "name at least one collection and its NDJSON file")
        }
        var seen = Set<String>()
        for input in inputs {
            try Layout.validate(collection: input.collection)
            guard seen.insert(input.collection).inserted else {
                throw StrataError(
                    .invalidInput, object: "collection \"\(input.collection)\"", field: "collection",
                    message: "is given twice in one job",
                    fix: "merge its inputs into one file, or publish them as separate jobs")
            }
            if let d = input.dimension {
                do { try DeltaRules.check(dimension: d) } catch let p as FieldProblem {
                    throw p.strataError(object: "collection \"\(input.collection)\"")
                }
            }
        }
        if let problem = RunRecord.labelProblem(labels) {
            throw StrataError(
                .invalidInput, object: "labels", field: "labels", message: problem,
                fix: "use a few short labels such as image_id")
        }
    }

    func makeWorkDirectory(_ base: String) throws -> String {
        let root = settings.workDirectory ?? (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp")
        let path = "\(root)/strata-produce-\(base)-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw StrataError(
                .io, object: path, message: "cannot create the work directory: \(error.localizedDescription)",
                fix: "point the work directory at a writable place with free space")
        }
        return path
    }
}
