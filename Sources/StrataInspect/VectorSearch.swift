import Foundation
import StrataCore

/// How rows are compared with the query.
public enum VectorMetric: String, CaseIterable, Sendable {
    /// Cosine similarity, -1 to 1, higher is nearer. A zero-length row scores 0.
    case cosine
    /// Inner (dot) product, higher is nearer.
    case ip
    /// Euclidean distance, lower is nearer.
    case l2

    /// True when a higher score is nearer.
    public var higherIsNearer: Bool { self != .l2 }
}

/// One result: an id and its score in the metric's own terms (similarity, product, distance).
public struct VectorHit: Sendable, Equatable {
    public var id: String
    public var score: Float

    public init(id: String, score: Float) {
        self.id = id
        self.score = score
    }
}

/// What a search found, nearest first, and how many rows it looked at.
public struct VectorSearchResult: Sendable, Equatable {
    public var hits: [VectorHit]
    /// Rows read.
    public var scanned: Int
    /// Rows that passed the filter (and were not excluded), i.e. were scored.
    public var matched: Int
}

/// Exact k-nearest-neighbour search by a full scan: every row that passes the filter is scored,
/// and a bounded heap keeps the best `k` (memory O(k), whatever the number of rows). Feed it rows
/// with `add` (from `SnapshotReader.scan`, or from memory in tests) and read `result()`.
///
/// Ranking is deterministic: nearer first, then by id in byte order (SQLite's `ORDER BY id`).
/// Scores are computed in float32 with SIMD lanes (16, then 8, then a scalar tail); for cosine the
/// query is normalised once, so each row costs one pass computing its dot product and norm.
public struct VectorSearcher {
    public let dimension: Int
    public let metric: VectorMetric
    public let k: Int
    public let filter: MetadataFilter
    /// The query as given (validated).
    public let query: [Float]
    /// What the kernels use: the query, normalised for cosine.
    private let prepared: [Float]
    private let excluded: [[UInt8]]
    private var heap: TopKHeap
    public private(set) var scanned = 0
    public private(set) var matched = 0

    /// Validates the query (dimension, finite values, not zero for cosine) and `k` (at least 1).
    /// `excluding` names ids never returned (the query's own id for a search by id).
    public init(
        query: [Float], dimension: Int, metric: VectorMetric, k: Int, filter: MetadataFilter = MetadataFilter(),
        excluding: [String] = []
    ) throws {
        try VectorSearch.validate(query: query, dimension: dimension, metric: metric)
        guard k >= 1 else {
            throw StrataError(
                .invalidInput, object: "query", field: "k", message: "is \(k); ask for at least 1 result",
                fix: "pass -k 1 or more")
        }
        self.dimension = dimension
        self.metric = metric
        self.k = k
        self.filter = filter
        self.query = query
        if metric == .cosine {
            // In Double: the norm of large float32 values may not fit a float32.
            var n2 = 0.0
            for x in query { n2 += Double(x) * Double(x) }
            let norm = n2.squareRoot()
            prepared = query.map { Float(Double($0) / norm) }
        } else {
            prepared = query
        }
        excluded = excluding.map { Array($0.utf8) }
        heap = TopKHeap(k: k)
    }

    /// Scores one row: `embedding` is `dimension × 4` bytes of float32 little-endian (any
    /// alignment), `metadata` the row's JSON or nil. Valid only during the call; nothing is kept
    /// unless the row enters the top k.
    public mutating func add(
        id: UnsafeRawBufferPointer, embedding: UnsafeRawBufferPointer,
        metadata: UnsafeRawBufferPointer?
    ) throws {
        scanned += 1
        guard embedding.count == dimension * 4 else {
            throw StrataError(
                .corrupt, object: String(decoding: id, as: UTF8.self), field: "embedding",
                message: "is \(embedding.count) bytes; dimension \(dimension) needs \(dimension * 4)")
        }
        if !filter.isEmpty, !filter.matches(metadata) { return }
        if !excluded.isEmpty, excluded.contains(where: { $0.elementsEqual(id) }) { return }
        matched += 1
        let key = rankKey(embedding)
        guard key.isFinite else {
            throw StrataError(
                .corrupt, object: String(decoding: id, as: UTF8.self), field: "embedding",
                message: "gives a \(metric.rawValue) score that is not finite "
                    + "(NaN or infinity in the vector, or values too large)",
                fix: "the snapshot holds a bad vector; re-produce the row")
        }
        heap.offer(key: key, id: id)
    }

    /// Convenience for vectors in memory (tests, small callers).
    public mutating func add(id: String, embedding: [Float], metadata: String? = nil) throws {
        let idBytes = Array(id.utf8)
        let meta = metadata.map { Array($0.utf8) }
        try idBytes.withUnsafeBytes { i in
            try embedding.withUnsafeBytes { e in
                if let meta {
                    try meta.withUnsafeBytes { m in try self.add(id: i, embedding: e, metadata: m) }
                } else {
                    try self.add(id: i, embedding: e, metadata: nil)
                }
            }
        }
    }

    /// Higher is nearer for every metric (l2 ranks by the negated squared distance).
    @inline(__always)
    private func rankKey(_ embedding: UnsafeRawBufferPointer) -> Float {
        prepared.withUnsafeBufferPointer { q in
            let x = embedding.baseAddress!
            switch metric {
            case .ip:
                return VectorKernels.dot(q.baseAddress!, x, dimension)
            case .cosine:
                let (dot, norm2) = VectorKernels.dotAndNorm(q.baseAddress!, x, dimension)
                return norm2 > 0 ? dot / norm2.squareRoot() : 0
            case .l2:
                return -VectorKernels.l2Squared(q.baseAddress!, x, dimension)
            }
        }
    }

    /// The best `k` rows, nearest first, with scores in the metric's terms.
    public func result() -> VectorSearchResult {
        let hits = heap.sortedBestFirst().map { e -> VectorHit in
            VectorHit(id: e.id, score: metric == .l2 ? (-e.key).squareRoot() : e.key)
        }
        return VectorSearchResult(hits: hits, scanned: scanned, matched: matched)
    }
}

public enum VectorSearch {
    /// Searches a snapshot by a full scan. Documents are not read (fetch them for the hits with
    /// `reader.rows(ids:)`); metadata is read only when there is a filter.
    public static func search(
        _ reader: SnapshotReader, query: [Float], metric: VectorMetric, k: Int,
        filter: MetadataFilter = MetadataFilter(), excluding: [String] = []
    ) throws
        -> VectorSearchResult
    {
        var searcher = try VectorSearcher(
            query: query, dimension: reader.dimension, metric: metric, k: k,
            filter: filter, excluding: excluding)
        try reader.scan(fields: filter.isEmpty ? [] : .metadata) { row in
            try searcher.add(id: row.id, embedding: row.embedding, metadata: row.metadata)
            return true
        }
        return searcher.result()
    }

    /// Checks a query vector: `dimension` values, all finite, and not all zero for cosine.
    /// `object` names the vector in errors.
    public static func validate(
        query: [Float], dimension: Int, metric: VectorMetric,
        object: String = "query vector"
    ) throws {
        guard query.count == dimension else {
            throw StrataError(
                .invalidInput, object: object, field: "dimension",
                message: "has \(query.count) values; the collection's dimension is \(dimension)",
                fix: "pass a vector of \(dimension) numbers")
        }
        if let i = query.firstIndex(where: { !$0.isFinite }) {
            throw StrataError(
                .invalidInput, object: object, field: "[\(i)]",
                message: "is \(query[i]); every value must be a finite float32",
                fix: "replace NaN, infinity, and values beyond ±3.4e38")
        }
        if metric == .cosine, !(norm(query) > 0) {
            throw StrataError(
                .invalidInput, object: object, message: "is all zeros, so cosine similarity is undefined",
                fix: "use another vector, or --metric ip or l2")
        }
    }

    /// Euclidean norm, accumulated in Double so a long vector of tiny values does not underflow.
    static func norm(_ v: [Float]) -> Float {
        var s = 0.0
        for x in v { s += Double(x) * Double(x) }
        return Float(s.squareRoot())
    }
}
