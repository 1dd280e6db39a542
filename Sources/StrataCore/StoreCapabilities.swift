import Foundation

/// Optional store abilities as protocols, found through decorators with `capability(_:)` instead
/// of downcasts to a concrete store.

/// A decorator (metrics, retries) over another store; `capability(_:)` looks through it.
public protocol ObjectStoreDecorator: ObjectStore {
    var base: any ObjectStore { get }
}

/// A store that can start a listing after a given key (S3's `start-after`), so a reader that
/// knows where it stopped does not page through everything before it.
public protocol StartAfterListing: ObjectStore {
    /// Like `listPage`, but the first page starts after `startAfter` (ignored when `continuation`
    /// is given: the continuation already carries the position; nil: from the start).
    func listPage(
        prefix: String, delimiter: String?, startAfter: String?, continuation: String?,
        maxKeys: Int
    ) throws -> ListPage
}

/// The methods a presigned URL can be made for.
// swift-format-ignore: AlwaysUseLowerCamelCase
// The cases are spelled as the HTTP methods; snapctl and others call `.GET` / `.PUT`.
public enum PresignMethod: String, Sendable {
    case GET, PUT
}

/// A store that can hand out URLs which let a client without credentials GET or PUT one key
/// for a while (S3 can, with SigV4 query signing). The file store cannot: it has no server and
/// nothing to sign with, so it does not conform and callers say so.
public protocol Presigning {
    /// A URL for `method` on `key` (a full key, prefix included), valid for `expires` seconds.
    func presignedURL(for key: String, method: PresignMethod, expires: TimeInterval) throws -> String
}

/// A store whose container (an S3 bucket, the file store's root directory) can be created.
public protocol BucketCreating {
    /// Creates the bucket; succeeds when it already exists and is ours.
    func createBucket() throws
}

extension ObjectStore {
    /// This store, or the first store under its decorators, as `T`.
    public func capability<T>(_ type: T.Type) -> T? {
        var current: any ObjectStore = self
        while true {
            if let c = current as? T { return c }
            guard let d = current as? any ObjectStoreDecorator else { return nil }
            current = d.base
        }
    }

    /// One page of keys under `prefix` after `startAfter`: through the store (or the first store
    /// under its decorators) when it lists with start-after, else a plain page with the keys up to
    /// `startAfter` dropped. Decorators forward `StartAfterListing` through this.
    public func listPageAfter(
        prefix: String, delimiter: String?, startAfter: String?, continuation: String?, maxKeys: Int
    ) throws -> ListPage {
        if let s = self as? any StartAfterListing {
            return try s.listPage(
                prefix: prefix, delimiter: delimiter, startAfter: startAfter, continuation: continuation,
                maxKeys: maxKeys)
        }
        var page = try listPage(prefix: prefix, delimiter: delimiter, continuation: continuation, maxKeys: maxKeys)
        if let startAfter {
            page.objects = page.objects.filter { startAfter.utf8.lexicographicallyPrecedes($0.key.utf8) }
        }
        return page
    }

    /// Every page of keys under `prefix` that sort after `startAfter` (all when nil). Uses
    /// `start-after` where the store has it; otherwise lists everything and drops the rest.
    public func forEachPage(
        prefix: String, startAfter: String?, pageSize: Int = 1000,
        _ body: (ListPage) throws -> Void
    ) throws {
        guard let startAfter else { return try forEachPage(prefix: prefix, delimiter: nil, pageSize: pageSize, body) }
        if let s = self as? any StartAfterListing {
            var token: String? = nil
            repeat {
                let page = try s.listPage(
                    prefix: prefix, delimiter: nil, startAfter: startAfter, continuation: token,
                    maxKeys: pageSize)
                try body(page)
                token = page.continuation
            } while token != nil
            return
        }
        try forEachPage(prefix: prefix, delimiter: nil, pageSize: pageSize) { page in
            var p = page
            p.objects = page.objects.filter { startAfter.utf8.lexicographicallyPrecedes($0.key.utf8) }
            try body(p)
        }
    }
}
