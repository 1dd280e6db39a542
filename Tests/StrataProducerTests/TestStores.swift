import Foundation
import StrataCore

/// Rows of NDJSON for tests.
enum Rows {
    static func upsert(_ id: String, _ v: [Float], doc: String? = nil, meta: String? = nil) -> String {
        var s = "{\"id\":\"\(id)\",\"embedding\":[\(v.map { "\($0)" }.joined(separator: ","))]"
        if let doc { s += ",\"document\":\"\(doc)\"" }
        if let meta { s += ",\"metadata\":\(meta)" }
        return s + "}\n"
    }

    static func delete(_ id: String) -> String { "{\"id\":\"\(id)\",\"delete\":true}\n" }
}
