import Foundation

/// Keys of reader pins (SPEC invariant 14; Docs/FORMATS.md "Reader pin"): a pin keeps a version's
/// objects from garbage collection until it expires.
extension Layout {
    public func pinsPrefix(_ collection: String) -> String { "\(snapshotPrefix(collection))pins/" }

    /// `{c}/snapshot/pins/{pin_id}.json`; `pinId` is a valid identifier (`Identifiers.isValid`).
    public func pinKey(collection: String, pinId: String) -> String {
        precondition(Identifiers.isValid(pinId), "a pin id is a safe identifier")
        return "\(pinsPrefix(collection))\(pinId).json"
    }

    /// The pin id a pin key names, or nil for any other key.
    public func pinId(fromKey key: String, collection: String) -> String? {
        let prefix = pinsPrefix(collection)
        guard key.hasPrefix(prefix), key.hasSuffix(".json") else { return nil }
        let id = String(key.dropFirst(prefix.count).dropLast(5))
        return Identifiers.isValid(id) ? id : nil
    }
}

/// `{c}/snapshot/pins/{pin_id}.json`: a reader's claim that it needs `version` until `expiresAt`.
public struct PinRecord: Codable, Sendable, Equatable {
    public static let formatName = "strata-pin"
    public static let currentMajor = 1

    public var format: String
    public var formatVersion: Int
    public var pinId: String
    public var collection: String
    public var version: String
    public var createdAt: Date
    public var expiresAt: Date
    /// Who pinned: `host:pid` of a reader, or what the operator passed.
    public var owner: String
    public var reason: String?

    public init(
        pinId: String, collection: String, version: String, createdAt: Date, expiresAt: Date, owner: String,
        reason: String? = nil
    ) {
        format = PinRecord.formatName
        formatVersion = PinRecord.currentMajor
        self.pinId = pinId
        self.collection = collection
        self.version = version
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.owner = owner
        self.reason = reason
    }

    public func isExpired(at now: Date) -> Bool { expiresAt <= now }

    /// Parses and checks a pin read from `key`: a newer major format is refused.
    public static func decode(_ data: Data, key: String) throws -> PinRecord {
        struct Head: Decodable {
            var format: String?
            var formatVersion: Int?
        }
        let head = try StrataJSON.decode(Head.self, from: data, object: key)
        guard head.format == formatName else {
            throw StrataError(
                .corrupt, object: key, field: "format",
                message: "is \(head.format.map { "\"\($0)\"" } ?? "missing"), expected \"\(formatName)\"",
                fix: "remove it with `snapctl pin --remove` or `snapctl store rm`")
        }
        guard let v = head.formatVersion, v <= currentMajor else {
            throw StrataError(
                .unsupportedVersion, object: key, field: "formatVersion",
                message:
                    "is \(head.formatVersion.map(String.init) ?? "missing"); this Strata reads up to \(currentMajor)",
                fix: "upgrade snapctl to a release that reads pin format \(head.formatVersion ?? 0)")
        }
        return try StrataJSON.decode(PinRecord.self, from: data, object: key)
    }
}
