import ArgumentParser
import Foundation
import StrataCore
import StrataInspect

struct PullCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Write a version as a plain SQLite file any client opens.",
        discussion: """
            Materializes the pointer's version (or VERSION) through the reader cache
            ($STRATA_CACHE_DIR, default ~/.cache/strata; bound: $STRATA_CACHE_MAX_BYTES, default 8G):
            a cached version costs the pointer and the manifest; a version after a cached one
            downloads only its new patches; otherwise the base and every patch. Every object is
            checked against the manifest (size, SHA-256) and the result against its page root.
            The version is pinned while it downloads (--no-pin: not). The file is written to
            FILE.partial and renamed. --publish-dir DIR copies the compactor's shared-directory
            file instead, with no store.
            Exit status: 0 written, 1 failed, 2 usage.
            Examples:
              snapctl pull lines --to lines.sqlite3 && sqlite3 lines.sqlite3 'select count(*) from embeddings'
              snapctl pull lines 20261121T204743355Z-39f9a720b193 --to old.sqlite3 --json
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var source: ReaderOptions
    @Argument(help: "Collection.") var collection: String
    @Argument(help: "Version (default: the one the pointer names).") var version: String?
    @Option(help: ArgumentHelp("Where to write the SQLite file.", valueName: "file")) var to: String
    @Flag(help: "Print what was done as JSON.") var json = false

    func run() throws {
        try runReportingErrors {
            do { try Layout.validate(collection: collection) } catch { throw CLIError.usage(String(describing: error)) }
            if let version, !Identifiers.isValid(version) { throw CLIError.usage("\(version) is not a version id") }
            let path: String
            let m: SnapshotManifest
            var cached: CachedVersion? = nil
            defer { cached?.close() }
            if let dir = source.publishDir {
                let found = try PublishDirectory(root: dir).locate(collection, version: version)
                (path, m) = (found.path, found.manifest)
            } else {
                let (store, layout, _) = try global.openStore()
                let cache = try source.cache(store: store, layout: layout, environment: global.environment)
                let c = try Progress.run("pulling \(collection)", total: nil, json: json) {
                    try cache.open(collection, version: version)
                }
                cached = c
                (path, m) = (c.path, c.manifest)
            }
            let partial = to + ".partial"
            unlink(partial)
            do { try FileManager.default.copyItem(atPath: path, toPath: partial) } catch {
                unlink(partial)
                throw StrataError(
                    .io, object: to, message: "cannot write it: \(error)", fix: "check the path and free space")
            }
            guard rename(partial, to) == 0 else {
                let e = String(cString: strerror(errno))
                unlink(partial)
                throw StrataError(.io, object: to, message: "cannot rename \(partial) to it: \(e)")
            }
            let obj: [String: Any] = [
                "collection": collection, "version": m.version, "to": to, "bytes": m.materializedSize,
                "rows": m.rowCount, "layout": m.isPageVersion ? "pages" : "file",
                "patches": (m.patches ?? []).count, "source": cached?.source ?? "directory",
                "downloadedBytes": cached?.downloadedBytes ?? 0, "downloadedObjects": cached?.downloadedObjects ?? 0,
            ]
            if json {
                print(jsonLine(obj, pretty: true))
            } else {
                print(
                    "\(collection) \(m.version): \(m.rowCount) rows, \(m.materializedSize) bytes -> \(to) "
                        + "(\(cached?.source ?? "directory"); downloaded \(cached?.downloadedBytes ?? 0) bytes in "
                        + "\(cached?.downloadedObjects ?? 0) objects)")
            }
        }
    }
}
