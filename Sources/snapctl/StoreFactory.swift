import Foundation
import Logging
import StrataCore
import StrataFileStore

/// Where `--store` points: parsed, validated, and turned into a store. The composition root:
/// the only place that reads the environment and picks an implementation.
struct StoreLocation: CustomStringConvertible {
    enum Kind {
        case s3(bucket: String)
        case file(path: String)
    }
    let kind: Kind
    /// The key prefix inside the bucket or directory: empty or ending in "/".
    let prefix: String

    var description: String {
        switch kind {
        case .s3(let bucket): return "s3://\(bucket)/\(prefix)"
        case .file(let path): return "file://\(path)" + (prefix.isEmpty ? "" : "#\(prefix)")
        }
    }

    static func parse(_ raw: String) throws -> StoreLocation {
        if raw.hasPrefix("s3://") {
            let rest = raw.dropFirst(5)
            let bucket = String(rest.prefix { $0 != "/" })
            var prefix = String(rest.dropFirst(bucket.count)).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            if !prefix.isEmpty { prefix += "/" }
            guard bucket.count >= 3, bucket.count <= 63,
                bucket.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "-" || $0 == "." })
            else {
                throw CLIError.usage(
                    "--store \(raw): \"\(bucket)\" is not a valid bucket name "
                        + "(3 to 63 characters of a-z, 0-9, '-' and '.')")
            }
            return StoreLocation(kind: .s3(bucket: bucket), prefix: prefix)
        }
        if raw.hasPrefix("file://") {
            let path = String(raw.dropFirst(7))
            guard path.hasPrefix("/") else {
                throw CLIError.usage("--store \(raw): a file store needs an absolute path, e.g. file:///var/lib/strata")
            }
            return StoreLocation(kind: .file(path: path), prefix: "")
        }
        throw CLIError.usage("--store \"\(raw)\" is neither s3://bucket[/prefix] nor file:///absolute/dir")
    }
}

enum StoreFactory {
    static func open(_ location: StoreLocation, environment: [String: String], profile: String?, logger: Logger) throws
        -> (store: any ObjectStore, layout: Layout)
    {
        switch location.kind {
        case .file(let path):
            let store = try FileStore(root: URL(fileURLWithPath: path))
            store.meter = Progress.meter
            // Retries are a decorator over the file store; the S3 store retries at its transport
            // (re-signing, refreshing credentials, its ambiguous-write check) with the same
            // RetryPolicy, so it is not wrapped twice. The compactor adds MetricsStore on top.
            return (RetryingStore(store, policy: RetryPolicy(), logger: logger), Layout(prefix: location.prefix))
        case .s3(let bucket):
            return (
                try S3Support.makeStore(bucket: bucket, environment: environment, profile: profile, logger: logger),
                Layout(prefix: location.prefix)
            )
        }
    }
}
