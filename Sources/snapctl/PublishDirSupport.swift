import Foundation
import Logging
import StrataCompactor
import StrataCore
import StrataInspect

/// `--publish-dir DIR` of `compact` and `compactor`: after a round, DIR holds the pointer's
/// version materialized (through the reader cache: the version's new patches when the previous
/// one is cached), so a round that crashed between publishing and writing DIR is caught up by the
/// next one, even when that one has nothing to compact.
struct PublishDirSupport {
    let directory: PublishDirectory
    let cache: ReaderCache

    init?(options: CompactorOptions, store: any ObjectStore, layout: Layout, environment: [String: String]) throws {
        guard let dir = options.publishDir else { return nil }
        directory = PublishDirectory(root: dir, keep: options.publishKeep)
        var settings = try ReaderCacheSettings.fromEnvironment(environment)
        if let c = options.cacheDir { settings.directory = c }
        cache = ReaderCache(store: store, layout: layout, settings: settings, pinTTL: nil)
    }

    /// Writes the version the round left (published, or the one already current) unless DIR has it.
    func sync(_ s: CompactionSummary, logger: Logger) throws {
        guard let v = s.newVersion ?? s.baseVersion else { return }
        if (try? directory.latest(s.collection)) == v,
            FileManager.default.fileExists(atPath: directory.snapshotPath(s.collection, version: v))
        {
            return
        }
        let cached = try cache.open(s.collection, version: v)
        defer { cached.close() }
        try directory.publish(cached.manifest, file: cached.path)
        logger.info(
            "published to the shared directory",
            metadata: [
                "collection": "\(s.collection)", "version": "\(v)",
                "path": "\(directory.snapshotPath(s.collection, version: v))",
                "downloaded_bytes": "\(cached.downloadedBytes)",
            ])
    }
}
