import Foundation

/// `{collection}/snapshot/compactor-status.json`: why the last compaction round of a collection
/// failed, so a compactor failing in a container nobody watches shows in `snapctl verify`
/// without its logs. Written best effort (unconditionally, last writer wins) when a round fails;
/// removed by the compactor that next publishes or finds the collection up to date. A status
/// older than the pointer's version is stale and ignored.
public struct CompactorStatus: Codable, Sendable, Equatable {
    public static let formatName = "strata-compactor-status"
    public var format: String = CompactorStatus.formatName
    public var formatVersion: Int = 1
    public var collection: String
    /// `refused` (an invariant stopped it: lost pointer, damaged base, a store without
    /// conditional writes) or `failed` (anything else, e.g. the store kept failing).
    public var state: String
    /// The error's kind (StrataError or StoreError kind), when known.
    public var errorKind: String?
    /// The error in words, with the object it names.
    public var error: String
    /// What to do, when the error says.
    public var fix: String?
    public var at: Date
    public var compactorId: String
    public var host: String

    public init(
        collection: String, state: String, errorKind: String?, error: String, fix: String?, at: Date,
        compactorId: String, host: String
    ) {
        self.collection = collection
        self.state = state
        self.errorKind = errorKind
        self.error = error
        self.fix = fix
        self.at = at
        self.compactorId = compactorId
        self.host = host
    }
}
