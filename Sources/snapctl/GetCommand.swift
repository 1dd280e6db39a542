import ArgumentParser
import Foundation
import StrataCore
import StrataInspect

struct GetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Print rows of a collection's snapshot by id.",
        discussion: """
            Reads the pointer's version (or --version) through the reader cache (like query;
            --publish-dir DIR for the compactor's shared directory), and prints each id's document
            and metadata (and its embedding with --embedding).

            Exit status: 0 when every id was found, 1 when any is missing (they are listed on
            stderr, or under "missing" with --json) or the snapshot cannot be read, 2 for usage
            errors.
            Examples:
              snapctl get lines img-7/line-3
              snapctl get lines a b c --json --embedding --version 20250101T120000123Z-4f2a9c
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var source: ReaderOptions
    @Argument(help: "Collection.") var collection: String
    @Argument(help: "Ids to print.") var ids: [String] = []
    @Option(help: "Version to read (default: the one the pointer names).") var version: String?
    @Flag(help: "Print the rows as JSON.") var json = false
    @Flag(help: "Include the embeddings.") var embedding = false

    func run() throws {
        try runReportingErrors {
            do { try Layout.validate(collection: collection) } catch { throw CLIError.usage(String(describing: error)) }
            guard !ids.isEmpty else {
                throw CLIError.usage("get needs at least one id: snapctl get \(collection) ID...")
            }
            let (reader, snapshot, cached) = try source.open(collection, version: version, global: global, json: json)
            defer { cached?.close() }
            let found = try reader.rows(ids: ids)
            let foundIds = Set(found.map(\.id))
            var seen = Set<String>()
            let missing = ids.filter { !foundIds.contains($0) && seen.insert($0).inserted }
            if json {
                let obj: [String: Any] = [
                    "collection": collection, "version": snapshot.version, "dimension": reader.dimension,
                    "rows": found.map(jsonRow), "missing": missing,
                ]
                print(jsonLine(obj, pretty: true))
            } else {
                for (i, r) in found.enumerated() {
                    if i > 0 { print("") }
                    printRow(r)
                }
            }
            if !missing.isEmpty {
                let list = missing.map { "\"\($0)\"" }.joined(separator: ", ")
                FileHandle.standardError.write(
                    Data(
                        "snapctl: not in \(collection) (version \(snapshot.version)): \(list)\n".utf8))
                throw ExitCode(ExitCodes.failure)
            }
        }
    }

    func jsonRow(_ r: SnapshotRow) -> [String: Any] {
        var o: [String: Any] = [
            "id": r.id, "document": r.document ?? NSNull(),
            "metadata": r.metadata.map(jsonMetadata) ?? NSNull(),
        ]
        if embedding { o["embedding"] = r.embedding.map(jsonNumber) }
        return o
    }

    func printRow(_ r: SnapshotRow) {
        print("id         \(r.id)")
        let doc = r.document.map { $0.replacingOccurrences(of: "\n", with: "\n           ") } ?? "(none)"
        print("document   \(doc)")
        print("metadata   \(r.metadata ?? "(none)")")
        if embedding {
            let values = r.embedding.map { String(describing: $0) }.joined(separator: ", ")
            print("embedding  [\(values)]  (\(r.embedding.count) values)")
        }
    }
}
