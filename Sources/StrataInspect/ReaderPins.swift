import Foundation
import StrataCore

/// Reader pins (SPEC invariant 14): `snapctl pin`, and `pull`/`query` while they download. A pin
/// names a version; garbage collection keeps that version and every object it references until
/// the pin expires. Pins are plain objects, written with `If-None-Match: *` (never overwritten).
public struct ReaderPins {
    public let store: any ObjectStore
    public let layout: Layout

    public init(store: any ObjectStore, layout: Layout) {
        self.store = store
        self.layout = layout
    }

    /// A pin that could not be read: its key and the error.
    public struct Unreadable: Sendable, Equatable {
        public var key: String
        public var problem: String
    }

    /// Pins `collection`'s `version` (which must have a manifest) for `ttl` seconds.
    @discardableResult
    public func pin(
        _ collection: String, version: String, ttl: TimeInterval, owner: String? = nil,
        reason: String? = nil, now: Date = Date()
    ) throws -> PinRecord {
        guard ttl > 0 else {
            throw StrataError(
                .invalidInput, object: "pin of \(collection)/\(version)", field: "ttl",
                message: "is \(ttl) s; a pin needs a positive lifetime", fix: "pass --ttl 1h")
        }
        _ = try SnapshotManifest.fetch(from: store, layout: layout, collection: collection, version: version)
        let record = PinRecord(
            pinId: Identifiers.make(now: now), collection: collection, version: version, createdAt: now,
            expiresAt: now.addingTimeInterval(ttl), owner: owner ?? ReaderPins.defaultOwner, reason: reason)
        let key = layout.pinKey(collection: collection, pinId: record.pinId)
        _ = try store.put(key, data: try StrataJSON.encoder().encode(record), condition: .ifNoneMatch)
        return record
    }

    /// Removes a pin; removing one that is gone is not an error.
    public func remove(_ collection: String, pinId: String) throws {
        guard Identifiers.isValid(pinId) else {
            throw StrataError(
                .invalidInput, object: "pin \"\(pinId)\"", field: "pin_id",
                message: "is not a pin id", fix: "list pins with `snapctl pin --list \(collection)`")
        }
        try store.delete(layout.pinKey(collection: collection, pinId: pinId))
    }

    /// Every pin of `collection` (oldest first) and the pin objects that could not be read.
    public func list(_ collection: String) throws -> (pins: [PinRecord], unreadable: [Unreadable]) {
        var pins: [PinRecord] = []
        var bad: [Unreadable] = []
        for o in try store.list(prefix: layout.pinsPrefix(collection)) {
            guard layout.pinId(fromKey: o.key, collection: collection) != nil else { continue }
            guard let (data, _) = try store.getDataIfExists(o.key) else { continue }  // removed meanwhile
            do {
                let p = try PinRecord.decode(data, key: o.key)
                guard p.collection == collection, layout.pinKey(collection: collection, pinId: p.pinId) == o.key else {
                    bad.append(Unreadable(key: o.key, problem: "names \(p.collection)/\(p.pinId), not its own key"))
                    continue
                }
                pins.append(p)
            } catch let e as StrataError {
                bad.append(Unreadable(key: o.key, problem: e.description))
            }
        }
        return (pins.sorted { $0.pinId < $1.pinId }, bad)
    }

    public static var defaultOwner: String {
        "\(ProcessInfo.processInfo.hostName):\(getpid())"
    }
}
