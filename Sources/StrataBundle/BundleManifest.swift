import Foundation
import StrataCore

/// `manifest.json` inside `delta.tar.gz` (Docs/FORMATS.md, "Bundle").
public struct BundleManifest: Codable, Sendable, Equatable {
    public static let formatName = "strata-delta-bundle"
    /// The major version this build writes and the newest it reads.
    public static let majorVersion = 1
    public static let fileName = "manifest.json"
    /// The delta's name inside the bundle.
    public static let deltaFileName = "delta.sqlite3"
    /// Every entry a bundle has, in the order Strata writes them.
    public static let entryNames = [deltaFileName, fileName]

    /// A file of the bundle: name, size and lowercase hex SHA-256 (the same record as a
    /// snapshot version's files).
    public typealias File = FileEntry

    public var format: String
    public var formatVersion: Int
    public var runId: String
    public var collection: String
    /// 0 only when the delta has no upserts and its producer did not know the dimension.
    public var dimension: Int
    public var upserts: Int
    public var deletes: Int
    /// Every file of the bundle except the manifest itself.
    public var files: [File]

    enum CodingKeys: String, CodingKey {
        case format
        case formatVersion = "format_version"
        case runId = "run_id"
        case collection, dimension, upserts, deletes, files
    }

    public init(runId: String, collection: String, dimension: Int, upserts: Int, deletes: Int, files: [File]) {
        format = BundleManifest.formatName
        formatVersion = BundleManifest.majorVersion
        self.runId = runId
        self.collection = collection
        self.dimension = dimension
        self.upserts = upserts
        self.deletes = deletes
        self.files = files
    }

    /// Canonical bytes: sorted keys, no whitespace, a final newline. Same manifest, same bytes.
    public func encoded() -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var d = try! e.encode(self)  // a struct of strings and integers always encodes
        d.append(0x0a)
        return d
    }

    /// The file entry for `name`.
    public func file(_ name: String) -> File? { files.first { $0.name == name } }

    /// Decodes and checks a manifest from an untrusted bundle. `bundle` names it in errors.
    public static func decode(_ data: Data, bundle: String) throws -> BundleManifest {
        func bad(_ field: String?, _ message: String) -> BundleError {
            BundleError(
                .badManifest, bundle: bundle, entry: fileName, field: field, message: message,
                fix: "the bundle was not written to Docs/FORMATS.md; produce it again")
        }
        // Read the version first, so a newer format fails as "newer", not as "malformed".
        let head: FormatHeader
        do { head = try JSONDecoder().decode(FormatHeader.self, from: data) } catch {
            throw bad(nil, "is not a JSON object: \(BundleManifest.describe(error))")
        }
        guard head.format == formatName else {
            throw bad("format", head.format == nil ? "is missing" : "is not \"\(formatName)\"")
        }
        guard let version = head.formatVersion else { throw bad("format_version", "is missing") }
        if version > majorVersion {
            throw BundleError(
                .unsupportedVersion, bundle: bundle, entry: fileName, field: "format_version",
                message: "is \(version); this build reads version \(majorVersion) bundles",
                fix: "upgrade Strata on this machine")
        }
        if version < 1 { throw bad("format_version", "is \(version); versions start at 1") }
        let m: BundleManifest
        do { m = try JSONDecoder().decode(BundleManifest.self, from: data) } catch {
            throw bad(nil, "is malformed: \(BundleManifest.describe(error))")
        }
        guard Identifiers.isValid(m.runId) else { throw bad("run_id", "is not a valid run id") }
        do { try Layout.validate(collection: m.collection) } catch { throw bad("collection", "is not a valid name") }
        guard m.dimension >= 0 && m.dimension <= 65536 else { throw bad("dimension", "is out of range") }
        guard m.upserts >= 0, m.deletes >= 0 else { throw bad("upserts", "counts must not be negative") }
        if m.upserts > 0 && m.dimension == 0 { throw bad("dimension", "is 0 but the delta has upserts") }
        guard m.files.count == 1, let f = m.files.first, f.name == deltaFileName else {
            throw bad("files", "must list exactly one file, \"\(deltaFileName)\"")
        }
        guard f.size >= 0 else { throw bad("files[0].size", "is negative") }
        guard f.sha256.utf8.count == 64,
            f.sha256.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
        else { throw bad("files[0].sha256", "is not 64 lowercase hex digits") }
        return m
    }

    /// A decoding error in words (which key, what was wrong), without the document's values.
    static func describe(_ error: Error) -> String {
        guard let e = error as? DecodingError else { return "\(error)" }
        func path(_ c: [CodingKey]) -> String {
            c.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch e {
        case .keyNotFound(let k, let ctx):
            return "missing key \"\(path(ctx.codingPath + [k]))\""
        case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx):
            return "wrong type at \"\(path(ctx.codingPath))\""
        case .dataCorrupted(let ctx):
            return ctx.codingPath.isEmpty ? "not valid JSON" : "bad value at \"\(path(ctx.codingPath))\""
        @unknown default:
            return "\(e)"
        }
    }
}

/// A bundle that cannot be written or is refused on extraction. `reason` says which check failed;
/// the message says what was found, and `fix` what to do.
public struct BundleError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Reason: String, Sendable {
        /// The file is empty.
        case empty
        /// The file is not gzip.
        case notGzip
        /// The gzip stream ends early.
        case truncated
        /// The gzip or tar data is damaged (bad CRC or length, bad deflate data, bad tar header).
        case corrupt
        /// An entry's name starts with "/".
        case absolutePath
        /// An entry's name has a ".." component.
        case pathTraversal
        case symlink
        case hardlink
        /// A directory, device, FIFO, socket or sparse file.
        case notRegularFile
        /// An entry other than manifest.json and delta.sqlite3.
        case unexpectedEntry
        case duplicateEntry
        case missingEntry
        /// One entry is larger than the limit.
        case entryTooLarge
        /// The data expands beyond the total limit or the ratio to the compressed size.
        case expansionLimit
        case badManifest
        case unsupportedVersion
        /// A file's size or SHA-256 differs from the manifest's.
        case checksumMismatch
        /// The manifest names another run or collection than the one expected.
        case wrongRun
        /// The destination directory already exists.
        case destinationExists
        /// Local I/O failed.
        case io
    }

    public var reason: Reason
    /// The bundle's key or path.
    public var bundle: String
    /// The entry concerned, when there is one.
    public var entry: String?
    /// The manifest field concerned, when there is one.
    public var field: String?
    public var message: String
    public var fix: String?

    public init(
        _ reason: Reason, bundle: String, entry: String? = nil, field: String? = nil, message: String,
        fix: String? = nil
    ) {
        self.reason = reason
        self.bundle = bundle
        self.entry = entry
        self.field = field
        self.message = message
        self.fix = fix
    }

    public var description: String { strataError.description }

    /// As a `StrataError`: `.io` for local failures, `.unsupportedVersion`, else `.corrupt`.
    public var strataError: StrataError {
        let kind: StrataError.Kind
        switch reason {
        case .io, .destinationExists: kind = .io
        case .unsupportedVersion: kind = .unsupportedVersion
        default: kind = .corrupt
        }
        var object = "bundle \(bundle)"
        if let entry { object += " entry \(quotedName(entry))" }
        return StrataError(kind, object: object, field: field, message: message, fix: fix)
    }
}

/// A name for a message: quoted, control characters escaped, cut to 200 bytes.
func quotedName(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars.prefix(200) {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case _ where u.value < 0x20 || u.value == 0x7f: out += String(format: "\\u%04x", u.value)
        default: out.unicodeScalars.append(u)
        }
    }
    return out + (s.unicodeScalars.count > 200 ? "...\"" : "\"")
}
