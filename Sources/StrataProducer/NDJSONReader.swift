import Foundation
import StrataCore
import StrataDelta

#if canImport(Glibc)
    import Glibc
#endif

/// One row of producer input.
public enum InputRow: Sendable, Equatable {
    case upsert(DeltaRow)
    case delete(id: String)

    public var id: String {
        switch self {
        case .upsert(let r): return r.id
        case .delete(let id): return id
        }
    }
}

/// Streams rows from an NDJSON file (Docs/FORMATS.md, "NDJSON input"):
///
///     {"id": "r1", "embedding": [0.1, -0.2], "document": "text", "metadata": {"page": 3}}
///     {"id": "r2", "delete": true}
///
/// The file is read in 1 MiB chunks; only the current line is held, so memory does not grow with
/// the file (a line may be at most `maxLineBytes`). The parser is byte-level: numbers go straight
/// to `strtof`, strings are decoded with every JSON escape. Every row is checked as it is read:
/// id, embedding (length = the dimension, fixed by the first upsert unless given, finite
/// float32), document, metadata (a flat object of string, number or boolean values), no
/// unknown or repeated keys. An error names the file, the line, the id when known, the field and
/// the problem.
public final class NDJSONReader {
    public let path: String
    public let maxLineBytes: Int
    /// The dimension every upsert must have; nil until the first upsert when not given.
    public var dimension: Int?
    /// The 1-based number of the line last returned.
    public private(set) var lineNumber = 0
    /// Bytes of input consumed so far (lines and their newlines).
    public private(set) var bytesRead: Int64 = 0
    /// Text-only rows (Docs/FORMATS.md): when true, an upsert may leave out `embedding`; it is then
    /// returned with an empty embedding and `textToEmbed` set. When false, such a row is an error.
    public var allowsMissingEmbedding = false
    /// The text to embed for the row last returned: its `embed_text` when given, else its
    /// `document`; nil when the row has an embedding (or is a delete).
    public private(set) var textToEmbed: String?

    private let fd: Int32
    private var buffer: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private var start = 0
    private var end = 0
    private var eof = false
    private var scratch: [UInt8] = []
    private var floats: [Float] = []

    public static let chunkSize = 1 << 20

    public init(path: String, dimension: Int? = nil, maxLineBytes: Int = 16 << 20) throws {
        self.path = path
        self.dimension = dimension
        self.maxLineBytes = max(1024, maxLineBytes)
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw StrataError(
                errno == ENOENT ? .notFound : .io, object: path,
                message: "cannot open the input: \(String(cString: strerror(errno)))",
                fix: "check the path and its permissions")
        }
        capacity = min(NDJSONReader.chunkSize, self.maxLineBytes + 1) + 1
        buffer = .allocate(capacity: capacity)
    }

    deinit {
        close(fd)
        buffer.deallocate()
    }

    // MARK: lines

    /// The next line's range in `buffer` (without its newline), or nil at the end of the file.
    private func nextLine() throws -> Range<Int>? {
        var searchFrom = start
        while true {
            if searchFrom < end,
                let nl = memchr(buffer + searchFrom, 0x0a, end - searchFrom)
            {
                let i = buffer.distance(to: nl.assumingMemoryBound(to: UInt8.self))
                let line = start..<i
                start = i + 1
                return line
            }
            searchFrom = end
            if end - start > maxLineBytes { throw lineTooLong() }
            if eof {
                guard start < end else { return nil }
                let line = start..<end
                start = end
                return line
            }
            // Make room: move the partial line to the front, grow if the line fills the buffer.
            if start > 0 {
                let n = end - start
                if n > 0 { memmove(buffer, buffer + start, n) }
                searchFrom -= start
                end = n
                start = 0
            }
            if end >= capacity - 1 {
                guard capacity - 1 < maxLineBytes + 1 else { throw lineTooLong() }
                let newCapacity = min(capacity * 2, maxLineBytes + 2)
                let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
                grown.update(from: buffer, count: end)
                buffer.deallocate()
                buffer = grown
                capacity = newCapacity
            }
            // Keep one byte spare after the data: the scanner NUL-terminates numbers in place.
            let n = read(fd, buffer + end, capacity - 1 - end)
            if n < 0 {
                if errno == EINTR { continue }
                throw StrataError(
                    .io, object: path, message: "cannot read the input: \(String(cString: strerror(errno)))")
            }
            if n == 0 { eof = true } else { end += n }
        }
    }

    private func lineTooLong() -> StrataError {
        StrataError(
            .invalidInput, object: "\(path) line \(lineNumber + 1)",
            message: "is longer than \(maxLineBytes) bytes",
            fix: "put one row per line (NDJSON), or raise the maximum line length")
    }

    // MARK: rows

    /// The next row, or nil at the end of the input. Blank lines are skipped.
    public func next() throws -> InputRow? {
        while let line = try nextLine() {
            lineNumber += 1
            bytesRead += Int64(line.count) + (start > line.upperBound ? 1 : 0)
            var lo = line.lowerBound
            // A UTF-8 byte order mark at the start of the file is allowed.
            if lineNumber == 1 && line.count >= 3 && buffer[lo] == 0xEF && buffer[lo + 1] == 0xBB
                && buffer[lo + 2] == 0xBF
            {
                lo += 3
            }
            var scanner = JSONScanner(base: buffer + lo, count: line.upperBound - lo)
            scanner.skipWhitespace()
            if scanner.atEnd { continue }
            do {
                return try JSONScanner.withCNumericLocale { try parseRow(&scanner) }
            } catch let p as FieldProblem {
                var rescan = JSONScanner(base: buffer + lo, count: line.upperBound - lo)
                throw rowError(p, id: NDJSONReader.bestEffortId(&rescan))
            }
        }
        return nil
    }

    private func rowError(_ p: FieldProblem, id: String?) -> StrataError {
        var object = "\(path) line \(lineNumber)"
        if let id { object += " (id \(DeltaWriter.quotedId(id)))" }
        return StrataError(
            .invalidInput, object: object, field: p.field.isEmpty ? nil : p.field, message: p.message,
            fix: p.fix)
    }

    private enum Key: CaseIterable {
        case id, embedding, document, metadata, delete, embedText
        var name: String { self == .embedText ? "embed_text" : "\(self)" }
    }

    private static let keys: [(bytes: [UInt8], key: Key)] = Key.allCases.map { (Array($0.name.utf8), $0) }

    private func parseRow(_ s: inout JSONScanner) throws -> InputRow {
        guard s.consume(0x7b) else {
            throw FieldProblem(
                field: "",
                message: "is not a JSON object (found \(s.peek().map { String(UnicodeScalar($0)) } ?? "nothing"))",
                fix: "write one JSON object per line")
        }
        var id: String?
        var hasEmbedding = false
        var document: String?
        var metadata: String?
        var isDelete: Bool?
        var embedText: String?
        textToEmbed = nil
        var seen = Set<Int>()
        if !s.consume(0x7d) {
            while true {
                try s.parseStringBytes(field: "", scratch: &scratch)
                let name = String(decoding: scratch, as: UTF8.self)
                guard let k = NDJSONReader.keys.firstIndex(where: { $0.bytes == scratch }) else {
                    throw FieldProblem(
                        field: name, message: "is not a known field",
                        fix: "a row has only id, embedding, document, metadata, embed_text, or id and delete")
                }
                guard seen.insert(k).inserted else {
                    throw FieldProblem(field: name, message: "appears twice in the row", fix: "give each field once")
                }
                guard s.consume(0x3a) else {
                    throw FieldProblem(field: name, message: "expected ':' after the key")
                }
                s.skipWhitespace()
                switch NDJSONReader.keys[k].key {
                case .id:
                    guard s.peek() == 0x22 else {
                        throw FieldProblem(field: "id", message: "must be a string", fix: "write ids as JSON strings")
                    }
                    try s.parseStringBytes(field: "id", scratch: &scratch)
                    id = try scratch.withUnsafeBytes { try DeltaRules.id(fromUTF8: $0) }
                case .embedding:
                    try s.parseFloatArray(field: "embedding", into: &floats)
                    hasEmbedding = true
                case .document:
                    if s.parseLiteral() == .null { break }
                    guard s.peek() == 0x22 else {
                        throw FieldProblem(field: "document", message: "must be a string or null")
                    }
                    let d = try s.parseString(field: "document", scratch: &scratch)
                    try DeltaRules.check(document: d)
                    document = d
                case .metadata:
                    if s.parseLiteral() == .null { break }
                    metadata = try s.parseMetadataObject(scratch: &scratch)
                case .embedText:
                    if s.parseLiteral() == .null { break }
                    guard s.peek() == 0x22 else {
                        throw FieldProblem(field: "embed_text", message: "must be a string or null")
                    }
                    let t = try s.parseString(field: "embed_text", scratch: &scratch)
                    try DeltaRules.check(document: t)
                    embedText = t
                case .delete:
                    switch s.parseLiteral() {
                    case .true?: isDelete = true
                    case .false?: isDelete = false
                    default: throw FieldProblem(field: "delete", message: "must be true or false")
                    }
                }
                if s.consume(0x2c) { continue }
                if s.consume(0x7d) { break }
                throw FieldProblem(
                    field: "",
                    message:
                        "expected , or } after \"\(name)\", found \(s.peek().map { String(UnicodeScalar($0)) } ?? "the end of the line")",
                    fix: "each line must be one complete JSON object")
            }
        }
        s.skipWhitespace()
        guard s.atEnd else {
            throw FieldProblem(field: "", message: "has text after the JSON object", fix: "put one object per line")
        }
        guard let id else {
            throw FieldProblem(field: "id", message: "is missing", fix: "give every row an id")
        }
        if isDelete == true {
            if hasEmbedding || document != nil || metadata != nil || embedText != nil {
                throw FieldProblem(
                    field: "delete", message: "a delete row has only id and delete",
                    fix: "remove embedding, document, embed_text and metadata from delete rows")
            }
            return .delete(id: id)
        }
        if !hasEmbedding && allowsMissingEmbedding {
            guard let text = embedText ?? document, !text.isEmpty else {
                throw FieldProblem(
                    field: "embedding", message: "is missing and the row has no text to embed",
                    fix: "give the row an embed_text or a document (or an embedding)")
            }
            textToEmbed = text
            return .upsert(DeltaRow(id: id, embedding: [], document: document, metadata: metadata))
        }
        guard hasEmbedding else {
            throw FieldProblem(
                field: "embedding", message: "is missing",
                fix: "an upsert needs an embedding (or use snapctl produce --embed for text-only rows); "
                    + "a delete is {\"id\": ..., \"delete\": true}")
        }
        if let dimension {
            try floats.withUnsafeBufferPointer { try DeltaRules.check(embedding: $0, dimension: dimension) }
        } else {
            if floats.isEmpty || floats.count > DeltaFormat.maxDimension {
                throw FieldProblem(
                    field: "embedding",
                    message: "has \(floats.count) values; a dimension is 1 to "
                        + "\(DeltaFormat.maxDimension)")
            }
            dimension = floats.count
        }
        return .upsert(DeltaRow(id: id, embedding: floats, document: document, metadata: metadata))
    }

    /// The row's top-level "id" string, if one can be found; used only to make errors precise.
    /// Tolerant: it tracks only strings and nesting, so it sees past the error being reported
    /// (a NaN, a bad value) to an id written after it.
    static func bestEffortId(_ s: inout JSONScanner) -> String? {
        var depth = 0
        var scratch: [UInt8] = []
        while let c = s.peek() {
            switch c {
            case 0x7b, 0x5b:
                depth += 1
                s.pos += 1
            case 0x7d, 0x5d:
                depth -= 1
                s.pos += 1
            case 0x22:
                let atTop = depth == 1
                guard (try? s.parseStringBytes(field: "", scratch: &scratch)) != nil else { return nil }
                if atTop && scratch == [0x69, 0x64] && s.consume(0x3a) {  // "id":
                    s.skipWhitespace()
                    if s.peek() == 0x22, (try? s.parseStringBytes(field: "", scratch: &scratch)) != nil {
                        return String(decoding: scratch, as: UTF8.self)
                    }
                    return nil
                }
            default: s.pos += 1
            }
        }
        return nil
    }
}
