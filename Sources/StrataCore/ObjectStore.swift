import Foundation

/// What a store knows about one object.
public struct ObjectInfo: Sendable, Equatable {
    public var key: String
    public var size: Int64
    /// The entity tag exactly as the store returned it (quoted for S3). Pass it back verbatim in
    /// `WriteCondition.ifMatch`.
    public var etag: String
    public var lastModified: Date?
    /// Hex SHA-256 of the whole object when the store knows it (recorded by Strata at upload).
    public var sha256: String?

    public init(key: String, size: Int64, etag: String, lastModified: Date? = nil, sha256: String? = nil) {
        self.key = key
        self.size = size
        self.etag = etag
        self.lastModified = lastModified
        self.sha256 = sha256
    }
}

/// The precondition of a write. Failure raises `StoreError` of kind `.preconditionFailed`.
public enum WriteCondition: Sendable, Equatable, CustomStringConvertible {
    /// Unconditional.
    case none
    /// Create only: the key must not exist (`If-None-Match: *`).
    case ifNoneMatch
    /// Replace only the version with this ETag (`If-Match: <etag>`).
    case ifMatch(String)

    public var description: String {
        switch self {
        case .none: return "unconditional"
        case .ifNoneMatch: return "If-None-Match: *"
        case .ifMatch(let etag): return "If-Match: \(etag)"
        }
    }
}

/// Where the bytes of a PUT come from. Files are streamed, never read whole into memory.
public enum PutBody: Sendable {
    case data(Data)
    case file(path: String)
}

public struct PutOptions: Sendable {
    public var contentType: String?
    /// Hex SHA-256 of the body when the caller already knows it (saves the store a pass).
    public var sha256: String?

    public init(contentType: String? = nil, sha256: String? = nil) {
        self.contentType = contentType
        self.sha256 = sha256
    }
}

public struct ListPage: Sendable {
    public var objects: [ObjectInfo]
    /// With a delimiter: the "directories" directly below the prefix, each ending in the delimiter.
    public var commonPrefixes: [String]
    /// Pass to the next `listPage` call; nil on the last page.
    public var continuation: String?

    public init(objects: [ObjectInfo], commonPrefixes: [String], continuation: String?) {
        self.objects = objects
        self.commonPrefixes = commonPrefixes
        self.continuation = continuation
    }
}

/// A key that a batch delete could not remove, and why.
public struct DeleteFailure: Sendable, Equatable {
    public var key: String
    public var code: String
    public var message: String
    public init(key: String, code: String, message: String) {
        self.key = key
        self.code = code
        self.message = message
    }
}

/// The one storage abstraction every protocol component uses. Keys are full keys (the
/// `Layout` adds the prefix); implementations never interpret them beyond that.
///
/// Implementations are thread-safe: a store may be used from several threads at once.
public protocol ObjectStore: AnyObject, Sendable {
    /// A human-readable location without secrets, e.g. `s3://bucket/prefix` or `file:///dir`.
    var location: String { get }

    /// Metadata of `key`, or nil when it does not exist.
    func head(_ key: String) throws -> ObjectInfo?

    /// Download `key` (or `range` of it, half-open) into the file at `path`, replacing it.
    /// When the store knows the object's SHA-256 and the whole object is fetched, it is verified.
    @discardableResult
    func get(_ key: String, toFile path: String, range: Range<Int64>?) throws -> ObjectInfo

    /// Download a small object into memory. Throws `.notFound` when it does not exist.
    func getData(_ key: String) throws -> (data: Data, info: ObjectInfo)

    /// Upload, subject to `condition`. Returns the new object's info (with its ETag).
    @discardableResult
    func put(_ key: String, body: PutBody, condition: WriteCondition, options: PutOptions) throws -> ObjectInfo

    /// Delete one key. Deleting a missing key succeeds (as in S3).
    func delete(_ key: String) throws

    /// Delete many keys; returns the ones that failed. Missing keys count as deleted.
    func delete(keys: [String]) throws -> [DeleteFailure]

    /// One page of keys under `prefix`, in lexicographic (UTF-8 byte) order.
    func listPage(prefix: String, delimiter: String?, continuation: String?, maxKeys: Int) throws -> ListPage
}

extension ObjectStore {
    @discardableResult
    public func get(_ key: String, toFile path: String) throws -> ObjectInfo {
        try get(key, toFile: path, range: nil)
    }

    @discardableResult
    public func put(
        _ key: String, data: Data, condition: WriteCondition = .none,
        options: PutOptions = PutOptions()
    ) throws -> ObjectInfo {
        try put(key, body: .data(data), condition: condition, options: options)
    }

    @discardableResult
    public func put(
        _ key: String, file path: String, condition: WriteCondition = .none,
        options: PutOptions = PutOptions()
    ) throws -> ObjectInfo {
        try put(key, body: .file(path: path), condition: condition, options: options)
    }

    /// Small object or nil when missing.
    public func getDataIfExists(_ key: String) throws -> (data: Data, info: ObjectInfo)? {
        do { return try getData(key) } catch let e as StoreError where e.kind == .notFound { return nil }
    }

    /// Every object under `prefix`, following pagination.
    public func list(prefix: String, pageSize: Int = 1000) throws -> [ObjectInfo] {
        var all: [ObjectInfo] = []
        try forEachPage(prefix: prefix, delimiter: nil, pageSize: pageSize) { all.append(contentsOf: $0.objects) }
        return all
    }

    /// The common prefixes (one level) and objects directly under `prefix`.
    public func listDirectory(prefix: String, delimiter: String = "/") throws
        -> (objects: [ObjectInfo], prefixes: [String])
    {
        var objects: [ObjectInfo] = []
        var prefixes: [String] = []
        try forEachPage(prefix: prefix, delimiter: delimiter, pageSize: 1000) {
            objects.append(contentsOf: $0.objects)
            prefixes.append(contentsOf: $0.commonPrefixes)
        }
        return (objects, prefixes)
    }

    public func forEachPage(
        prefix: String, delimiter: String?, pageSize: Int = 1000,
        _ body: (ListPage) throws -> Void
    ) throws {
        var token: String? = nil
        repeat {
            let page = try listPage(prefix: prefix, delimiter: delimiter, continuation: token, maxKeys: pageSize)
            try body(page)
            token = page.continuation
        } while token != nil
    }
}

/// A store that can list and abort incomplete multipart uploads (S3 can; the file store has
/// none). Garbage collection uses it to remove parts left by crashed uploads.
public protocol IncompleteUploadCleaning {
    func incompleteUploads(prefix: String) throws -> [(key: String, uploadId: String, initiated: Date?)]
    func abortUpload(key: String, uploadId: String) throws
}
