import Foundation
import StrataCore

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
    }

    public var jobs: [Job]
    public var checkpointPath: String

    enum CodingKeys: String, CodingKey {
        case jobs
        case checkpointPath = "checkpoint_path"
    }

    public var published: [PublishedRun] { jobs.flatMap { $0.skipped ? [] : $0.runs } }
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
