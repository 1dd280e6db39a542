import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A byte-level JSON scanner for the few shapes Strata reads: NDJSON rows and flat metadata
/// objects. It is much faster than Foundation's decoders for float arrays (numbers go straight
/// to `strtof`) and reports problems by field.
///
/// The buffer is mutable and must have one writable byte past `count`: a number is converted by
/// writing a NUL after it, calling `strtof`/`strtod`, and restoring the byte. Numbers are parsed
/// in the C locale (see `withCNumericLocale`), so a process locale with a decimal comma does not
/// change their meaning.
public struct JSONScanner {
    public let base: UnsafeMutablePointer<UInt8>
    public let count: Int
    public var pos: Int = 0

    public init(base: UnsafeMutablePointer<UInt8>, count: Int) {
        self.base = base
        self.count = count
    }

    // MARK: basics

    @inline(__always) public var atEnd: Bool { pos >= count }

    @inline(__always) public func peek() -> UInt8? { pos < count ? base[pos] : nil }

    @inline(__always) public mutating func skipWhitespace() {
        while pos < count {
            let c = base[pos]
            if c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d { pos += 1 } else { return }
        }
    }

    /// Consumes `byte` (after whitespace) or returns false.
    @inline(__always) public mutating func consume(_ byte: UInt8) -> Bool {
        skipWhitespace()
        if pos < count && base[pos] == byte {
            pos += 1
            return true
        }
        return false
    }

    func describeHere() -> String {
        guard pos < count else { return "the end of the line" }
        let c = base[pos]
        if c >= 0x21 && c < 0x7f { return "'\(Character(Unicode.Scalar(c)))'" }
        return String(format: "byte 0x%02x", c)
    }

    public func problem(_ field: String, _ message: String, fix: String? = nil) -> FieldProblem {
        FieldProblem(field: field, message: message, fix: fix)
    }

    // MARK: strings

    /// Parses a JSON string at `pos` (which must be `"`), decoding every escape, including
    /// `\uXXXX` surrogate pairs. Raw bytes must be valid UTF-8 without control characters.
    public mutating func parseString(field: String, scratch: inout [UInt8]) throws -> String {
        try parseStringBytes(field: field, scratch: &scratch)
        return scratch.withUnsafeBufferPointer { String(decoding: $0, as: UTF8.self) }
    }

    /// Like `parseString`, leaving the decoded UTF-8 bytes (already validated) in `scratch`.
    public mutating func parseStringBytes(field: String, scratch: inout [UInt8]) throws {
        skipWhitespace()
        guard pos < count, base[pos] == 0x22 else {
            throw problem(field, "expected a string, found \(describeHere())")
        }
        pos += 1
        scratch.removeAll(keepingCapacity: true)
        var runStart = pos
        while true {
            guard pos < count else { throw problem(field, "string is not terminated (missing closing quote)") }
            let c = base[pos]
            if c == 0x22 {  // closing quote
                try appendRaw(from: runStart, to: pos, field: field, into: &scratch)
                pos += 1
                return
            }
            if c == 0x5c {  // backslash
                try appendRaw(from: runStart, to: pos, field: field, into: &scratch)
                pos += 1
                guard pos < count else { throw problem(field, "string ends in the middle of an escape") }
                let e = base[pos]
                pos += 1
                switch e {
                case 0x22: scratch.append(0x22)
                case 0x5c: scratch.append(0x5c)
                case 0x2f: scratch.append(0x2f)
                case 0x62: scratch.append(0x08)
                case 0x66: scratch.append(0x0c)
                case 0x6e: scratch.append(0x0a)
                case 0x72: scratch.append(0x0d)
                case 0x74: scratch.append(0x09)
                case 0x75: try appendUnicodeEscape(field: field, into: &scratch)
                default:
                    throw problem(
                        field, "has an invalid escape \\\(Character(Unicode.Scalar(e)))",
                        fix: "valid escapes are \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX")
                }
                runStart = pos
                continue
            }
            if c < 0x20 {
                throw problem(
                    field, "contains an unescaped control character (0x\(String(c, radix: 16)))",
                    fix: "escape control characters, e.g. \\n for a newline")
            }
            pos += 1
        }
    }

    /// Appends raw bytes [from, to) after checking they are valid UTF-8.
    private func appendRaw(from: Int, to: Int, field: String, into scratch: inout [UInt8]) throws {
        guard to > from else { return }
        let raw = UnsafeBufferPointer(start: base + from, count: to - from)
        var ascii = true
        for b in raw where b >= 0x80 {
            ascii = false
            break
        }
        if !ascii && String(validating: raw, as: UTF8.self) == nil {
            throw problem(field, "is not valid UTF-8", fix: "write the file as UTF-8")
        }
        scratch.append(contentsOf: raw)
    }

    private mutating func hex4(field: String) throws -> UInt32 {
        guard pos + 4 <= count else { throw problem(field, "has a truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = base[pos]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw problem(field, "has a \\u escape with a non-hex digit")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    private mutating func appendUnicodeEscape(field: String, into scratch: inout [UInt8]) throws {
        var cp = try hex4(field: field)
        if cp >= 0xD800 && cp <= 0xDBFF {
            // A high surrogate must be followed by \u and a low surrogate.
            guard pos + 2 <= count, base[pos] == 0x5c, base[pos + 1] == 0x75 else {
                throw problem(
                    field, "has an unpaired surrogate \\u\(String(cp, radix: 16, uppercase: true))",
                    fix: "encode characters outside the BMP as a surrogate pair")
            }
            pos += 2
            let low = try hex4(field: field)
            guard low >= 0xDC00 && low <= 0xDFFF else {
                throw problem(field, "has a high surrogate not followed by a low surrogate")
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00)
        } else if cp >= 0xDC00 && cp <= 0xDFFF {
            throw problem(field, "has an unpaired low surrogate \\u\(String(cp, radix: 16, uppercase: true))")
        }
        let scalar = Unicode.Scalar(cp)!
        scratch.append(contentsOf: UTF8.encode(scalar)!)
    }

    // MARK: numbers

    /// Scans a JSON number at `pos`, checking its grammar (no NaN, Infinity, hex or leading +),
    /// and returns its byte range.
    public mutating func scanNumber(field: @autoclosure () -> String) throws -> Range<Int> {
        skipWhitespace()
        let start = pos
        @inline(__always) func isDigit(_ i: Int) -> Bool { i < count && base[i] >= 0x30 && base[i] <= 0x39 }
        if pos < count && base[pos] == 0x2d { pos += 1 }
        guard isDigit(pos) else {
            throw problem(
                field(), "expected a number, found \(describeHere())",
                fix: "numbers are plain JSON numbers; NaN, Infinity and quoted numbers are not allowed")
        }
        if base[pos] == 0x30 {
            pos += 1
            if isDigit(pos) { throw problem(field(), "is a number with a leading zero") }
        } else {
            while isDigit(pos) { pos += 1 }
        }
        if pos < count && base[pos] == 0x2e {
            pos += 1
            guard isDigit(pos) else { throw problem(field(), "is a number with no digit after the decimal point") }
            while isDigit(pos) { pos += 1 }
        }
        if pos < count && (base[pos] == 0x65 || base[pos] == 0x45) {
            pos += 1
            if pos < count && (base[pos] == 0x2b || base[pos] == 0x2d) { pos += 1 }
            guard isDigit(pos) else { throw problem(field(), "is a number with an empty exponent") }
            while isDigit(pos) { pos += 1 }
        }
        return start..<pos
    }

    /// The float32 value of a scanned number (`strtof`, correctly rounded). May be infinite when
    /// the number is out of float32 range: the caller checks.
    /// Powers of ten exactly representable as Float (5^10 < 2^24).
    private static let exactPowers: [Float] = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10]

    @inline(__always) public func float32(_ r: Range<Int>) -> Float {
        // Fast path (Clinger): a plain decimal whose digits form an integer m <= 2^24 with at most
        // 10 fraction digits is m / 10^k, both exact in Float, so one IEEE division gives the
        // correctly rounded value: exactly what strtof returns, at a fraction of the cost.
        var i = r.lowerBound
        let negative = base[i] == 0x2d
        if negative { i += 1 }
        var m: UInt32 = 0
        var fraction = -1
        var fast = i < r.upperBound
        while i < r.upperBound {
            let c = base[i]
            if c >= 0x30 && c <= 0x39 {
                m = m &* 10 &+ UInt32(c &- 0x30)
                if m > (1 << 24) {
                    fast = false
                    break
                }
                if fraction >= 0 { fraction += 1 }
            } else if c == 0x2e && fraction < 0 {
                fraction = 0
            } else {
                fast = false  // exponent, or anything unusual: let strtof decide
                break
            }
            i += 1
        }
        if fast && fraction <= 10 {
            let v = Float(m) / JSONScanner.exactPowers[max(0, fraction)]
            return negative ? -v : v
        }
        let saved = base[r.upperBound]
        base[r.upperBound] = 0
        let v = (base + r.lowerBound).withMemoryRebound(to: CChar.self, capacity: r.count + 1) { strtof($0, nil) }
        base[r.upperBound] = saved
        return v
    }

    public func float64(_ r: Range<Int>) -> Double {
        let saved = base[r.upperBound]
        base[r.upperBound] = 0
        let v = (base + r.lowerBound).withMemoryRebound(to: CChar.self, capacity: r.count + 1) { strtod($0, nil) }
        base[r.upperBound] = saved
        return v
    }

    /// Parses `[n, n, ...]` of float32 values into `out` (cleared first), checking each is finite.
    public mutating func parseFloatArray(field: String, into out: inout [Float]) throws {
        out.removeAll(keepingCapacity: true)
        guard consume(0x5b) else { throw problem(field, "expected an array of numbers, found \(describeHere())") }
        if consume(0x5d) { return }
        while true {
            let r = try scanNumber(field: "\(field)[\(out.count)]")
            let v = float32(r)
            if !v.isFinite {
                throw problem(
                    "\(field)[\(out.count)]",
                    "is \(String(decoding: UnsafeBufferPointer(start: base + r.lowerBound, count: min(r.count, 40)), as: UTF8.self)), outside the float32 range",
                    fix: "embedding values must be finite float32 numbers (|x| < 3.4e38)")
            }
            out.append(v)
            skipWhitespace()
            guard pos < count else { throw problem(field, "array is not terminated (missing ])") }
            let c = base[pos]
            pos += 1
            if c == 0x2c { continue }
            if c == 0x5d { return }
            pos -= 1
            throw problem(field, "expected , or ] after element \(out.count - 1), found \(describeHere())")
        }
    }

    // MARK: literals

    /// Consumes `true`, `false` or `null`, returning which, or nil (consuming nothing).
    public enum Literal { case `true`, `false`, null }

    public mutating func parseLiteral() -> Literal? {
        skipWhitespace()
        func matches(_ word: StaticString) -> Bool {
            let n = word.utf8CodeUnitCount
            guard pos + n <= count else { return false }
            for i in 0..<n where base[pos + i] != word.utf8Start[i] { return false }
            // The literal must not run into more letters ("trueish").
            if pos + n < count, base[pos + n] >= 0x61 && base[pos + n] <= 0x7a { return false }
            pos += n
            return true
        }
        if matches("true") { return .true }
        if matches("false") { return .false }
        if matches("null") { return .null }
        return nil
    }

    // MARK: metadata

    /// Parses a flat JSON object whose values are strings, numbers or booleans, and returns its
    /// canonical JSON (keys sorted by UTF-8 bytes, no whitespace, numbers as written, strings
    /// re-escaped minimally). Field names in problems are `metadata.<key>`.
    public mutating func parseMetadataObject(scratch: inout [UInt8]) throws -> String {
        guard consume(0x7b) else {
            throw problem(
                "metadata", "expected a JSON object, found \(describeHere())",
                fix: "metadata is an object like {\"page\": 3, \"lang\": \"en\"}")
        }
        var entries: [(key: [UInt8], value: [UInt8])] = []
        if !consume(0x7d) {
            while true {
                try parseStringBytes(field: "metadata", scratch: &scratch)
                let key = scratch
                let name = "metadata." + String(decoding: key, as: UTF8.self)
                if key.isEmpty {
                    throw problem("metadata", "has an empty key", fix: "give every metadata value a name")
                }
                guard consume(0x3a) else { throw problem(name, "expected ':' after the key, found \(describeHere())") }
                skipWhitespace()
                var value: [UInt8] = []
                switch peek() {
                case 0x22:
                    try parseStringBytes(field: name, scratch: &scratch)
                    JSONScanner.appendQuoted(scratch, to: &value)
                case 0x7b, 0x5b:
                    throw problem(
                        name, "is a nested \(peek() == 0x7b ? "object" : "array")",
                        fix: "metadata values must be strings, numbers or booleans; flatten nested values "
                            + "(e.g. \"box_x\": 1) or store them as a JSON string")
                case let c? where c == 0x2d || (c >= 0x30 && c <= 0x39):
                    let r = try scanNumber(field: name)
                    if !float64(r).isFinite {
                        throw problem(name, "is a number outside the float64 range")
                    }
                    value.append(contentsOf: UnsafeBufferPointer(start: base + r.lowerBound, count: r.count))
                default:
                    switch parseLiteral() {
                    case .true?: value.append(contentsOf: Array("true".utf8))
                    case .false?: value.append(contentsOf: Array("false".utf8))
                    case .null?:
                        throw problem(name, "is null", fix: "leave the key out instead of writing null")
                    case nil:
                        throw problem(name, "expected a string, number or boolean, found \(describeHere())")
                    }
                }
                entries.append((key, value))
                skipWhitespace()
                if consume(0x2c) { continue }
                if consume(0x7d) { break }
                throw problem("metadata", "expected , or } after \(name), found \(describeHere())")
            }
        }
        entries.sort { $0.key.lexicographicallyPrecedes($1.key) }
        var out: [UInt8] = [0x7b]
        for (i, e) in entries.enumerated() {
            if i > 0 {
                if entries[i - 1].key == e.key {
                    throw problem(
                        "metadata." + String(decoding: e.key, as: UTF8.self), "appears twice",
                        fix: "give each metadata key once")
                }
                out.append(0x2c)
            }
            JSONScanner.appendQuoted(e.key, to: &out)
            out.append(0x3a)
            out.append(contentsOf: e.value)
        }
        out.append(0x7d)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `bytes` (valid UTF-8) as a JSON string, escaping only what JSON requires.
    public static func appendQuoted<C: Collection>(_ bytes: C, to out: inout [UInt8]) where C.Element == UInt8 {
        let hex = Array("0123456789abcdef".utf8)
        out.append(0x22)
        for b in bytes {
            switch b {
            case 0x22:
                out.append(0x5c)
                out.append(0x22)
            case 0x5c:
                out.append(0x5c)
                out.append(0x5c)
            case 0x0a:
                out.append(0x5c)
                out.append(0x6e)
            case 0x0d:
                out.append(0x5c)
                out.append(0x72)
            case 0x09:
                out.append(0x5c)
                out.append(0x74)
            case 0x08:
                out.append(0x5c)
                out.append(0x62)
            case 0x0c:
                out.append(0x5c)
                out.append(0x66)
            case 0..<0x20:
                out.append(contentsOf: [0x5c, 0x75, 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 0xf)]])
            default: out.append(b)
            }
        }
        out.append(0x22)
    }

    public static func quoted(_ s: String) -> String {
        var out: [UInt8] = []
        appendQuoted(s.utf8, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: skipping

    /// Skips any JSON value (used only to find an id for an error message; lenient on depth).
    public mutating func skipValue(depth: Int = 0) throws {
        var scratch: [UInt8] = []
        skipWhitespace()
        guard depth < 64, let c = peek() else { throw problem("", "unexpected end") }
        switch c {
        case 0x22: try parseStringBytes(field: "", scratch: &scratch)
        case 0x7b, 0x5b:
            let close: UInt8 = c == 0x7b ? 0x7d : 0x5d
            pos += 1
            if consume(close) { return }
            while true {
                if c == 0x7b {
                    try parseStringBytes(field: "", scratch: &scratch)
                    guard consume(0x3a) else { throw problem("", "expected :") }
                }
                try skipValue(depth: depth + 1)
                if consume(0x2c) { continue }
                if consume(close) { return }
                throw problem("", "bad container")
            }
        default:
            if parseLiteral() == nil { _ = try scanNumber(field: "") }
        }
    }

    // MARK: locale

    /// Runs `body` with this thread's numeric locale set to "C", so `strtof` reads "1.5" as 1.5
    /// whatever the process locale is.
    public static func withCNumericLocale<T>(_ body: () throws -> T) rethrows -> T {
        guard let c = cNumericLocale else { return try body() }
        let old = uselocale(c)
        defer { uselocale(old) }
        return try body()
    }

    nonisolated(unsafe) private static let cNumericLocale: locale_t? = newlocale(Int32(1 << LC_NUMERIC), "C", nil)
}
