import Foundation

/// The one place that builds object keys (../shared/SPEC.md, "Object layout"). Nothing else
/// formats a key by hand.
public struct Layout: Sendable, Equatable {
    /// Empty, or ends in "/".
    public let prefix: String

    public init(prefix: String = "") {
        if prefix.isEmpty || prefix.hasSuffix("/") {
            self.prefix = prefix
        } else {
            self.prefix = prefix + "/"
        }
    }

    public static let pointerFileName = "latest-pointer.txt"
    public static let manifestFileName = "manifest.json"
    public static let deltaFileName = "delta.tar.gz"
    /// Reserved for the conditional-write probe's scratch objects.
    public static let probeDirectory = ".strata-probe"

    // MARK: collections

    /// Throws unless `name` is 1 to 63 characters of `a-z 0-9 _ -`.
    public static func validate(collection name: String) throws {
        let ok =
            !name.isEmpty && name.utf8.count <= 63
            && name.utf8.allSatisfy {
                ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f || $0 == 0x2d
            }
        // "runs" is where COMPACTION_RUN records live, so it cannot also be a collection.
        guard ok, name != "runs" else {
            throw StrataError(
                .invalidInput, object: "collection name \"\(name)\"", field: "collection",
                message: "must be 1 to 63 characters of a-z, 0-9, _ and -, and not \"runs\"",
                fix: "use a name like \"lines\" or \"words\"")
        }
    }

    public func collectionPrefix(_ collection: String) -> String { "\(prefix)\(collection)/" }

    // MARK: deltas

    public func deltasPrefix(_ collection: String) -> String { "\(prefix)\(collection)/delta/" }
    public func deltaKey(collection: String, runId: String) -> String {
        "\(deltasPrefix(collection))\(runId)/\(Layout.deltaFileName)"
    }

    // MARK: snapshots

    public func snapshotPrefix(_ collection: String) -> String { "\(prefix)\(collection)/snapshot/" }
    public func versionsPrefix(_ collection: String) -> String { "\(snapshotPrefix(collection))timestamped/" }
    public func versionPrefix(collection: String, version: String) -> String {
        "\(versionsPrefix(collection))\(version)/"
    }
    public func versionFileKey(collection: String, version: String, file: String) -> String {
        "\(versionPrefix(collection: collection, version: version))\(file)"
    }
    public func manifestKey(collection: String, version: String) -> String {
        versionFileKey(collection: collection, version: version, file: Layout.manifestFileName)
    }
    public func pointerKey(_ collection: String) -> String { "\(snapshotPrefix(collection))\(Layout.pointerFileName)" }
    public func leaseKey(_ collection: String) -> String { "\(snapshotPrefix(collection))lease.json" }

    // MARK: runs and quarantine

    public var runsPrefix: String { "\(prefix)runs/" }
    public func runRecordKey(_ runId: String) -> String { "\(runsPrefix)\(runId).json" }
    /// The run id of a run-record key, or nil when the key is not one.
    public func runId(fromRecordKey key: String) -> String? {
        guard key.hasPrefix(runsPrefix), key.hasSuffix(".json") else { return nil }
        let id = key.dropFirst(runsPrefix.count).dropLast(5)
        return id.isEmpty || id.contains("/") ? nil : String(id)
    }
    public func quarantinePrefix(_ collection: String) -> String { "\(prefix)\(collection)/quarantine/" }
    public func quarantineKey(collection: String, runId: String) -> String {
        "\(quarantinePrefix(collection))\(runId).json"
    }

    public var probePrefix: String { "\(prefix)\(Layout.probeDirectory)/" }
}
