import Foundation
import StrataCore

extension RunProducer {
    /// Publishes rows held in memory (one array per collection) as one job, exactly as NDJSON
    /// files would be (Docs/FORMATS.md): they are written to the work directory as NDJSON and
    /// validated, embedded (text-only rows, with `settings.embedding`), bundled and published the
    /// same way. Pass the `runId` of an interrupted attempt to retry it safely.
    public func produce(
        rows: [String: [ProducerRow]], dimensions: [String: Int] = [:], labels: [String: String] = [:],
        runId: String? = nil
    ) throws -> [PublishedRun] {
        let base = runId ?? Identifiers.make()
        let dir = try makeWorkDirectory(base + "-rows")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var inputs: [ProducerInput] = []
        for (collection, list) in rows.sorted(by: { $0.key < $1.key }) {
            try Layout.validate(collection: collection)
            let path = dir + "/" + collection + ".ndjson"
            try RunProducer.writeNDJSON(list, to: path)
            inputs.append(ProducerInput(collection: collection, path: path, dimension: dimensions[collection]))
        }
        return try produce(inputs: inputs, labels: labels, runId: base)
    }

    /// Writes rows as NDJSON, one line each.
    static func writeNDJSON(_ rows: [ProducerRow], to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil),
            let fh = FileHandle(forWritingAtPath: path)
        else {
            throw StrataError(.io, object: path, message: "cannot create the file", fix: "check the work directory")
        }
        defer { try? fh.close() }
        let enc = JSONEncoder()
        func quoted(_ s: String) throws -> String { String(decoding: try enc.encode(s), as: UTF8.self) }
        var out = ""
        for r in rows {
            var line = "{\"id\":\(try quoted(r.id))"
            if r.delete {
                line += ",\"delete\":true"
            } else {
                if let e = r.embedding { line += ",\"embedding\":[" + e.map { "\($0)" }.joined(separator: ",") + "]" }
                if let d = r.document { line += ",\"document\":\(try quoted(d))" }
                if let t = r.embedText { line += ",\"embed_text\":\(try quoted(t))" }
                if let m = r.metadata { line += ",\"metadata\":" + m.replacingOccurrences(of: "\n", with: " ") }
            }
            out += line + "}\n"
            if out.utf8.count >= 1 << 20 {
                fh.write(Data(out.utf8))
                out = ""
            }
        }
        fh.write(Data(out.utf8))
    }
}
