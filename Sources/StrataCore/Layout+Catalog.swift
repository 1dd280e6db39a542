import Foundation

/// Key parsers of the run catalog, next to the builders they invert (`runRecordKey`,
/// `quarantineKey`, `deltaKey`): nothing else takes a run id out of a key by hand.
extension Layout {
    /// An object under `collection`'s delta directory (`{P}{collection}/delta/{run_id}/...`): the
    /// run id its first path segment names, and whether the key is that run's delta
    /// (`deltaKey(collection:runId:)`) rather than some other object. Nil for keys outside it.
    public func deltaObject(_ key: String, collection: String) -> (runId: String, isDelta: Bool)? {
        let prefix = deltasPrefix(collection)
        guard key.hasPrefix(prefix) else { return nil }
        let rest = key.dropFirst(prefix.count)
        guard let slash = rest.firstIndex(of: "/"), slash != rest.startIndex else { return nil }
        let runId = String(rest[..<slash])
        return (runId, key == deltaKey(collection: collection, runId: runId))
    }

    /// The version directory an object under `collection`'s versions prefix belongs to
    /// (`{P}{collection}/snapshot/timestamped/{version}/...`), or nil for keys outside it.
    public func version(ofVersionObject key: String, collection: String) -> String? {
        let prefix = versionsPrefix(collection)
        guard key.hasPrefix(prefix) else { return nil }
        let rest = key.dropFirst(prefix.count)
        guard let slash = rest.firstIndex(of: "/"), slash != rest.startIndex else { return nil }
        return String(rest[..<slash])
    }

    /// The collection a pointer key names (`{P}{collection}/snapshot/latest-pointer.txt`, whatever
    /// the prefix), or nil when the key is not a pointer key.
    public static func collection(ofPointerKey key: String) -> String? {
        let tail = "/snapshot/" + Layout.pointerFileName
        guard key.hasSuffix(tail) else { return nil }
        let name = key.dropLast(tail.count).split(separator: "/", omittingEmptySubsequences: false).last.map(
            String.init)
        return name.flatMap { (try? Layout.validate(collection: $0)) != nil ? $0 : nil }
    }
}
