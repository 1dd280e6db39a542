import Foundation
import StrataCore

/// The AWS CLI's transfer settings in the profile's `s3` block of `~/.aws/config`:
///
///     [default]
///     s3 =
///       multipart_threshold = 64MB
///       multipart_chunksize = 16MB
///       max_concurrent_requests = 4
///
/// Sizes are bytes or a number with KB/MB/GB/TB (1024-based, as the AWS CLI reads them; KiB/MiB/
/// GiB/TiB also accepted).
public struct AWSTransferSettings: Sendable, Equatable {
    public var multipartThreshold: Int64?
    public var partSize: Int?
    public var concurrency: Int?

    /// S3's limits on a part (the last part may be smaller).
    public static let minPartSize = 5 << 20
    public static let maxPartSize: Int64 = 5 << 30

    public static func resolve(_ profile: AWSProfile) throws -> AWSTransferSettings {
        var t = AWSTransferSettings()
        if let s = profile.nestedSetting("s3", "multipart_threshold") {
            t.multipartThreshold = try size(s)
        }
        if let s = profile.nestedSetting("s3", "multipart_chunksize") {
            let v = try size(s)
            guard v >= Int64(minPartSize), v <= maxPartSize else {
                throw StoreError(
                    .configuration, operation: "resolve AWS settings", key: s.source,
                    message: "multipart_chunksize \(s.value) is outside S3's part sizes (5 MiB to 5 GiB)",
                    hint: "use e.g. multipart_chunksize = 16MB")
            }
            t.partSize = Int(v)
        }
        if let s = profile.nestedSetting("s3", "max_concurrent_requests") {
            guard let n = Int(s.value.trimmingCharacters(in: .whitespaces)), n >= 1, n <= 64 else {
                throw StoreError(
                    .configuration, operation: "resolve AWS settings", key: s.source,
                    message: "max_concurrent_requests \"\(s.value)\" is not a whole number from 1 to 64",
                    hint: "use e.g. max_concurrent_requests = 4")
            }
            t.concurrency = n
        }
        return t
    }

    /// Applies the settings that are set.
    public func apply(to c: inout S3Configuration) {
        if let multipartThreshold { c.multipartThreshold = multipartThreshold }
        if let partSize { c.partSize = partSize }
        if let concurrency { c.concurrency = concurrency }
    }

    static func size(_ s: AWSSetting) throws -> Int64 {
        let text = s.value.trimmingCharacters(in: .whitespaces)
        let units: [(String, Int64)] = [
            ("KIB", 1 << 10), ("MIB", 1 << 20), ("GIB", 1 << 30), ("TIB", 1 << 40),
            ("KB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30), ("TB", 1 << 40),
            ("B", 1),
        ]
        var number = Substring(text)
        var multiplier: Int64 = 1
        for (u, m) in units where text.uppercased().hasSuffix(u) {
            number = text.dropLast(u.count)
            multiplier = m
            break
        }
        guard let n = Int64(number.trimmingCharacters(in: .whitespaces)), n > 0,
            n <= Int64.max / multiplier
        else {
            throw StoreError(
                .configuration, operation: "resolve AWS settings", key: s.source,
                message: "\"\(s.value)\" is not a size (bytes, or a number with KB, MB, GB or TB)",
                hint: "use e.g. 64MB")
        }
        return n * multiplier
    }
}
