import Foundation

/// The COMPACTION_RUN record at `Layout.runRecordKey(runId)` (Docs/FORMATS.md, "Run record").
///
/// A producer writes it with `If-None-Match: *` after every delta it names is uploaded; the
/// compactor reads it to find the run's deltas and their checksums. Runs are applied in order of
/// `createdAt`, then `runId`.
public struct RunRecord: Codable, Sendable, Equatable {
    public static let formatName = "strata-compaction-run"
    /// The major version this build writes and the newest it reads.
    public static let majorVersion = 1

    /// Label limits: at most `maxLabels` labels, keys of 1 to 128 bytes, values up to 1024 bytes.
    public static let maxLabels = 64
    public static let maxLabelKeyBytes = 128
    public static let maxLabelValueBytes = 1024

    /// One collection's delta in the run.
    public struct Delta: Codable, Sendable, Equatable {
        public var collection: String
        /// The bundle's full key (`Layout.deltaKey(collection:runId:)`).
        public var key: String
        /// The bundle's size in bytes.
        public var size: Int64
        /// Lowercase hex SHA-256 of the bundle's bytes.
        public var sha256: String
        public var upserts: Int
        public var deletes: Int
        /// The vectors' dimension; 0 only for a delta without upserts.
        public var dimension: Int

        enum CodingKeys: String, CodingKey {
            case collection
            case key = "delta_key"
            case size, sha256, upserts, deletes, dimension
        }

        public init(
            collection: String, key: String, size: Int64, sha256: String, upserts: Int, deletes: Int,
            dimension: Int
        ) {
            self.collection = collection
            self.key = key
            self.size = size
            self.sha256 = sha256
            self.upserts = upserts
            self.deletes = deletes
            self.dimension = dimension
        }
    }

    public var format: String
    public var formatVersion: Int
    public var runId: String
    /// UTC, ISO 8601 with milliseconds: `2026-11-21T20:14:08.123Z` (sorts as a string).
    public var createdAt: String
    /// One entry per collection, sorted by collection name.
    public var collections: [Delta]
    /// Free-form labels from the producer (image_id, receipt_id, ...).
    public var labels: [String: String]

    enum CodingKeys: String, CodingKey {
        case format
        case formatVersion = "format_version"
        case runId = "run_id"
        case createdAt = "created_at"
        case collections, labels
    }

    public init(runId: String, createdAt: Date, collections: [Delta], labels: [String: String]) {
        format = RunRecord.formatName
        formatVersion = RunRecord.majorVersion
        self.runId = runId
        self.createdAt = RunRecord.timestamp(createdAt)
        self.collections = collections.sorted { $0.collection < $1.collection }
        self.labels = labels
    }

    /// The delta of `collection`, if the run has one.
    public func delta(for collection: String) -> Delta? { collections.first { $0.collection == collection } }

    /// `createdAt` as a date.
    public var createdDate: Date? { RunRecord.date(from: createdAt) }

    /// True when both records describe the same run: the same id, deltas and labels. The
    /// creation time is not compared (a retry may compute it again).
    public func sameContent(as other: RunRecord) -> Bool {
        runId == other.runId && collections == other.collections && labels == other.labels
    }

    // MARK: encoding

    /// Canonical bytes: sorted keys, no whitespace, a final newline.
    public func encoded() -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var d = try! e.encode(self)  // strings and integers always encode
        d.append(0x0a)
        return d
    }

    /// Decodes and checks a record read from `key`. With `layout`, each delta key must be the one
    /// `layout` gives for its collection and this run.
    public static func decode(_ data: Data, key: String, layout: Layout? = nil) throws -> RunRecord {
        func bad(_ field: String?, _ message: String) -> StrataError {
            StrataError(
                .corrupt, object: key, field: field, message: message,
                fix: "the record was not written to Docs/FORMATS.md; see `snapctl verify`")
        }
        guard let head = try? JSONDecoder().decode(FormatHeader.self, from: data) else {
            throw bad(nil, "is not a JSON object")
        }
        guard head.format == formatName else {
            throw bad("format", head.format == nil ? "is missing" : "is not \"\(formatName)\"")
        }
        guard let version = head.formatVersion else { throw bad("format_version", "is missing") }
        if version > majorVersion {
            throw StrataError(
                .unsupportedVersion, object: key, field: "format_version",
                message: "is \(version); this build reads version \(majorVersion) run records",
                fix: "upgrade Strata on this machine")
        }
        if version < 1 { throw bad("format_version", "is \(version); versions start at 1") }
        let r: RunRecord
        do { r = try JSONDecoder().decode(RunRecord.self, from: data) } catch {
            throw bad(nil, "is malformed: \(describe(error))")
        }
        guard Identifiers.isValid(r.runId) else { throw bad("run_id", "is not a valid run id") }
        if let expected = layout?.runId(fromRecordKey: key), expected != r.runId {
            throw bad("run_id", "is \"\(r.runId)\" but the record is stored as \"\(expected)\"")
        }
        guard r.createdDate != nil else { throw bad("created_at", "is not a UTC time like 2026-01-31T12:00:00.000Z") }
        guard !r.collections.isEmpty else { throw bad("collections", "is empty") }
        var seen = Set<String>()
        for (i, d) in r.collections.enumerated() {
            let f = "collections[\(i)]"
            do { try Layout.validate(collection: d.collection) } catch {
                throw bad("\(f).collection", "is not a valid name")
            }
            guard seen.insert(d.collection).inserted else { throw bad("\(f).collection", "appears twice") }
            if let layout, d.key != layout.deltaKey(collection: d.collection, runId: r.runId) {
                throw bad(
                    "\(f).delta_key",
                    "is \"\(d.key)\", expected \"\(layout.deltaKey(collection: d.collection, runId: r.runId))\"")
            }
            guard d.size > 0 else { throw bad("\(f).size", "must be positive") }
            guard isSHA256Hex(d.sha256) else { throw bad("\(f).sha256", "is not 64 lowercase hex digits") }
            guard d.upserts >= 0, d.deletes >= 0 else { throw bad("\(f).upserts", "counts must not be negative") }
            guard d.dimension >= 0 && d.dimension <= 65536, d.upserts == 0 || d.dimension > 0 else {
                throw bad("\(f).dimension", "is \(d.dimension); it must be 1 to 65536 (0 only without upserts)")
            }
        }
        if let problem = labelProblem(r.labels) { throw bad("labels", problem) }
        return r
    }

    /// Why `labels` break the limits, or nil when they are fine.
    public static func labelProblem(_ labels: [String: String]) -> String? {
        if labels.count > maxLabels { return "has \(labels.count) labels, more than \(maxLabels)" }
        for (k, v) in labels.sorted(by: { $0.key < $1.key }) {
            if k.isEmpty || k.utf8.count > maxLabelKeyBytes {
                return "key \"\(k.prefix(40))\" must be 1 to \(maxLabelKeyBytes) bytes"
            }
            if v.utf8.count > maxLabelValueBytes {
                return "value of \"\(k)\" is \(v.utf8.count) bytes, more than \(maxLabelValueBytes)"
            }
        }
        return nil
    }

    public static func isSHA256Hex(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    static func describe(_ error: Error) -> String {
        guard let e = error as? DecodingError else { return "\(error)" }
        func path(_ c: [CodingKey]) -> String {
            c.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch e {
        case .keyNotFound(let k, let ctx): return "missing key \"\(path(ctx.codingPath + [k]))\""
        case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx): return "wrong type at \"\(path(ctx.codingPath))\""
        case .dataCorrupted(let ctx):
            return ctx.codingPath.isEmpty ? "not valid JSON" : "bad value at \"\(path(ctx.codingPath))\""
        @unknown default: return "\(e)"
        }
    }

    // MARK: time

    /// `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'` in UTC.
    public static func timestamp(_ date: Date) -> String {
        // Nearest, not down: a date parsed from an id (seconds + ms / 1000) may sit a hair below
        // its millisecond, and must print as the same millisecond.
        let millis = Int64((date.timeIntervalSince1970 * 1000).rounded())
        var t = time_t(millis / 1000)
        var p = tm()
        gmtime_r(&t, &p)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(p.tm_year) + 1900, Int(p.tm_mon) + 1,
            Int(p.tm_mday), Int(p.tm_hour), Int(p.tm_min), Int(p.tm_sec), Int(millis % 1000))
    }

    public static func date(from s: String) -> Date? {
        let u = Array(s.utf8)
        guard u.count == 24, u[4] == 0x2d, u[7] == 0x2d, u[10] == 0x54, u[13] == 0x3a, u[16] == 0x3a, u[19] == 0x2e,
            u[23] == 0x5a
        else { return nil }
        // Reuse the run-id parser: yyyyMMddTHHmmssSSSZ.
        let compact = [0, 1, 2, 3, 5, 6, 8, 9, 10, 11, 12, 14, 15, 17, 18, 20, 21, 22, 23].map { u[$0] }
        return Identifiers.date(of: String(decoding: compact, as: UTF8.self))
    }
}

/// The `format` and `format_version` of a snake_case Strata document (run records, bundle
/// manifests), read before the rest so a newer format is reported as newer, not as malformed.
public struct FormatHeader: Decodable, Sendable {
    public var format: String?
    public var formatVersion: Int?
    enum CodingKeys: String, CodingKey {
        case format
        case formatVersion = "format_version"
    }
}
