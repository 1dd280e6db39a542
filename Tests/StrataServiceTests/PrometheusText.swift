import Foundation

/// A strict parser of the Prometheus text exposition format (0.0.4), so a malformed line fails the
/// test instead of being skipped: metric and label names, quoted and escaped label values, float
/// values (+Inf, -Inf, NaN), one TYPE per family before its samples, histogram buckets cumulative
/// with `_count` equal to the `+Inf` bucket.
struct PrometheusText {
    struct Sample: Equatable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    struct ParseError: Error, CustomStringConvertible {
        var line: Int
        var text: String
        var why: String
        var description: String { "line \(line) \"\(text)\": \(why)" }
    }

    var samples: [Sample] = []
    var types: [String: String] = [:]

    static func isName(_ s: Substring, allowColon: Bool = true) -> Bool {
        guard let f = s.first, f.isASCII, f.isLetter || f == "_" || (allowColon && f == ":") else { return false }
        return s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || (allowColon && $0 == ":")) }
    }

    static func parseValue(_ s: Substring) -> Double? {
        switch s {
        case "+Inf", "Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default: return Double(s)
        }
    }

    init(_ text: String) throws {
        var seen = Set<String>()
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let n = i + 1
            func fail(_ why: String) -> ParseError { ParseError(line: n, text: String(raw), why: why) }
            if raw.isEmpty { continue }
            if raw.hasPrefix("#") {
                let parts = raw.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
                guard parts.count >= 3, parts[0] == "#" else { continue }  // a comment
                if parts[1] == "TYPE" {
                    guard parts.count == 4, Self.isName(parts[2]) else { throw fail("bad TYPE line") }
                    guard ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3]) else {
                        throw fail("unknown type \(parts[3])")
                    }
                    guard types[String(parts[2])] == nil else { throw fail("second TYPE for \(parts[2])") }
                    guard !seen.contains(String(parts[2])) else { throw fail("TYPE after samples of \(parts[2])") }
                    types[String(parts[2])] = String(parts[3])
                } else if parts[1] == "HELP" {
                    guard Self.isName(parts[2]) else { throw fail("bad HELP line") }
                }
                continue
            }
            var rest = Substring(raw)
            let nameEnd = rest.firstIndex { $0 == "{" || $0 == " " } ?? rest.endIndex
            let name = rest[..<nameEnd]
            guard Self.isName(name) else { throw fail("bad metric name") }
            rest = rest[nameEnd...]
            var labels: [String: String] = [:]
            if rest.first == "{" {
                rest = rest.dropFirst()
                while rest.first != "}" {
                    guard let eq = rest.firstIndex(of: "=") else { throw fail("label without =") }
                    let lname = rest[..<eq]
                    guard Self.isName(lname, allowColon: false) else { throw fail("bad label name \(lname)") }
                    rest = rest[rest.index(after: eq)...]
                    guard rest.first == "\"" else { throw fail("label value not quoted") }
                    rest = rest.dropFirst()
                    var value = ""
                    var closed = false
                    while let c = rest.first {
                        rest = rest.dropFirst()
                        if c == "\\" {
                            guard let e = rest.first else { throw fail("dangling escape") }
                            rest = rest.dropFirst()
                            switch e {
                            case "\\": value.append("\\")
                            case "\"": value.append("\"")
                            case "n": value.append("\n")
                            default: throw fail("bad escape \\\(e)")
                            }
                        } else if c == "\"" {
                            closed = true
                            break
                        } else {
                            value.append(c)
                        }
                    }
                    guard closed else { throw fail("unterminated label value") }
                    guard labels.updateValue(value, forKey: String(lname)) == nil else {
                        throw fail("label \(lname) twice")
                    }
                    if rest.first == "," {
                        rest = rest.dropFirst()
                    } else if rest.first != "}" {
                        throw fail("expected , or }")
                    }
                }
                rest = rest.dropFirst()
            }
            guard rest.first == " " else { throw fail("no space before the value") }
            let fields = rest.dropFirst().split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count == 1 || fields.count == 2, let v = Self.parseValue(fields[0]) else {
                throw fail("bad value")
            }
            if fields.count == 2, Int64(fields[1]) == nil { throw fail("bad timestamp") }
            let family = Self.family(of: String(name), types: types)
            seen.insert(family)
            samples.append(Sample(name: String(name), labels: labels, value: v))
        }
        try checkHistograms()
    }

    static func family(of name: String, types: [String: String]) -> String {
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if types[base] == "histogram" || types[base] == "summary" { return base }
        }
        return name
    }

    func checkHistograms() throws {
        for (family, type) in types where type == "histogram" {
            var series: [[String: String]: [(Double, Double)]] = [:]
            for s in samples where s.name == family + "_bucket" {
                guard let le = s.labels["le"], let bound = Self.parseValue(Substring(le)) else {
                    throw ParseError(line: 0, text: family, why: "bucket without a numeric le")
                }
                var key = s.labels
                key["le"] = nil
                series[key, default: []].append((bound, s.value))
            }
            for (key, buckets) in series {
                let sorted = buckets.sorted { $0.0 < $1.0 }
                guard sorted.last?.0 == .infinity else {
                    throw ParseError(line: 0, text: family, why: "no +Inf bucket for \(key)")
                }
                for (a, b) in zip(sorted, sorted.dropFirst()) where b.1 < a.1 {
                    throw ParseError(line: 0, text: family, why: "buckets not cumulative for \(key)")
                }
                let count = samples.first { $0.name == family + "_count" && $0.labels == key }?.value
                guard count == sorted.last?.1 else {
                    throw ParseError(line: 0, text: family, why: "_count \(String(describing: count)) != +Inf bucket")
                }
            }
        }
    }

    /// The value of one series (labels must match exactly), or nil when absent.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }

    /// The sum over every series of `name` whose labels include `matching`.
    func sum(_ name: String, matching: [String: String] = [:]) -> Double {
        samples.filter { s in s.name == name && matching.allSatisfy { s.labels[$0.key] == $0.value } }
            .reduce(0) { $0 + $1.value }
    }
}
