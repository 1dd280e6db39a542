import ArgumentParser
import Foundation
import StrataCore
import StrataInspect

/// How `query`, `get` and `pull` find a version: through the reader cache (default), or in a
/// shared directory the compactor writes (`--publish-dir`, no store needed).
struct ReaderOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Read the version the compactor published to this shared directory (no store).",
            valueName: "dir"))
    var publishDir: String?
    @Flag(help: "Do not pin the version while downloading it.") var noPin = false

    /// Pins taken while a reader downloads last this long at most (removed when the download ends).
    static let readPinTTL: TimeInterval = 3600

    func cache(store: any ObjectStore, layout: Layout, environment: [String: String]) throws -> ReaderCache {
        let cache = ReaderCache(
            store: store, layout: layout, settings: try ReaderCacheSettings.fromEnvironment(environment),
            pinTTL: noPin ? nil : ReaderOptions.readPinTTL)
        cache.warn = { FileHandle.standardError.write(Data("snapctl: warning: \($0)\n".utf8)) }
        return cache
    }

    /// Opens the version; keep `cached` alive while reading.
    func open(_ collection: String, version: String?, global: GlobalOptions, json: Bool) throws
        -> (reader: SnapshotReader, snapshot: LocatedSnapshot, cached: CachedVersion?)
    {
        if let publishDir {
            let (reader, snapshot) = try SnapshotReader.open(
                collection, version: version,
                directory: PublishDirectory(root: publishDir))
            return (reader, snapshot, nil)
        }
        let (store, layout, _) = try global.openStore()
        let cache = try cache(store: store, layout: layout, environment: global.environment)
        let (reader, cached) = try Progress.run("reading \(collection)", total: nil, json: json) {
            try SnapshotReader.open(collection, version: version, cache: cache)
        }
        return (reader, cached.located, cached)
    }
}
