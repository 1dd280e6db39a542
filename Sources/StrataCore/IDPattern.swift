import Foundation

/// The shape every id of a collection should have, written the way people describe ids:
/// `IMAGE#{uuid}#RECEIPT#{5 digits}#LINE#{5 digits}`.
///
/// Placeholders:
/// - `{uuid}`: 8-4-4-4-12 hex digits with dashes (either case);
/// - `{N digits}` (or `{N digit}`): exactly N ASCII digits;
/// - `{digits}`: one or more ASCII digits;
/// - `{hex}`: one or more hex digits (either case);
/// - `{any}`: one or more characters of any kind.
///
/// Everything else is literal and compared byte for byte (so case matters); `{{` and `}}` stand
/// for a literal brace. An unknown placeholder (`{uuid4}`, `{5 digit}s`) is an error rather than
/// a literal, so a typo does not silently flag every id.
///
/// The matcher works on UTF-8 bytes with memoised backtracking: linear in the id for patterns
/// without `{any}`/`{digits}`/`{hex}`, and at most (pattern parts × id length) steps otherwise.
public struct IDPattern: Sendable, Equatable, CustomStringConvertible {
    enum Part: Sendable, Equatable {
        case literal([UInt8])
        case uuid
        case digits(Int)
        case someDigits
        case hex
        case any
    }

    public let source: String
    let parts: [Part]

    public var description: String { source }

    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public var pattern: String
        public var message: String
        public var description: String { "--id-pattern \(pattern.debugDescription): \(message)" }
    }

    /// Built-in patterns for the seed's id formats, by name.
    public static let builtIn: [String: String] = [
        "receipt-line": "IMAGE#{uuid}#RECEIPT#{5 digits}#LINE#{5 digits}",
        "receipt-word": "IMAGE#{uuid}#RECEIPT#{5 digits}#LINE#{5 digits}#WORD#{5 digits}",
    ]

    /// A built-in name (`receipt-line`, `receipt-word`) or a pattern.
    public static func named(_ nameOrPattern: String) throws -> IDPattern {
        try IDPattern(builtIn[nameOrPattern] ?? nameOrPattern)
    }

    /// `C=PATTERN` (PATTERN a built-in name or a pattern) for collection C, or a bare PATTERN for
    /// every collection (collection nil). Names are validated like collections.
    public static func parseOption(_ text: String) throws -> (collection: String?, pattern: IDPattern) {
        if let eq = text.firstIndex(of: "=") {
            let name = String(text[..<eq])
            if (try? Layout.validate(collection: name)) != nil {
                return (name, try named(String(text[text.index(after: eq)...])))
            }
        }
        return (nil, try named(text))
    }

    /// Throws an invalid-input error naming `id`, `object` and the pattern unless `id` matches.
    public func check(_ id: String, object: String) throws {
        guard !matches(id) else { return }
        throw StrataError(
            .invalidInput, object: object, field: "id",
            message: "\(id.prefix(200).debugDescription) does not match the id pattern \(source)",
            fix: "fix the id (or the --id-pattern option) and publish again")
    }

    public init(_ source: String) throws {
        self.source = source
        guard !source.isEmpty else { throw ParseError(pattern: source, message: "is empty") }
        var parts: [Part] = []
        var literal: [UInt8] = []
        func flush() {
            if !literal.isEmpty { parts.append(.literal(literal)) }
            literal = []
        }
        let bytes = Array(source.utf8)
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "{") {
                if i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "{") {
                    literal.append(b)
                    i += 2
                    continue
                }
                guard let close = bytes[(i + 1)...].firstIndex(of: UInt8(ascii: "}")) else {
                    throw ParseError(
                        pattern: source, message: "a \"{\" at byte \(i) is not closed (write {{ for a literal brace)")
                }
                let name = String(decoding: bytes[(i + 1)..<close], as: UTF8.self)
                flush()
                parts.append(try IDPattern.placeholder(name, pattern: source))
                i = close + 1
            } else if b == UInt8(ascii: "}") {
                guard i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "}") else {
                    throw ParseError(
                        pattern: source, message: "a \"}\" at byte \(i) closes nothing (write }} for a literal brace)")
                }
                literal.append(b)
                i += 2
            } else {
                literal.append(b)
                i += 1
            }
        }
        flush()
        self.parts = parts
    }

    private static func placeholder(_ raw: String, pattern: String) throws -> Part {
        let name = raw.trimmingCharacters(in: .whitespaces).lowercased()
        switch name {
        case "uuid": return .uuid
        case "digits": return .someDigits
        case "hex": return .hex
        case "any": return .any
        default: break
        }
        let words = name.split(separator: " ", omittingEmptySubsequences: true)
        if words.count == 2, words[1] == "digits" || words[1] == "digit", let n = Int(words[0]), n > 0, n <= 1024 {
            return .digits(n)
        }
        throw ParseError(
            pattern: pattern,
            message: "unknown placeholder {\(raw)}; use {uuid}, {N digits}, {digits}, {hex} or {any}")
    }

    /// True when `id` has this shape.
    public func matches(_ id: String) -> Bool {
        let s = Array(id.utf8)
        var failed = Set<Int>()  // (part index << 32 | position) known not to match
        return match(s, 0, 0, &failed)
    }

    private func match(_ s: [UInt8], _ p: Int, _ pos: Int, _ failed: inout Set<Int>) -> Bool {
        if p == parts.count { return pos == s.count }
        let memo = p << 32 | pos
        if failed.contains(memo) { return false }
        let ok: Bool
        switch parts[p] {
        case .literal(let lit):
            ok =
                pos + lit.count <= s.count && s[pos..<(pos + lit.count)].elementsEqual(lit)
                && match(s, p + 1, pos + lit.count, &failed)
        case .uuid:
            ok = IDPattern.isUUID(s, at: pos) && match(s, p + 1, pos + 36, &failed)
        case .digits(let n):
            ok =
                pos + n <= s.count && s[pos..<(pos + n)].allSatisfy(IDPattern.isDigit)
                && match(s, p + 1, pos + n, &failed)
        case .someDigits, .hex, .any:
            let accept: (UInt8) -> Bool
            switch parts[p] {
            case .someDigits: accept = IDPattern.isDigit
            case .hex: accept = IDPattern.isHex
            default: accept = { _ in true }
            }
            var end = pos
            var found = false
            // Longest first, then shorter: the usual greedy reading.
            while end < s.count, accept(s[end]) { end += 1 }
            while end > pos {
                if match(s, p + 1, end, &failed) {
                    found = true
                    break
                }
                end -= 1
            }
            ok = found
        }
        if !ok { failed.insert(memo) }
        return ok
    }

    static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    static func isHex(_ b: UInt8) -> Bool { isDigit(b) || (b >= 0x61 && b <= 0x66) || (b >= 0x41 && b <= 0x46) }

    static func isUUID(_ s: [UInt8], at pos: Int) -> Bool {
        guard pos + 36 <= s.count else { return false }
        for i in 0..<36 {
            let b = s[pos + i]
            if i == 8 || i == 13 || i == 18 || i == 23 {
                if b != UInt8(ascii: "-") { return false }
            } else if !isHex(b) {
                return false
            }
        }
        return true
    }
}
