import Foundation

extension Layout {
    /// The run id of `collection`'s quarantine-record key (`{P}{collection}/quarantine/{run_id}.json`),
    /// or nil when the key is not one (the inverse of `quarantineKey(collection:runId:)`).
    public func runId(fromQuarantineKey key: String, collection: String) -> String? {
        let prefix = quarantinePrefix(collection)
        guard key.hasPrefix(prefix), key.hasSuffix(".json") else { return nil }
        let id = key.dropFirst(prefix.count).dropLast(5)
        return id.isEmpty || id.contains("/") ? nil : String(id)
    }
}
