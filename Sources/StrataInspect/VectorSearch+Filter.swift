import Foundation
import StrataCore

/// Conditions on a row's metadata, all of which must hold (AND). Each is `key=value`, compared
/// with the metadata value by its JSON type, so the command line needs no type annotations:
///
/// | metadata value     | `key=value` matches when                                     |
/// | ------------------ | ------------------------------------------------------------ |
/// | string `"abc"`     | the text equals value exactly (`image_id=abc`, `code=007`)   |
/// | number `1`, `1.50` | value is a number equal to it (`receipt_id=1` matches 1, 1.0)|
/// | `true` / `false`   | value is `true` / `false`                                    |
///
/// A value in double quotes (`key="1"`) matches strings only. A missing key, a null, a nested
/// value, or metadata that is not a JSON object never matches. Integers are compared exactly
/// (beyond 2^53 too); other numbers as float64.
public struct MetadataFilter: Sendable, Equatable, CustomStringConvertible {
    public struct Condition: Sendable, Equatable {
        public var key: String
        /// The value as typed (without the quotes of a quoted value).
        public var value: String
        /// `key="value"`: match strings only.
        public var stringOnly: Bool

        fileprivate var keyBytes: [UInt8] { Array(key.utf8) }
    }

    public private(set) var conditions: [Condition] = []
    private var keys: [[UInt8]] = []
    private var values: [[UInt8]] = []

    public init() {}

    /// Parses `key=value` expressions (split at the first `=`).
    public init(parsing expressions: [String]) throws {
        for e in expressions {
            guard let eq = e.firstIndex(of: "="), eq != e.startIndex else {
                throw StrataError(
                    .invalidInput, object: "--where \(e)", message: "is not key=value",
                    fix: "write --where key=value, e.g. --where image_id=abc or --where has_price=true")
            }
            let key = String(e[..<eq])
            var value = String(e[e.index(after: eq)...])
            var stringOnly = false
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                stringOnly = true
                value = String(value.dropFirst().dropLast())
            }
            conditions.append(Condition(key: key, value: value, stringOnly: stringOnly))
        }
        keys = conditions.map(\.keyBytes)
        values = conditions.map { Array($0.value.utf8) }
    }

    public var isEmpty: Bool { conditions.isEmpty }

    public var description: String {
        conditions.map { "\($0.key)=\($0.stringOnly ? "\"\($0.value)\"" : $0.value)" }.joined(separator: " AND ")
    }

    /// True when every condition holds for this metadata JSON (UTF-8), nil meaning no metadata.
    public func matches(_ metadata: UnsafeRawBufferPointer?) -> Bool {
        if conditions.isEmpty { return true }
        guard let metadata, metadata.count > 0 else { return false }
        var satisfied = [Bool](repeating: false, count: conditions.count)
        var remaining = conditions.count
        var parser = FlatJSONObjectParser(metadata)
        let ok = parser.forEachMember { key, value in
            for i in 0..<conditions.count where !satisfied[i] && keys[i] == key {
                if accepts(i, value) {
                    satisfied[i] = true
                    remaining -= 1
                }
            }
            return remaining > 0
        }
        return ok && remaining == 0
    }

    public func matches(_ metadata: String?) -> Bool {
        guard var m = metadata else { return matches(nil as UnsafeRawBufferPointer?) }
        return m.withUTF8 { matches(UnsafeRawBufferPointer($0)) }
    }

    private func accepts(_ i: Int, _ value: FlatJSONObjectParser.Value) -> Bool {
        let want = values[i]
        switch value {
        case .string(let s):
            return s == want
        case .number(let text):
            return !conditions[i].stringOnly && MetadataFilter.numbersEqual(text, want)
        case .bool(let b):
            return !conditions[i].stringOnly && want == (b ? Array("true".utf8) : Array("false".utf8))
        case .null, .nested:
            return false
        }
    }

    /// JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, leading zeros allowed
    /// here so `code=007` still compares as a number with a numeric value.
    static func isNumber(_ t: [UInt8]) -> (ok: Bool, integer: Bool) {
        var i = 0
        if i < t.count, t[i] == UInt8(ascii: "-") { i += 1 }
        let intStart = i
        while i < t.count, t[i] >= 0x30, t[i] <= 0x39 { i += 1 }
        if i == intStart { return (false, false) }
        var integer = true
        if i < t.count, t[i] == UInt8(ascii: ".") {
            integer = false
            i += 1
            let s = i
            while i < t.count, t[i] >= 0x30, t[i] <= 0x39 { i += 1 }
            if i == s { return (false, false) }
        }
        if i < t.count, t[i] == UInt8(ascii: "e") || t[i] == UInt8(ascii: "E") {
            integer = false
            i += 1
            if i < t.count, t[i] == UInt8(ascii: "+") || t[i] == UInt8(ascii: "-") { i += 1 }
            let s = i
            while i < t.count, t[i] >= 0x30, t[i] <= 0x39 { i += 1 }
            if i == s { return (false, false) }
        }
        return (i == t.count, integer)
    }

    static func numbersEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        let na = isNumber(a)
        let nb = isNumber(b)
        guard na.ok, nb.ok else { return false }
        if na.integer, nb.integer { return canonicalInteger(a) == canonicalInteger(b) }
        guard let x = Double(String(decoding: a, as: UTF8.self)), let y = Double(String(decoding: b, as: UTF8.self))
        else {
            return false
        }
        return x == y
    }

    /// Sign and digits without leading zeros; "-0" is "0".
    private static func canonicalInteger(_ t: [UInt8]) -> [UInt8] {
        var digits = t[...]
        let negative = digits.first == UInt8(ascii: "-")
        if negative { digits = digits.dropFirst() }
        while digits.count > 1, digits.first == UInt8(ascii: "0") { digits = digits.dropFirst() }
        if digits == [UInt8(ascii: "0")] { return Array(digits) }
        return (negative ? [UInt8(ascii: "-")] : []) + Array(digits)
    }
}

/// Walks the members of one JSON object given as UTF-8, decoding keys and string values and
/// leaving numbers as written. Nested values are skipped (reported as `.nested`). Stops with
/// false on malformed input. Small and allocation-light: it runs once per row under a filter.
struct FlatJSONObjectParser {
    enum Value {
        case string([UInt8])
        case number([UInt8])
        case bool(Bool)
        case null
        case nested
    }

    private let bytes: UnsafeRawBufferPointer
    private var pos = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// Calls `body` per member until it returns false; false when the JSON is malformed.
    mutating func forEachMember(_ body: ([UInt8], Value) -> Bool) -> Bool {
        skipWhitespace()
        guard take(UInt8(ascii: "{")) else { return false }
        skipWhitespace()
        if take(UInt8(ascii: "}")) { return true }
        while true {
            skipWhitespace()
            guard let key = parseString() else { return false }
            skipWhitespace()
            guard take(UInt8(ascii: ":")) else { return false }
            skipWhitespace()
            guard let value = parseValue() else { return false }
            if !body(key, value) { return true }
            skipWhitespace()
            if take(UInt8(ascii: ",")) { continue }
            return take(UInt8(ascii: "}"))
        }
    }

    private func peek() -> UInt8? { pos < bytes.count ? bytes[pos] : nil }

    private mutating func take(_ b: UInt8) -> Bool {
        guard peek() == b else { return false }
        pos += 1
        return true
    }

    private mutating func skipWhitespace() {
        while let c = peek(), c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d { pos += 1 }
    }

    private mutating func literal(_ word: String) -> Bool {
        let w = Array(word.utf8)
        guard pos + w.count <= bytes.count else { return false }
        for (i, b) in w.enumerated() where bytes[pos + i] != b { return false }
        pos += w.count
        return true
    }

    private mutating func parseValue() -> Value? {
        switch peek() {
        case UInt8(ascii: "\"")?:
            return parseString().map { .string($0) }
        case UInt8(ascii: "t")?:
            return literal("true") ? .bool(true) : nil
        case UInt8(ascii: "f")?:
            return literal("false") ? .bool(false) : nil
        case UInt8(ascii: "n")?:
            return literal("null") ? .null : nil
        case UInt8(ascii: "{")?, UInt8(ascii: "[")?:
            return skipNested() ? .nested : nil
        case let c? where c == UInt8(ascii: "-") || (c >= 0x30 && c <= 0x39):
            let start = pos
            while let c = peek(),
                c == 0x2b || c == 0x2d || c == 0x2e || c == 0x45 || c == 0x65 || (c >= 0x30 && c <= 0x39)
            {
                pos += 1
            }
            return .number(Array(bytes[start..<pos]))
        default:
            return nil
        }
    }

    /// A JSON string, unescaped, as UTF-8.
    private mutating func parseString() -> [UInt8]? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        var out: [UInt8] = []
        while let c = peek() {
            pos += 1
            switch c {
            case UInt8(ascii: "\""):
                return out
            case UInt8(ascii: "\\"):
                guard let e = peek() else { return nil }
                pos += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    guard var scalar = hex4() else { return nil }
                    if (0xD800..<0xDC00).contains(scalar) {
                        // A surrogate pair: \uD83D\uDE00.
                        guard take(UInt8(ascii: "\\")), take(UInt8(ascii: "u")), let low = hex4(),
                            (0xDC00..<0xE000).contains(low)
                        else { return nil }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let u = Unicode.Scalar(scalar) else { return nil }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default:
                    return nil
                }
            default:
                out.append(c)
            }
        }
        return nil
    }

    private mutating func hex4() -> UInt32? {
        guard pos + 4 <= bytes.count else { return nil }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[pos]
            pos += 1
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: return nil
            }
            v = v << 4 | d
        }
        return v
    }

    /// Skips an object or array, minding strings (which may hold brackets).
    private mutating func skipNested() -> Bool {
        var depth = 0
        while let c = peek() {
            switch c {
            case UInt8(ascii: "\""):
                guard parseString() != nil else { return false }
                continue
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 0 {
                    pos += 1
                    return true
                }
            default:
                break
            }
            pos += 1
        }
        return false
    }
}
