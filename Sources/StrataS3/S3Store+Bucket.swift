import Foundation
import StrataCore
import StrataCrypto

extension S3Store: StartAfterListing {
    // MARK: list

    public func listPage(prefix: String, delimiter: String?, continuation: String?, maxKeys: Int) throws -> ListPage {
        try listPage(
            prefix: prefix, delimiter: delimiter, startAfter: nil, continuation: continuation, maxKeys: maxKeys)
    }

    public func listPage(
        prefix: String, delimiter: String?, startAfter: String?, continuation: String?,
        maxKeys: Int
    ) throws -> ListPage {
        // encoding-type=url: keys are percent-encoded in the XML, so keys with characters XML 1.0
        // cannot carry (control characters) still list correctly.
        var query: [SigV4Signer.QueryItem] = [
            .init("list-type", "2"), .init("encoding-type", "url"),
            .init("max-keys", String(min(1000, max(1, maxKeys)))),
        ]
        if !prefix.isEmpty { query.append(.init("prefix", prefix)) }
        if let delimiter, !delimiter.isEmpty { query.append(.init("delimiter", delimiter)) }
        if let continuation { query.append(.init("continuation-token", continuation)) }
        if continuation == nil, let startAfter { query.append(.init("start-after", startAfter)) }
        let r = try send(Request(operation: "ListObjectsV2", method: "GET", key: nil, query: query))
        markBucketExists()
        guard let root = XMLNode.parse(r.body), root.name == "ListBucketResult" else {
            throw StoreError(
                .invalidRequest, operation: "ListObjectsV2", key: prefix,
                message: "the response is not a ListBucketResult",
                hint: "check that the endpoint is an S3 API endpoint")
        }
        let encoded = root.value("EncodingType")?.lowercased() == "url"
        func decode(_ s: String) -> String { encoded ? SigV4Signer.percentDecode(s, plusAsSpace: true) : s }
        var objects: [ObjectInfo] = []
        for c in root.all("Contents") {
            guard let key = c.value("Key") else { continue }
            objects.append(
                ObjectInfo(
                    key: decode(key), size: Int64(c.value("Size") ?? "") ?? 0,
                    etag: c.value("ETag") ?? "", lastModified: S3Store.parseISODate(c.value("LastModified"))))
        }
        let prefixes = root.all("CommonPrefixes").compactMap { $0.value("Prefix") }.map(decode)
        let truncated = root.value("IsTruncated") == "true"
        let next = root.value("NextContinuationToken")
        return ListPage(
            objects: objects, commonPrefixes: prefixes,
            continuation: truncated && next?.isEmpty == false ? next : nil)
    }

    // MARK: batch delete

    /// Deletes up to 1000 keys per request (DeleteObjects, quiet mode, with Content-MD5 as S3
    /// requires). Keys XML cannot carry are deleted one by one. Missing keys count as deleted.
    public func delete(keys: [String]) throws -> [DeleteFailure] {
        var failures: [DeleteFailure] = []
        var batchable: [String] = []
        for key in keys {
            if key.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" && $0 != "\n" && $0 != "\r" }) {
                do { try delete(key) } catch let e as StoreError {
                    failures.append(DeleteFailure(key: key, code: e.code ?? e.kind.rawValue, message: e.message))
                }
            } else {
                batchable.append(key)
            }
        }
        var start = 0
        while start < batchable.count {
            let batch = Array(batchable[start..<min(start + 1000, batchable.count)])
            start += batch.count
            failures += try deleteBatch(batch)
        }
        return failures
    }

    private func deleteBatch(_ keys: [String]) throws -> [DeleteFailure] {
        for key in keys { try validate(key: key, operation: "DeleteObjects") }
        var xml =
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
            + "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
        for key in keys { xml += "<Object><Key>\(XMLNode.escape(key))</Key></Object>" }
        xml += "</Delete>"
        let body = Data(xml.utf8)
        let md5 = Data(MD5.hash(body)).base64EncodedString()
        let r = try send(
            Request(
                operation: "DeleteObjects", method: "POST", key: nil, query: [.init("delete", nil)],
                headers: [("Content-Type", "application/xml"), ("Content-MD5", md5)],
                body: .data(body), errorMayComeWith200: true))
        guard let root = XMLNode.parse(r.body) else {
            if r.body.isEmpty { return [] }
            throw StoreError(.invalidRequest, operation: "DeleteObjects", message: "unreadable response")
        }
        return root.all("Error").compactMap { e in
            guard let key = e.value("Key") else { return nil }
            let code = e.value("Code") ?? "Unknown"
            if code == "NoSuchKey" { return nil }
            return DeleteFailure(key: key, code: code, message: e.value("Message") ?? "")
        }
    }

    // MARK: bucket

    /// Creates the bucket (with a LocationConstraint outside us-east-1). A bucket that already
    /// exists and is owned by these credentials is success.
    public func createBucket() throws {
        var body = TransportBody.none
        var headers: [(name: String, value: String)] = []
        if configuration.region != "us-east-1" && !configuration.region.isEmpty {
            let xml =
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                + "<LocationConstraint>\(XMLNode.escape(configuration.region))</LocationConstraint>"
                + "</CreateBucketConfiguration>"
            body = .data(Data(xml.utf8))
            headers.append(("Content-Type", "application/xml"))
        }
        do {
            _ = try send(Request(operation: "CreateBucket", method: "PUT", key: nil, headers: headers, body: body))
        } catch let e as StoreError where e.code == "BucketAlreadyOwnedByYou" {
            // Already there and ours: that is what was asked for.
        }
        markBucketExists()
    }

    /// True when the bucket exists (and these credentials may see it).
    public func bucketExists() throws -> Bool {
        let r = try send(Request(operation: "HeadBucket", method: "HEAD", key: nil, accept: [404]))
        return r.status != 404
    }

    // MARK: presigned URLs

    /// A URL that lets anyone holding it GET or PUT `key` for `expires` seconds (1 s to 7 days),
    /// with no other credentials. The payload is not signed (`UNSIGNED-PAYLOAD`).
    public func presign(key: String, method: PresignMethod, expires: TimeInterval, date: Date = Date()) throws
        -> String
    {
        try validate(key: key, operation: "Presign")
        let seconds = Int(expires.rounded(.up))
        guard seconds >= 1 && seconds <= SigV4Signer.maxPresignExpiry else {
            throw StoreError(
                .invalidRequest, operation: "Presign", key: key,
                message: "expiry of \(seconds) seconds is outside 1 s to 7 days (604800 s)",
                hint: "SigV4 presigned URLs live at most 7 days")
        }
        let creds = try credentials("Presign")
        let path = basePath + "/" + key
        let signed = signer.presign(
            SigV4Signer.Request(method: method.rawValue, path: path, headers: [SigV4Signer.Header("Host", host)]),
            expires: seconds, credentials: creds, date: date)
        return "\(scheme)://\(host)\(signer.canonicalURI(path))?\(signed.queryString)"
    }
}

extension S3Store: Presigning, BucketCreating {
    public func presignedURL(for key: String, method: PresignMethod, expires: TimeInterval) throws -> String {
        try presign(key: key, method: method, expires: expires)
    }
}
