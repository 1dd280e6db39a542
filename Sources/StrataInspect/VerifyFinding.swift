import Foundation
import StrataCore

/// How one check came out. Ordered by severity: a report's status is its worst finding's.
public enum VerifyStatus: String, Codable, Sendable, Comparable, CaseIterable {
    /// Checked and fine.
    case passed
    /// Fine, but worth knowing (runs waiting for the next round, a lease held right now).
    case info
    /// Not harmful by itself, but someone should look (quarantined runs, orphans, a stale lease).
    case warning
    /// Readers get wrong, stale or no data, or something will not heal by itself.
    case failed

    private var rank: Int {
        switch self {
        case .passed: return 0
        case .info: return 1
        case .warning: return 2
        case .failed: return 3
        }
    }

    public static func < (a: VerifyStatus, b: VerifyStatus) -> Bool { a.rank < b.rank }
}

/// One value of a finding's evidence: what was looked at and what was found.
public enum VerifyValue: Codable, Sendable, Equatable, CustomStringConvertible {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case list([String])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Int.self) {
            self = .int(v)
        } else if let v = try? c.decode(Double.self) {
            self = .double(v)
        } else if let v = try? c.decode(Bool.self) {
            self = .bool(v)
        } else if let v = try? c.decode([String].self) {
            self = .list(v)
        } else {
            self = .string(try c.decode(String.self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let v): try c.encode(v)
        case .int(let v): try c.encode(v)
        case .double(let v): try c.encode(v)
        case .bool(let v): try c.encode(v)
        case .list(let v): try c.encode(v)
        }
    }

    public var description: String {
        switch self {
        case .string(let v): return v
        case .int(let v): return String(v)
        case .double(let v): return String(format: "%g", v)
        case .bool(let v): return v ? "true" : "false"
        case .list(let v): return v.isEmpty ? "(none)" : v.joined(separator: ", ")
        }
    }
}

/// Named values in the order they were added; encoded as a JSON object.
public struct VerifyEvidence: Codable, Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public struct Entry: Sendable, Equatable {
        public var key: String
        public var value: VerifyValue
    }

    public typealias Key = String
    public typealias Value = VerifyValue

    public private(set) var entries: [Entry] = []

    public init() {}

    public init(dictionaryLiteral elements: (String, VerifyValue)...) {
        for (k, v) in elements { self[k] = v }
    }

    public subscript(key: String) -> VerifyValue? {
        get { entries.first { $0.key == key }?.value }
        set {
            if let i = entries.firstIndex(where: { $0.key == key }) {
                if let newValue { entries[i].value = newValue } else { entries.remove(at: i) }
            } else if let newValue {
                entries.append(Entry(key: key, value: newValue))
            }
        }
    }

    public var isEmpty: Bool { entries.isEmpty }

    /// Evidence is a map: the order entries were added in (kept for display) does not count.
    public static func == (a: VerifyEvidence, b: VerifyEvidence) -> Bool {
        a.entries.count == b.entries.count && a.entries.allSatisfy { b[$0.key] == $0.value }
    }

    private struct Name: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Name.self)
        for k in c.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
            self[k.stringValue] = try c.decode(VerifyValue.self, forKey: k)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Name.self)
        for e in entries { try c.encode(e.value, forKey: Name(stringValue: e.key)) }
    }
}

/// The outcome of one check: which check, on which collection, what was found, the evidence,
/// and what to do about it.
public struct VerifyFinding: Codable, Sendable, Equatable {
    /// A stable id such as `snapshot.rows` (see `VerifyCheck`); scripts and alerts key on it.
    public var check: String
    /// The collection, or nil for a store-wide check.
    public var collection: String?
    public var status: VerifyStatus
    /// One line in words: what is wrong (or right).
    public var message: String
    public var evidence: VerifyEvidence
    /// What to do about it; nil when there is nothing to do.
    public var hint: String?

    public init(
        check: String, collection: String?, status: VerifyStatus, message: String,
        evidence: VerifyEvidence = VerifyEvidence(), hint: String? = nil
    ) {
        self.check = check
        self.collection = collection
        self.status = status
        self.message = message
        self.evidence = evidence
        self.hint = hint
    }
}

/// The ids of every check, stable for scripts. Store-wide checks have no collection.
public enum VerifyCheck {
    // store-wide
    public static let storeAccess = "store.access"
    public static let storeCollections = "store.collections"
    public static let runRecords = "runs.records"
    // the published version
    public static let pointer = "pointer"
    public static let manifest = "manifest"
    public static let files = "files"
    // the snapshot file's contents
    public static let snapshotOpen = "snapshot.open"
    public static let snapshotIntegrity = "snapshot.integrity"
    public static let snapshotFormat = "snapshot.format"
    public static let snapshotDimension = "snapshot.dimension"
    public static let snapshotRows = "snapshot.rows"
    public static let snapshotEmbeddings = "snapshot.embeddings"
    public static let snapshotMetadata = "snapshot.metadata"
    public static let snapshotIds = "snapshot.ids"
    /// With --deep: a sampled row's nearest neighbour is itself.
    public static let snapshotQuery = "snapshot.query"
    // versions over time
    public static let historyRows = "history.rows"
    public static let historyUnpublished = "history.unpublished"
    // runs and compaction
    public static let runsPending = "runs.pending"
    public static let runsQuarantined = "runs.quarantined"
    public static let runsDeltas = "runs.deltas"
    public static let runsOrphans = "runs.orphans"
    /// When the newest run was created: are deltas still being created?
    public static let runsFreshness = "runs.freshness"
    public static let lease = "lease"
    /// The status a compactor left when a round of this collection failed.
    public static let compactorStatus = "compactor.status"

    public static let all = [
        storeAccess, storeCollections, runRecords, pointer, manifest, files, snapshotOpen, snapshotIntegrity,
        snapshotFormat, snapshotDimension, snapshotRows, snapshotEmbeddings, snapshotMetadata, snapshotIds,
        snapshotQuery, historyRows, historyUnpublished, runsPending, runsQuarantined, runsDeltas, runsOrphans,
        runsFreshness, lease, compactorStatus,
    ]
}

/// Everything `snapctl verify` found, in display order: store-wide findings first, then each
/// collection's.
public struct VerifyReport: Codable, Sendable {
    public static let formatName = "strata-verify-report"

    public struct Summary: Codable, Sendable, Equatable {
        public var passed = 0
        public var info = 0
        public var warning = 0
        public var failed = 0

        public init(passed: Int = 0, info: Int = 0, warning: Int = 0, failed: Int = 0) {
            self.passed = passed
            self.info = info
            self.warning = warning
            self.failed = failed
        }
    }

    public var format: String = VerifyReport.formatName
    public var formatVersion: Int = 1
    /// Where the store is, without secrets (e.g. `s3://bucket/prefix/`).
    public var store: String
    public var checkedAt: Date
    /// The collections checked, in order.
    public var collections: [String]
    /// The worst status of any finding.
    public var status: VerifyStatus
    public var summary: Summary
    public var findings: [VerifyFinding]

    public init(store: String, checkedAt: Date, collections: [String], findings: [VerifyFinding]) {
        self.store = store
        self.checkedAt = checkedAt
        self.collections = collections
        // Store-wide first, then collections in the order checked; stable within each group.
        let order = Dictionary(uniqueKeysWithValues: collections.enumerated().map { ($1, $0 + 1) })
        self.findings = findings.enumerated().sorted { a, b in
            let ka = a.element.collection.map { order[$0] ?? Int.max } ?? 0
            let kb = b.element.collection.map { order[$0] ?? Int.max } ?? 0
            return ka != kb ? ka < kb : a.offset < b.offset
        }.map(\.element)
        var s = Summary()
        for f in findings {
            switch f.status {
            case .passed: s.passed += 1
            case .info: s.info += 1
            case .warning: s.warning += 1
            case .failed: s.failed += 1
            }
        }
        summary = s
        status = findings.map(\.status).max() ?? .passed
    }

    /// The findings of `check` (and `collection`, when given).
    public func findings(_ check: String, collection: String? = nil) -> [VerifyFinding] {
        findings.filter { $0.check == check && (collection == nil || $0.collection == collection) }
    }

    /// 1 when something failed, else 0 (warnings allowed).
    public var exitCode: Int32 { summary.failed > 0 ? 1 : 0 }

    /// The report as JSON (sorted keys, ISO-8601 dates), for scripts and alerting.
    public func json() throws -> Data { try StrataJSON.encoder().encode(self) }
}
