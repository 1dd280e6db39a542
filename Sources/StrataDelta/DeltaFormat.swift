import Foundation
import StrataCore

/// The delta file format (Docs/FORMATS.md, "Delta"), version 1.
public enum DeltaFormat {
    /// `meta.format`.
    public static let name = "strata-delta"
    /// `meta.format_version`: the major version this build writes and the newest it reads.
    public static let majorVersion = 1
    /// The file name inside a bundle.
    public static let fileName = "delta.sqlite3"

    /// Ids are 1 to this many bytes of UTF-8, without NUL.
    public static let maxIdBytes = 1024
    /// Dimensions are 1 to this.
    public static let maxDimension = 65536
    /// A document is at most this many bytes of UTF-8.
    public static let maxDocumentBytes = 64 << 20
    /// Metadata JSON is at most this many bytes.
    public static let maxMetadataBytes = 1 << 20

    /// The schema, exactly as written (other writers may differ in spacing, not in meaning).
    public static let schema = [
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE upserts(id TEXT PRIMARY KEY, embedding BLOB NOT NULL, document TEXT, metadata TEXT)",
        "CREATE TABLE deletes(id TEXT PRIMARY KEY)",
    ]

    /// The major version of a `format_version` value ("1", "1.2"), or nil when it is not one.
    public static func major(ofVersion v: String) -> Int? {
        let head = v.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard !head.isEmpty, head.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), head.utf8.count <= 6 else {
            return nil
        }
        return Int(head)
    }
}

/// One upserted row.
public struct DeltaRow: Sendable, Equatable {
    public var id: String
    /// Exactly `dimension` finite floats.
    public var embedding: [Float]
    public var document: String?
    /// A flat JSON object of string, number or boolean values (canonical form when read back:
    /// keys sorted by their UTF-8 bytes, no spaces).
    public var metadata: String?

    public init(id: String, embedding: [Float], document: String? = nil, metadata: String? = nil) {
        self.id = id
        self.embedding = embedding
        self.document = document
        self.metadata = metadata
    }
}

/// What is wrong with one field of a row, before the caller adds where the row came from.
public struct FieldProblem: Error, Sendable, Equatable {
    /// The field: `id`, `embedding`, `embedding[3]`, `document`, `metadata.page`, ...
    public var field: String
    public var message: String
    public var fix: String?

    public init(field: String, message: String, fix: String? = nil) {
        self.field = field
        self.message = message
        self.fix = fix
    }

    /// As a `StrataError` about `object` (a file and line, a row id).
    public func strataError(object: String, kind: StrataError.Kind = .invalidInput) -> StrataError {
        StrataError(kind, object: object, field: field, message: message, fix: fix)
    }
}

/// The row rules shared by the writer (input), the reader (untrusted files) and the producer.
public enum DeltaRules {
    /// Checks an id's bytes: 1 to `maxIdBytes` of valid UTF-8 without NUL. Returns the String.
    public static func id(fromUTF8 bytes: UnsafeRawBufferPointer) throws -> String {
        if bytes.isEmpty { throw FieldProblem(field: "id", message: "is empty", fix: "give every row a non-empty id") }
        if bytes.count > DeltaFormat.maxIdBytes {
            throw FieldProblem(
                field: "id", message: "is \(bytes.count) bytes long, more than \(DeltaFormat.maxIdBytes)",
                fix: "use shorter ids (a hash of a long key works)")
        }
        if bytes.contains(0) {
            throw FieldProblem(field: "id", message: "contains a NUL character", fix: "remove NUL from ids")
        }
        guard let s = String(validating: bytes.bindMemory(to: UInt8.self), as: UTF8.self) else {
            throw FieldProblem(field: "id", message: "is not valid UTF-8", fix: "write ids as UTF-8 text")
        }
        return s
    }

    public static func check(id: String) throws {
        var s = id
        _ = try s.withUTF8 { try DeltaRules.id(fromUTF8: UnsafeRawBufferPointer($0)) }
    }

    public static func check(dimension: Int) throws {
        guard dimension >= 1 && dimension <= DeltaFormat.maxDimension else {
            throw FieldProblem(
                field: "dimension", message: "is \(dimension); it must be 1 to \(DeltaFormat.maxDimension)",
                fix: "pass the embedding model's dimension")
        }
    }

    /// Count and finiteness of an embedding.
    public static func check(embedding: UnsafeBufferPointer<Float>, dimension: Int) throws {
        if embedding.count != dimension {
            throw FieldProblem(
                field: "embedding",
                message: "has \(embedding.count) values, the collection's dimension is \(dimension)",
                fix: "embed with the model of dimension \(dimension), or write to another collection")
        }
        for i in 0..<embedding.count where !embedding[i].isFinite {
            let what = embedding[i].isNaN ? "NaN" : "infinite"
            throw FieldProblem(
                field: "embedding[\(i)]", message: "is \(what)",
                fix: "only finite float32 values are allowed; check the embedding model's output")
        }
    }

    public static func check(document: String) throws {
        let n = document.utf8.count
        if n > DeltaFormat.maxDocumentBytes {
            throw FieldProblem(
                field: "document", message: "is \(n) bytes, more than \(DeltaFormat.maxDocumentBytes)",
                fix: "store large documents elsewhere and keep a reference in metadata")
        }
        if document.utf8.contains(0) {
            throw FieldProblem(
                field: "document", message: "contains a NUL character, which SQLite clients truncate",
                fix: "remove NUL (\\u0000) from documents")
        }
    }

    /// Validates metadata JSON and returns its canonical form.
    public static func canonicalMetadata(_ json: String) throws -> String {
        if json.utf8.count > DeltaFormat.maxMetadataBytes {
            throw FieldProblem(
                field: "metadata",
                message: "is \(json.utf8.count) bytes, more than "
                    + "\(DeltaFormat.maxMetadataBytes)", fix: "keep metadata small")
        }
        var bytes = Array(json.utf8)
        let n = bytes.count
        bytes.append(0)  // the scanner may NUL-terminate a number in place
        return try JSONScanner.withCNumericLocale {
            try bytes.withUnsafeMutableBufferPointer { buf -> String in
                var scanner = JSONScanner(base: buf.baseAddress!, count: n)
                var scratch: [UInt8] = []
                scanner.skipWhitespace()
                let out = try scanner.parseMetadataObject(scratch: &scratch)
                scanner.skipWhitespace()
                if scanner.pos != n {
                    throw FieldProblem(
                        field: "metadata", message: "has text after the closing brace",
                        fix: "metadata must be exactly one JSON object")
                }
                return out
            }
        }
    }
}
