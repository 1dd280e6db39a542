import Foundation
import StrataCrypto

/// AWS Signature Version 4: the Authorization header and presigned (query) URLs.
///
/// S3's rules are the default: the path is not normalised (`//` and `.` segments are signed as
/// they are) and each path segment is URI-encoded once, keeping RFC 3986 unreserved characters
/// and `/`. `normalizePath: true` gives the generic-service behaviour that the classic AWS test
/// suite's `normalize-path` cases assume; S3 must never use it.
///
/// Inputs are *decoded*: `path` is the raw key path (`/bucket/a b+c`), query names and values
/// are raw strings. The signer encodes them, and `canonicalURI`/`canonicalQuery` give the exact
/// strings to put on the wire so what is sent is what was signed.
public struct SigV4Signer: Sendable {
    public static let algorithm = "AWS4-HMAC-SHA256"
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    /// The longest a presigned URL may live: 7 days.
    public static let maxPresignExpiry = 604_800

    public var region: String
    public var service: String
    public var normalizePath: Bool

    public init(region: String, service: String = "s3", normalizePath: Bool = false) {
        self.region = region
        self.service = service
        self.normalizePath = normalizePath
    }

    /// A request to sign. `headers` must include `Host`.
    public struct Request: Sendable {
        public var method: String
        /// Decoded path starting with "/".
        public var path: String
        /// Decoded query parameters in any order; a nil value is a valueless parameter (`?uploads`).
        public var query: [QueryItem]
        public var headers: [Header]

        public init(method: String, path: String, query: [QueryItem] = [], headers: [Header]) {
            self.method = method
            self.path = path
            self.query = query
            self.headers = headers
        }
    }

    public struct QueryItem: Sendable, Equatable {
        public var name: String
        public var value: String?
        public init(_ name: String, _ value: String?) {
            self.name = name
            self.value = value
        }
    }

    public struct Header: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The result of header signing: the headers to add and the intermediate strings (for tests
    /// and debugging; the canonical request holds no secret, the session token aside).
    public struct HeaderSignature: Sendable {
        public var canonicalRequest: String
        public var stringToSign: String
        public var signature: String
        public var signedHeaders: String
        public var authorization: String
        /// `X-Amz-Date`, `x-amz-content-sha256` (when asked), `X-Amz-Security-Token` (with a session
        /// token) and `Authorization`: add all of them to the request.
        public var headersToAdd: [Header]
    }

    public struct QuerySignature: Sendable {
        public var canonicalRequest: String
        public var stringToSign: String
        public var signature: String
        /// The full encoded query string to send, signature included (no leading "?").
        public var queryString: String
    }

    // MARK: header signing

    /// Signs with an Authorization header.
    /// - Parameters:
    ///   - payloadHash: hex SHA-256 of the body, or `UNSIGNED-PAYLOAD` / a streaming marker.
    ///   - addContentSHA256Header: add and sign `x-amz-content-sha256` (S3 requires it).
    ///   - signSessionToken: sign `X-Amz-Security-Token` (S3 does); false adds it after signing.
    public func sign(
        _ request: Request, payloadHash: String, credentials: Credentials, date: Date,
        addContentSHA256Header: Bool = true, signSessionToken: Bool = true
    ) -> HeaderSignature {
        let (amzDate, day) = SigV4Signer.timestamps(date)
        var managed: Set<String> = ["x-amz-date", "authorization"]
        if addContentSHA256Header { managed.insert("x-amz-content-sha256") }
        if credentials.sessionToken != nil { managed.insert("x-amz-security-token") }
        var headers = request.headers.filter { !managed.contains($0.name.lowercased()) }
        var added: [Header] = [Header("X-Amz-Date", amzDate)]
        if addContentSHA256Header { added.append(Header("x-amz-content-sha256", payloadHash)) }
        if let token = credentials.sessionToken, signSessionToken {
            added.append(Header("X-Amz-Security-Token", token))
        }
        headers.append(contentsOf: added)
        let (canonicalHeaders, signedHeaders) = SigV4Signer.canonicalHeaders(headers)
        let canonicalRequest = [
            request.method, canonicalURI(request.path), SigV4Signer.canonicalQuery(request.query),
            canonicalHeaders, signedHeaders, payloadHash,
        ].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = [SigV4Signer.algorithm, amzDate, scope, SHA256.hex(canonicalRequest)]
            .joined(separator: "\n")
        let signature = Hex.encode(
            HMAC.sha256(
                key: signingKey(secret: credentials.secretAccessKey, day: day),
                message: stringToSign))
        let authorization =
            "\(SigV4Signer.algorithm) Credential=\(credentials.accessKeyId)/\(scope), "
            + "SignedHeaders=\(signedHeaders), Signature=\(signature)"
        if let token = credentials.sessionToken, !signSessionToken {
            added.append(Header("X-Amz-Security-Token", token))
        }
        added.append(Header("Authorization", authorization))
        return HeaderSignature(
            canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature,
            signedHeaders: signedHeaders, authorization: authorization, headersToAdd: added)
    }

    // MARK: query signing (presigned URLs)

    /// Signs with query parameters, for a URL that works without any header but those signed
    /// (normally only `Host`). `expires` is in seconds, 1 to 604800.
    public func presign(
        _ request: Request, expires: Int, credentials: Credentials, date: Date,
        payloadHash: String = SigV4Signer.unsignedPayload,
        signSessionToken: Bool = true
    ) -> QuerySignature {
        let (amzDate, day) = SigV4Signer.timestamps(date)
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let (canonicalHeaders, signedHeaders) = SigV4Signer.canonicalHeaders(request.headers)
        var query = request.query.filter { !$0.name.hasPrefix("X-Amz-") }
        query.append(QueryItem("X-Amz-Algorithm", SigV4Signer.algorithm))
        query.append(QueryItem("X-Amz-Credential", "\(credentials.accessKeyId)/\(scope)"))
        query.append(QueryItem("X-Amz-Date", amzDate))
        query.append(QueryItem("X-Amz-Expires", String(expires)))
        query.append(QueryItem("X-Amz-SignedHeaders", signedHeaders))
        if let token = credentials.sessionToken, signSessionToken {
            query.append(QueryItem("X-Amz-Security-Token", token))
        }
        let canonicalQuery = SigV4Signer.canonicalQuery(query)
        let canonicalRequest = [
            request.method, canonicalURI(request.path), canonicalQuery, canonicalHeaders, signedHeaders, payloadHash,
        ].joined(separator: "\n")
        let stringToSign = [SigV4Signer.algorithm, amzDate, scope, SHA256.hex(canonicalRequest)]
            .joined(separator: "\n")
        let signature = Hex.encode(
            HMAC.sha256(
                key: signingKey(secret: credentials.secretAccessKey, day: day),
                message: stringToSign))
        var queryString = canonicalQuery
        if let token = credentials.sessionToken, !signSessionToken {
            queryString += "&X-Amz-Security-Token=" + SigV4Signer.uriEncode(token)
        }
        queryString += "&X-Amz-Signature=" + signature
        return QuerySignature(
            canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature,
            queryString: queryString)
    }

    // MARK: chunked uploads (aws-chunked)

    /// Signature of one chunk of a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` upload, chained from the
    /// previous chunk's signature (the seed signature for the first).
    public func chunkSignature(previous: String, chunkHash: String, credentials: Credentials, date: Date) -> String {
        let (amzDate, day) = SigV4Signer.timestamps(date)
        let sts = [
            "AWS4-HMAC-SHA256-PAYLOAD", amzDate, "\(day)/\(region)/\(service)/aws4_request", previous,
            SHA256.emptyHex, chunkHash,
        ].joined(separator: "\n")
        return Hex.encode(HMAC.sha256(key: signingKey(secret: credentials.secretAccessKey, day: day), message: sts))
    }

    /// Signature of the trailing headers of a `...-PAYLOAD-TRAILER` upload; `trailerHash` is the
    /// SHA-256 of the `name:value\n` lines.
    public func trailerSignature(previous: String, trailerHash: String, credentials: Credentials, date: Date)
        -> String
    {
        let (amzDate, day) = SigV4Signer.timestamps(date)
        let sts = [
            "AWS4-HMAC-SHA256-TRAILER", amzDate, "\(day)/\(region)/\(service)/aws4_request", previous,
            trailerHash,
        ].joined(separator: "\n")
        return Hex.encode(HMAC.sha256(key: signingKey(secret: credentials.secretAccessKey, day: day), message: sts))
    }

    // MARK: canonical forms

    /// The canonical (and wire) form of a decoded path.
    public func canonicalURI(_ path: String) -> String {
        SigV4Signer.canonicalURI(path, normalize: normalizePath)
    }

    public static func canonicalURI(_ path: String, normalize: Bool) -> String {
        var p = path.isEmpty ? "/" : path
        if normalize { p = removeDotSegments(p) }
        return p.split(separator: "/", omittingEmptySubsequences: false)
            .map { uriEncode(String($0)) }
            .joined(separator: "/")
    }

    /// Generic-service path normalisation: collapse `//`, drop `.` segments, resolve `..`. Keeps a
    /// trailing slash.
    static func removeDotSegments(_ path: String) -> String {
        var out: [Substring] = []
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        for part in parts {
            if part == "." { continue }
            if part == ".." {
                _ = out.popLast()
                continue
            }
            out.append(part)
        }
        var result = "/" + out.joined(separator: "/")
        let last = path.split(separator: "/", omittingEmptySubsequences: false).last
        let trailing = path.hasSuffix("/") || last == "." || last == ".."
        if trailing && !out.isEmpty { result += "/" }
        return result
    }

    /// Encoded `name=value` pairs sorted by name then value (byte order); a valueless parameter
    /// becomes `name=`.
    public static func canonicalQuery(_ items: [QueryItem]) -> String {
        items.map { (uriEncode($0.name), uriEncode($0.value ?? "")) }
            .sorted { a, b in
                a.0 == b.0 ? a.1.utf8.lexicographicallyPrecedes(b.1.utf8) : a.0.utf8.lexicographicallyPrecedes(b.0.utf8)
            }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// Lower-cased names, sorted; values trimmed with inner whitespace runs collapsed to one space;
    /// repeated headers joined with "," in their order. Returns (canonical block, signed names).
    static func canonicalHeaders(_ headers: [Header]) -> (String, String) {
        var order: [String] = []
        var values: [String: [String]] = [:]
        for h in headers {
            let name = h.name.lowercased().trimmingCharacters(in: .whitespaces)
            if values[name] == nil { order.append(name) }
            values[name, default: []].append(collapseWhitespace(h.value))
        }
        let names = order.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var block = ""
        for name in names { block += name + ":" + values[name]!.joined(separator: ",") + "\n" }
        return (block, names.joined(separator: ";"))
    }

    static func collapseWhitespace(_ value: String) -> String {
        var out = [UInt8]()
        out.reserveCapacity(value.utf8.count)
        var pendingSpace = false
        for b in value.utf8 {
            if b == 0x20 || b == 0x09 || b == 0x0a || b == 0x0d {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace {
                    out.append(0x20)
                    pendingSpace = false
                }
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    /// RFC 3986 encoding of every byte except the unreserved `A-Z a-z 0-9 - . _ ~`.
    public static func uriEncode(_ s: String) -> String {
        var out = [UInt8]()
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 {
            if (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39)
                || b == 0x2d || b == 0x2e || b == 0x5f || b == 0x7e
            {
                out.append(b)
            } else {
                out.append(0x25)
                out.append(hexDigits[Int(b >> 4)])
                out.append(hexDigits[Int(b & 0x0f)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Percent-decoding; with `plusAsSpace`, `+` means a space (form encoding, as S3 uses in
    /// `encoding-type=url` listings). Invalid escapes are kept as they are.
    public static func percentDecode(_ s: String, plusAsSpace: Bool = false) -> String {
        let bytes = Array(s.utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var i = 0
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x41...0x46: return c - 0x41 + 10
            case 0x61...0x66: return c - 0x61 + 10
            default: return nil
            }
        }
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x25, i + 2 < bytes.count, let h = hex(bytes[i + 1]), let l = hex(bytes[i + 2]) {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(plusAsSpace && b == 0x2b ? 0x20 : b)
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: keys and time

    /// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, day), region), service), "aws4_request").
    func signingKey(secret: String, day: String) -> [UInt8] {
        let kDate = HMAC.sha256(key: Array(("AWS4" + secret).utf8), message: day)
        let kRegion = HMAC.sha256(key: kDate, message: region)
        let kService = HMAC.sha256(key: kRegion, message: service)
        return HMAC.sha256(key: kService, message: "aws4_request")
    }

    /// (`yyyyMMdd'T'HHmmss'Z'`, `yyyyMMdd`) in UTC.
    public static func timestamps(_ date: Date) -> (String, String) {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&t, &parts)
        let day = String(format: "%04d%02d%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday))
        let time = String(format: "%02d%02d%02d", Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
        return ("\(day)T\(time)Z", day)
    }
}
