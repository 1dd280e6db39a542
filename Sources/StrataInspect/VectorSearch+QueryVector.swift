import Foundation
import StrataCore
import StrataDelta

extension VectorSearch {
    /// Reads a query vector from JSON: an array of numbers (`[0.1, -2, 3e-3]`), or an object with
    /// an `embedding` array, so a line of producer input works as is. Values must be finite
    /// float32; `source` names the input in errors (a file name, "stdin").
    public static func parseQueryVector(_ data: Data, source: String) throws -> [Float] {
        var bytes = [UInt8](data)
        let n = bytes.count
        bytes.append(0)  // the scanner NUL-terminates numbers in place
        do {
            return try JSONScanner.withCNumericLocale {
                try bytes.withUnsafeMutableBufferPointer { buf -> [Float] in
                    var s = JSONScanner(base: buf.baseAddress!, count: n)
                    var out: [Float] = []
                    var scratch: [UInt8] = []
                    s.skipWhitespace()
                    if s.peek() == UInt8(ascii: "{") {
                        _ = s.consume(UInt8(ascii: "{"))
                        var found = false
                        if !s.consume(UInt8(ascii: "}")) {
                            while true {
                                scratch.removeAll(keepingCapacity: true)
                                let key = try s.parseString(field: "vector", scratch: &scratch)
                                guard s.consume(UInt8(ascii: ":")) else {
                                    throw s.problem("vector", "expected ':' after \"\(key)\"")
                                }
                                if key == "embedding" {
                                    try s.parseFloatArray(field: "embedding", into: &out)
                                    found = true
                                } else {
                                    try s.skipValue()
                                }
                                if s.consume(UInt8(ascii: ",")) { continue }
                                guard s.consume(UInt8(ascii: "}")) else {
                                    throw s.problem("vector", "expected , or } in the object")
                                }
                                break
                            }
                        }
                        guard found else {
                            throw s.problem(
                                "vector", "is an object without an \"embedding\" array",
                                fix: "pass a JSON array of numbers, or {\"embedding\": [...]}")
                        }
                    } else if s.peek() == UInt8(ascii: "[") {
                        try s.parseFloatArray(field: "vector", into: &out)
                    } else {
                        throw s.problem(
                            "vector", s.atEnd ? "is empty" : "is not a JSON array of numbers",
                            fix: "write the vector as a JSON array, e.g. [0.12, -0.5, 3e-3]")
                    }
                    s.skipWhitespace()
                    guard s.atEnd else {
                        throw s.problem("vector", "has text after the JSON value", fix: "give exactly one vector")
                    }
                    guard !out.isEmpty else {
                        throw s.problem("vector", "has no values", fix: "give one number per dimension")
                    }
                    return out
                }
            }
        } catch let p as FieldProblem {
            throw p.strataError(object: source)
        }
    }
}
