import ArgumentParser
import Foundation
import StrataCore
import StrataEmbed
import StrataInspect

struct QueryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Exact nearest neighbours of an id or a vector in a collection's snapshot.",
        discussion: """
            Checks that a published snapshot answers: reads the pointer's version (or --version)
            through the reader cache ($STRATA_CACHE_DIR, default ~/.cache/strata; verified against
            its manifest; a cached version costs the pointer and the manifest, a newer one only
            its new patches), and scores every row (an exact scan, not an index). The version is
            pinned while it downloads (--no-pin: not). --publish-dir DIR reads the file the
            compactor published there, with no store.

            The query is an id's own embedding (--id; the id itself is left out of the results) or
            a JSON array of numbers (--vector FILE, or - for stdin; {"embedding": [...]} works too).
            Metrics: cosine similarity and ip (inner product), higher is nearer; l2 (Euclidean
            distance), lower is nearer. Ties are broken by id.

            --where key=value keeps rows whose metadata has that value; repeat it for AND. Strings
            compare as text, numbers by value (receipt_id=1 matches 1 and 1.0), true and false as
            booleans; a value in double quotes matches strings only (--where 'code="1"').

            --text "..." embeds the query through the same OpenAI-compatible endpoint as \
            `produce --embed` (OPENAI_BASE_URL or --embed-url, OPENAI_API_KEY, --embed-model); \
            e5-style models want --embed-input-types passage,query (the query's input_type is \
            the second).

            Exit status: 0 with results (or none), 1 when the id is unknown, the vector does not
            fit the collection or the snapshot cannot be read, 2 for usage errors.
            Examples:
              snapctl query lines --id img-7/line-3 -k 5
              snapctl query lines --vector q.json --metric l2 --where image_id=abc --where has_price=true
              echo '[0.12, -0.5, 0.003]' | snapctl query lines --vector - --json
              snapctl query lines --text "coffee" --embed-input-types passage,query
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var source: ReaderOptions
    @Argument(help: "Collection.") var collection: String
    @Option(help: "Query with this id's embedding.") var id: String?
    @Option(help: ArgumentHelp("JSON file holding the query vector, or - for stdin.", valueName: "file"))
    var vector: String?
    @Option(help: ArgumentHelp("Embed this text as the query (see --embed-url).", valueName: "text"))
    var text: String?
    @OptionGroup var embedding: EmbedOptions
    @Option(name: [.customShort("k"), .long], help: "Number of results.") var k: Int = 10
    @Option(help: "cosine, ip or l2.") var metric: String = "cosine"
    @Option(
        name: .customLong("where"),
        help: ArgumentHelp(
            "Metadata condition key=value (repeatable, AND).",
            valueName: "key=value"))
    var conditions: [String] = []
    @Option(help: "Version to query (default: the one the pointer names).") var version: String?
    @Flag(help: "Print the results as JSON.") var json = false

    func run() throws {
        try runReportingErrors {
            var request = try parseRequest()
            if let text, let settings = try embedding.settings(required: true) {
                let client = try EmbeddingClient(settings: settings)
                request.vector = try client.embed([text], inputType: settings.queryInputType).vectors[0]
            }
            let (reader, snapshot, cached) = try source.open(collection, version: version, global: global, json: json)
            defer { cached?.close() }
            let query: [Float]
            var excluding: [String] = []
            if let id {
                guard let row = try reader.row(id: id) else {
                    throw StrataError(
                        .notFound, object: "id \"\(id)\"",
                        message: "is not in collection \(collection) (version \(snapshot.version))",
                        fix: "check the id with `snapctl get \(collection) \(id)`")
                }
                query = row.embedding
                excluding = [id]
            } else {
                query = request.vector!
            }
            try VectorSearch.validate(
                query: query, dimension: reader.dimension, metric: request.metric,
                object: id.map { "the embedding of id \"\($0)\"" }
                    ?? (text != nil
                        ? "the embedding of --text (model \(try embedding.settings(required: true)!.model))"
                        : "query vector \(vector!)"))
            let started = DispatchTime.now().uptimeNanoseconds
            let result = try VectorSearch.search(
                reader, query: query, metric: request.metric, k: k,
                filter: request.filter, excluding: excluding)
            let ms = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6
            var rows: [String: SnapshotRow] = [:]
            for r in try reader.rows(ids: result.hits.map(\.id)) { rows[r.id] = r }
            if json {
                printJSON(result, rows: rows, snapshot: snapshot, metric: request.metric, ms: ms)
            } else {
                printTable(
                    result, rows: rows, snapshot: snapshot, metric: request.metric, filter: request.filter, ms: ms)
            }
        }
    }

    struct Request {
        var metric: VectorMetric
        var filter: MetadataFilter
        var vector: [Float]?
    }

    /// Everything that can be checked before downloading anything.
    func parseRequest() throws -> Request {
        do { try Layout.validate(collection: collection) } catch { throw CLIError.usage(String(describing: error)) }
        guard [id != nil, vector != nil, text != nil].filter({ $0 }).count == 1 else {
            throw CLIError.usage("query needs exactly one of --id ID, --vector FILE and --text TEXT")
        }
        if let text, text.isEmpty { throw CLIError.usage("--text: must not be empty") }
        guard let m = VectorMetric(rawValue: metric.lowercased()) else {
            throw CLIError.usage("--metric \(metric): expected cosine, ip or l2")
        }
        guard k >= 1 else { throw CLIError.usage("-k \(k): ask for at least 1 result") }
        let filter: MetadataFilter
        do { filter = try MetadataFilter(parsing: conditions) } catch {
            throw CLIError.usage(String(describing: error))
        }
        var v: [Float]? = nil
        if let vector {
            let data: Data
            if vector == "-" {
                data = FileHandle.standardInput.readDataToEndOfFile()
            } else {
                guard let d = FileManager.default.contents(atPath: vector) else {
                    throw CLIError.usage("--vector \(vector): no such file, or not readable")
                }
                data = d
            }
            v = try VectorSearch.parseQueryVector(
                data, source: vector == "-" ? "query vector (stdin)" : "query vector \(vector)")
            try VectorSearch.validate(query: v!, dimension: v!.count, metric: m)
        }
        return Request(metric: m, filter: filter, vector: v)
    }

    func printTable(
        _ result: VectorSearchResult, rows: [String: SnapshotRow], snapshot: LocatedSnapshot,
        metric: VectorMetric, filter: MetadataFilter, ms: Double
    ) {
        let from = snapshot.pointerETag == nil ? "" : " (pointer)"
        var header = "\(collection) @ \(snapshot.version)\(from): \(result.scanned) rows"
        if !filter.isEmpty { header += ", \(result.matched) where \(filter)" }
        let nearer = metric.higherIsNearer ? "higher" : "lower"
        header += "; \(metric.rawValue), \(nearer) is nearer; \(String(format: "%.1f", ms)) ms"
        print(header)
        guard !result.hits.isEmpty else {
            print(
                result.matched == 0
                    ? "no rows to rank" + (filter.isEmpty ? "" : ": none matched the --where conditions")
                    : "no results")
            return
        }
        let scores = result.hits.map { formatScore($0.score) }
        let scoreWidth = max(5, scores.map(\.count).max() ?? 0)
        let idWidth = min(40, max(2, result.hits.map { $0.id.count }.max() ?? 0))
        print(
            "rank  " + "score".padding(toLength: scoreWidth, withPad: " ", startingAt: 0) + "  "
                + "id".padding(toLength: idWidth, withPad: " ", startingAt: 0) + "  document")
        for (i, h) in result.hits.enumerated() {
            let doc = rows[h.id]?.document.map { oneLine($0, limit: 60) } ?? "-"
            print(
                String(i + 1).leftPadded(4) + "  " + scores[i].leftPadded(scoreWidth) + "  "
                    + h.id.padding(toLength: max(idWidth, h.id.count), withPad: " ", startingAt: 0) + "  " + doc)
        }
    }

    func printJSON(
        _ result: VectorSearchResult, rows: [String: SnapshotRow], snapshot: LocatedSnapshot,
        metric: VectorMetric, ms: Double
    ) {
        var obj: [String: Any] = [
            "collection": collection, "version": snapshot.version, "metric": metric.rawValue, "k": k,
            "scanned": result.scanned, "matched": result.matched,
            "elapsed_ms": (ms * 1000).rounded() / 1000,
            "where": conditions,
        ]
        obj["query"] = id.map { ["id": $0] } ?? ["vector": vector ?? "-"]
        obj["results"] = result.hits.enumerated().map { i, h -> [String: Any] in
            var r: [String: Any] = ["rank": i + 1, "id": h.id, "score": jsonNumber(h.score)]
            let row = rows[h.id]
            r["document"] = row?.document ?? NSNull()
            r["metadata"] = row?.metadata.map(jsonMetadata) ?? NSNull()
            return r
        }
        print(jsonLine(obj, pretty: true))
    }
}

// MARK: output helpers shared with `get`

/// A float32 as JSON prints it shortest: through its own description, not Double's widening
/// (0.1 as Float would otherwise print as 0.10000000149011612).
func jsonNumber(_ f: Float) -> Double { Double(String(describing: f)) ?? Double(f) }

/// Stored metadata (a JSON object) as an object for output; kept as text if it does not parse.
func jsonMetadata(_ text: String) -> Any {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) ?? text
}

func formatScore(_ s: Float) -> String {
    let a = abs(s)
    return a != 0 && (a >= 1e6 || a < 1e-4) ? String(format: "%.4e", Double(s)) : String(format: "%.6f", Double(s))
}

/// Text on one line, control characters as spaces, cut at `limit` characters with an ellipsis.
func oneLine(_ s: String, limit: Int) -> String {
    var out = ""
    var n = 0
    for ch in s {
        if n == limit {
            out += "…"
            break
        }
        out.append(ch.unicodeScalars.allSatisfy { $0.properties.generalCategory == .control } ? " " : ch)
        n += 1
    }
    return out
}
