import Foundation
import StrataCore
import StrataEmbed

/// How the producer works. Values only; the store, layout and logger are passed separately.
public struct ProducerSettings: Sendable, Equatable {
    /// A run holds at most this many input rows per collection; a larger input becomes several
    /// runs, applied in order.
    public var maxRowsPerRun: Int
    /// ...and at most this many bytes of NDJSON input per collection.
    public var maxInputBytesPerRun: Int64
    /// The longest accepted input line.
    public var maxLineBytes: Int
    /// Rows per SQLite transaction while writing a delta.
    public var batchRows: Int
    /// gzip level of bundles (0 to 9). Default 0 (stored): float32 embeddings do not compress, and
    /// deflating them cost about 40% of a small run's CPU for a few percent of size.
    public var compressionLevel: Int
    /// Where deltas and bundles are built; nil means the system's temporary directory.
    public var workDirectory: String?
    /// Keep the built files after publishing (for debugging).
    public var keepWorkFiles: Bool
    /// The shape every id of a collection must have (`--id-pattern C=PATTERN`); a row whose id
    /// does not match fails the input before anything is uploaded.
    public var idPatterns: [String: IDPattern] = [:]
    /// Embed text-only rows (`snapctl produce --embed`); nil: every upsert needs an embedding.
    public var embedding: EmbeddingSettings? = nil
    /// Where each job keeps the vectors it already obtained (`{dir}/{run_id}/`), so a retry
    /// after a crash pays for nothing twice; nil: `{workDirectory or TMPDIR}/strata-embed-spool`
    /// (directory mode: `{dir}/.strata-embed-spool`). Removed once the job is published.
    public var spoolDirectory: String? = nil
    /// Check every input's dimension against its collection's published one before uploading.
    public var checkPublishedDimension = true

    public init(
        maxRowsPerRun: Int = 50_000, maxInputBytesPerRun: Int64 = 256 << 20, maxLineBytes: Int = 16 << 20,
        batchRows: Int = 5000, compressionLevel: Int = 0, workDirectory: String? = nil,
        keepWorkFiles: Bool = false
    ) {
        self.maxRowsPerRun = maxRowsPerRun
        self.maxInputBytesPerRun = maxInputBytesPerRun
        self.maxLineBytes = maxLineBytes
        self.batchRows = batchRows
        self.compressionLevel = compressionLevel
        self.workDirectory = workDirectory
        self.keepWorkFiles = keepWorkFiles
    }
}

/// One collection's input file for a job.
public struct ProducerInput: Sendable, Equatable, Codable {
    public var collection: String
    /// An NDJSON file (Docs/FORMATS.md, "NDJSON input").
    public var path: String
    /// The embeddings' dimension when known; otherwise fixed by the file's first upsert.
    public var dimension: Int?

    public init(collection: String, path: String, dimension: Int? = nil) {
        self.collection = collection
        self.path = path
        self.dimension = dimension
    }
}

/// A run that is published: its record exists and names fully uploaded deltas.
public struct PublishedRun: Sendable, Equatable, Codable {
    public var runId: String
    public var recordKey: String
    public var createdAt: String
    /// Each collection's delta: key, size, SHA-256, counts, dimension.
    public var deltas: [RunRecord.Delta]
    public var labels: [String: String]
    /// False when the record was already there with the same content (a retry): nothing new was
    /// published.
    public var created: Bool
    /// 1-based part number when a large input was split into several runs.
    public var part: Int
    public var parts: Int

    enum CodingKeys: String, CodingKey {
        case runId = "run_id"
        case recordKey = "record_key"
        case createdAt = "created_at"
        case deltas, labels, created, part, parts
    }
}

/// What `produceDirectory` did.
public struct DirectoryReport: Sendable, Equatable, Codable {
    public struct Job: Sendable, Equatable, Codable {
        /// The job's name: the file or subdirectory name in the input directory.
        public var name: String
        public var runs: [PublishedRun]
        /// True when the checkpoint said it was published before; nothing was done.
        public var skipped: Bool
        /// Why the job failed (this pass, or an earlier one when it is set aside); nil when it did not.
        public var failed: String? = nil
        /// What embedding this job cost (with --embed).
        public var embedding: EmbeddingStats? = nil
    }

    public var jobs: [Job]
    public var checkpointPath: String

    enum CodingKeys: String, CodingKey {
        case jobs
        case checkpointPath = "checkpoint_path"
        case stoppedAtMaxJobs = "stopped_at_max_jobs"
    }

    public var published: [PublishedRun] { jobs.flatMap { $0.skipped ? [] : $0.runs } }
    /// Jobs that failed in this pass or were set aside after failing earlier.
    public var failed: [Job] { jobs.filter { $0.failed != nil } }
    /// True when `maxJobs` stopped the pass before every job was tried.
    public var stoppedAtMaxJobs = false
}

/// How jobs are laid out in a directory for `produceDirectory`.
public enum DirectoryLayout: Sendable, Equatable {
    /// Every `*.ndjson` or `*.jsonl` file directly in the directory is one job for `collection`.
    /// Optional labels for `name.ndjson` are read from `name.labels.json`.
    case files(collection: String)
    /// Every subdirectory is one job; each `<collection>.ndjson` (or `.jsonl`) file in it is that
    /// collection's input. Optional labels are read from `labels.json` in it.
    case jobDirectories
}

/// One row given in memory to `RunProducer.produce(rows:)` (the NDJSON row, Docs/FORMATS.md).
public struct ProducerRow: Sendable, Equatable {
    public var id: String
    /// nil for a text-only row (needs `ProducerSettings.embedding`) or a delete.
    public var embedding: [Float]?
    public var document: String?
    /// A flat JSON object as text, e.g. `{"page": 3}`.
    public var metadata: String?
    /// The text to embed instead of `document`.
    public var embedText: String?
    public var delete: Bool

    public init(
        id: String, embedding: [Float]? = nil, document: String? = nil, metadata: String? = nil,
        embedText: String? = nil
    ) {
        self.id = id
        self.embedding = embedding
        self.document = document
        self.metadata = metadata
        self.embedText = embedText
        delete = false
    }

    public static func delete(_ id: String) -> ProducerRow {
        var r = ProducerRow(id: id)
        r.delete = true
        return r
    }
}

/// A job's state in a directory's checkpoint, for `snapctl produce --dir D --status`.
public struct DirectoryStatus: Sendable, Equatable, Codable {
    public struct Job: Sendable, Equatable, Codable {
        public enum State: String, Sendable, Codable { case pending, planned, published, failed }
        public var name: String
        public var state: State
        public var runId: String?
        public var reason: String?
        public var updatedAt: String?

        enum CodingKeys: String, CodingKey {
            case name, state
            case runId = "run_id"
            case reason
            case updatedAt = "updated_at"
        }
    }

    public var jobs: [Job]
    public var checkpointPath: String

    enum CodingKeys: String, CodingKey {
        case jobs
        case checkpointPath = "checkpoint_path"
    }
}
