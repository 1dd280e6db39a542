import Foundation
import StrataCrypto
import StrataTestSupport
import XCTest

@testable import StrataS3

/// AWS's published SigV4 vectors, read from ../shared/oracles (never copied into the repo).
final class SigV4VectorTests: XCTestCase {
    let snakeDecoder: JSONDecoder = {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }()

    static let oracles = TestPaths.shared + "/oracles"
    static let date = Date(timeIntervalSince1970: 1_440_938_160)  // 2015-08-30T12:36:00Z

    /// A request parsed from a vector's `.req` / `request.txt`.
    struct RawRequest {
        var method: String
        var path: String
        var query: [SigV4Signer.QueryItem]
        var headers: [SigV4Signer.Header]
        var body: Data
    }

    static func read(_ path: String) throws -> String {
        try String(contentsOfFile: path, encoding: .utf8)
    }

    /// Parses "METHOD target HTTP/1.1", headers (continuation lines folded), a blank line, a body.
    /// The target may contain spaces; the path is taken as is, the query is percent-decoded.
    static func parseRequest(_ text: String) throws -> RawRequest {
        var lines = text.components(separatedBy: "\n")
        let first = lines.removeFirst()
        guard let sp1 = first.firstIndex(of: " "), let sp2 = first.lastIndex(of: " "), sp1 < sp2 else {
            throw NSError(domain: "vector", code: 1, userInfo: [NSLocalizedDescriptionKey: "bad request line \(first)"])
        }
        let method = String(first[..<sp1])
        let target = String(first[first.index(after: sp1)..<sp2])
        var path = target
        var query: [SigV4Signer.QueryItem] = []
        if let q = target.firstIndex(of: "?") {
            path = String(target[..<q])
            for part in target[target.index(after: q)...].split(separator: "&") {
                if let eq = part.firstIndex(of: "=") {
                    query.append(
                        .init(
                            SigV4Signer.percentDecode(String(part[..<eq])),
                            SigV4Signer.percentDecode(String(part[part.index(after: eq)...]))))
                } else {
                    query.append(.init(SigV4Signer.percentDecode(String(part)), nil))
                }
            }
        }
        var headers: [SigV4Signer.Header] = []
        var bodyLines: [String] = []
        var inBody = false
        for line in lines {
            if inBody {
                bodyLines.append(line)
                continue
            }
            if line.isEmpty {
                inBody = true
                continue
            }
            if line.first == " " || line.first == "\t" {
                headers[headers.count - 1].value += "\n" + line
                continue
            }
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append(.init(String(line[..<colon]), String(line[line.index(after: colon)...])))
        }
        return RawRequest(
            method: method, path: path, query: query, headers: headers,
            body: Data(bodyLines.joined(separator: "\n").utf8))
    }

    // MARK: classic aws4_testsuite

    func testClassicSuite() throws {
        let root = Self.oracles + "/aws4_testsuite"
        let creds = Credentials(accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
        let reqFiles = FileManager.default.enumerator(atPath: root)!.compactMap { $0 as? String }
            .filter { $0.hasSuffix(".req") }.sorted()
        XCTAssertGreaterThanOrEqual(reqFiles.count, 34, "the classic suite has 34 cases")
        var checked = 0
        for rel in reqFiles {
            let base = root + "/" + String(rel.dropLast(4))
            let name = (base as NSString).lastPathComponent
            let req = try Self.parseRequest(try Self.read(base + ".req"))
            var c = creds
            // This case's token is not in its .req but in its .creq (and in the newer suite's context).
            if name == "get-vanilla-with-session-token" {
                c.sessionToken = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"
            }
            // normalize-path/*: generic-service normalisation, which S3 never does (see the README
            // there). They run with the normalisation option; their S3 forms are checked below.
            let normalize = rel.hasPrefix("normalize-path/")
            let signer = SigV4Signer(region: "us-east-1", service: "service", normalizePath: normalize)
            let s = signer.sign(
                .init(method: req.method, path: req.path, query: req.query, headers: req.headers),
                payloadHash: SHA256.hex(req.body), credentials: c, date: Self.date,
                addContentSHA256Header: false)
            XCTAssertEqual(s.canonicalRequest, try Self.read(base + ".creq"), "\(rel): canonical request")
            XCTAssertEqual(s.stringToSign, try Self.read(base + ".sts"), "\(rel): string to sign")
            XCTAssertEqual(s.authorization, try Self.read(base + ".authz"), "\(rel): authorization")
            // The .sreq repeats the Authorization header; get-vanilla-with-session-token's .sreq is
            // known to disagree with its own .authz (it carries another case's signature), so
            // only the .authz is authoritative there.
            if name != "get-vanilla-with-session-token" {
                XCTAssertTrue(
                    try Self.read(base + ".sreq").contains("Authorization: " + s.authorization),
                    "\(rel): signed request")
            }
            checked += 1
        }
        XCTAssertEqual(checked, reqFiles.count)
    }

    /// The normalize-path cases under S3's rules: nothing is collapsed, each segment is encoded once.
    func testClassicNormalizePathCasesUnderS3Rules() throws {
        let expected: [String: String] = [
            "get-relative": "/example/..", "get-relative-relative": "/example1/example2/../..",
            "get-slash": "//", "get-slash-dot-slash": "/./", "get-slash-pointless-dot": "/./example",
            "get-slashes": "//example//", "get-space": "/example%20space/",
            "get-special-character": "/example/%24delete",
        ]
        let root = Self.oracles + "/aws4_testsuite/normalize-path"
        for (name, uri) in expected {
            let req = try Self.parseRequest(try Self.read("\(root)/\(name)/\(name).req"))
            XCTAssertEqual(SigV4Signer(region: "us-east-1").canonicalURI(req.path), uri, name)
        }
    }

    // MARK: aws-signing-test-suite/v4

    struct Context: Decodable {
        struct Creds: Decodable {
            var accessKeyId: String
            var secretAccessKey: String
            var token: String?
        }
        var credentials: Creds
        var expirationInSeconds: Int
        var normalize: Bool
        var region: String
        var service: String
        var signBody: Bool
        var timestamp: String
        var omitSessionToken: Bool?
    }

    func testNewSuiteHeaderAndQuerySigning() throws {
        let root = Self.oracles + "/aws-signing-test-suite/v4"
        let cases = try FileManager.default.contentsOfDirectory(atPath: root).sorted()
        XCTAssertGreaterThanOrEqual(cases.count, 38)
        for name in cases {
            let dir = root + "/" + name
            let ctx = try snakeDecoder.decode(
                Context.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/context.json")))
            XCTAssertEqual(ctx.timestamp, "2015-08-30T12:36:00Z")
            let req = try Self.parseRequest(try Self.read(dir + "/request.txt"))
            let creds = Credentials(
                accessKeyId: ctx.credentials.accessKeyId,
                secretAccessKey: ctx.credentials.secretAccessKey,
                sessionToken: ctx.credentials.token)
            let signer = SigV4Signer(region: ctx.region, service: ctx.service, normalizePath: ctx.normalize)
            let request = SigV4Signer.Request(
                method: req.method, path: req.path, query: req.query, headers: req.headers)
            let signToken = !(ctx.omitSessionToken ?? false)

            let h = signer.sign(
                request, payloadHash: SHA256.hex(req.body), credentials: creds, date: Self.date,
                addContentSHA256Header: ctx.signBody, signSessionToken: signToken)
            XCTAssertEqual(
                h.canonicalRequest, try Self.read(dir + "/header-canonical-request.txt"), "\(name): header creq")
            XCTAssertEqual(h.stringToSign, try Self.read(dir + "/header-string-to-sign.txt"), "\(name): header sts")
            XCTAssertEqual(h.signature, try Self.read(dir + "/header-signature.txt"), "\(name): header signature")
            let signedReq = try Self.read(dir + "/header-signed-request.txt")
            XCTAssertTrue(signedReq.contains("Authorization:" + h.authorization), "\(name): header signed request")
            if let token = creds.sessionToken {
                XCTAssertTrue(h.headersToAdd.contains(.init("X-Amz-Security-Token", token)), name)
            }

            let q = signer.presign(
                request, expires: ctx.expirationInSeconds, credentials: creds, date: Self.date,
                payloadHash: SHA256.hex(req.body), signSessionToken: signToken)
            XCTAssertEqual(
                q.canonicalRequest, try Self.read(dir + "/query-canonical-request.txt"), "\(name): query creq")
            XCTAssertEqual(q.stringToSign, try Self.read(dir + "/query-string-to-sign.txt"), "\(name): query sts")
            XCTAssertEqual(q.signature, try Self.read(dir + "/query-signature.txt"), "\(name): query signature")
            // The signed request's query holds the same parameters (in another order).
            let line = try Self.read(dir + "/query-signed-request.txt").components(separatedBy: "\n")[0]
            let target = line[line.index(after: line.firstIndex(of: " ")!)..<line.lastIndex(of: " ")!]
            // (compared decoded: the file shows raw UTF-8 where the wire has %E1%88%B4)
            let expectedParams = Set(
                target.split(separator: "?", maxSplits: 1)[1].split(separator: "&")
                    .map { SigV4Signer.percentDecode(String($0)) })
            XCTAssertEqual(
                Set(q.queryString.split(separator: "&").map { SigV4Signer.percentDecode(String($0)) }),
                expectedParams,
                "\(name): query signed request")
        }
    }

    // MARK: S3 examples

    struct S3Examples: Decodable {
        struct Creds: Decodable {
            var accessKeyId: String
            var secretAccessKey: String
        }
        struct Chunk: Decodable {
            var size: Int
            var stringToSign: String
            var signature: String
        }
        struct Trailer: Decodable {
            var trailingHeaderBytesHashed: String
            var stringToSign: String
            var signature: String
        }
        struct Example: Decodable {
            var name: String
            var method: String
            var canonicalUri: String
            var canonicalQuery: String
            var headers: [String: String]
            var payloadHash: String
            var canonicalRequest: String
            var stringToSign: String
            var signature: String
            var signedHeaders: String
            var authorizationHeaderWithSdkSpacing: String?
            var presignedUrl: String?
            var chunks: [Chunk]?
            var trailer: Trailer?
        }
        var credentials: Creds
        var region: String
        var service: String
        var timestamp: String
        var examples: [Example]
    }

    func testS3Examples() throws {
        let doc = try snakeDecoder.decode(
            S3Examples.self,
            from: Data(contentsOf: URL(fileURLWithPath: Self.oracles + "/s3_examples.json")))
        XCTAssertEqual(doc.timestamp, "20130524T000000Z")
        let date = Date(timeIntervalSince1970: 1_369_353_600)  // 2013-05-24T00:00:00Z
        let creds = Credentials(
            accessKeyId: doc.credentials.accessKeyId,
            secretAccessKey: doc.credentials.secretAccessKey)
        let signer = SigV4Signer(region: doc.region, service: doc.service)
        XCTAssertEqual(doc.examples.count, 7)
        for ex in doc.examples {
            // The canonical URI and query are given encoded: decode them into the signer's inputs.
            let path = SigV4Signer.percentDecode(ex.canonicalUri)
            let query: [SigV4Signer.QueryItem] =
                ex.canonicalQuery.isEmpty
                ? []
                : ex.canonicalQuery.split(separator: "&").map { part in
                    let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    return .init(
                        SigV4Signer.percentDecode(String(kv[0])),
                        kv.count > 1 && !kv[1].isEmpty ? SigV4Signer.percentDecode(String(kv[1])) : nil)
                }
            XCTAssertEqual(signer.canonicalURI(path), ex.canonicalUri, ex.name)
            let headers = ex.headers.map { SigV4Signer.Header($0.key, $0.value) }
            if let url = ex.presignedUrl {
                let nonSig = query.filter { !$0.name.hasPrefix("X-Amz-") }
                let q = signer.presign(
                    .init(method: ex.method, path: path, query: nonSig, headers: headers),
                    expires: 86400, credentials: creds, date: date)
                XCTAssertEqual(q.canonicalRequest, ex.canonicalRequest, ex.name)
                XCTAssertEqual(q.stringToSign, ex.stringToSign, ex.name)
                XCTAssertEqual(q.signature, ex.signature, ex.name)
                XCTAssertEqual(
                    "https://\(ex.headers["Host"]!)\(signer.canonicalURI(path))?\(q.queryString)", url, ex.name)
                continue
            }
            let s = signer.sign(
                .init(method: ex.method, path: path, query: query, headers: headers),
                payloadHash: ex.payloadHash, credentials: creds, date: date)
            XCTAssertEqual(s.canonicalRequest, ex.canonicalRequest, ex.name)
            XCTAssertEqual(s.stringToSign, ex.stringToSign, ex.name)
            XCTAssertEqual(s.signature, ex.signature, ex.name)
            XCTAssertEqual(s.signedHeaders, ex.signedHeaders, ex.name)
            XCTAssertEqual(s.authorization, ex.authorizationHeaderWithSdkSpacing, ex.name)

            var previous = s.signature
            for chunk in ex.chunks ?? [] {
                let hash = SHA256.hex(Data(repeating: 0x61, count: chunk.size))
                let sig = signer.chunkSignature(previous: previous, chunkHash: hash, credentials: creds, date: date)
                XCTAssertTrue(chunk.stringToSign.hasSuffix(hash), "\(ex.name) chunk of \(chunk.size)")
                XCTAssertEqual(sig, chunk.signature, "\(ex.name) chunk of \(chunk.size)")
                previous = sig
            }
            if let t = ex.trailer {
                let hash = SHA256.hex(t.trailingHeaderBytesHashed)
                XCTAssertTrue(t.stringToSign.hasSuffix(hash), ex.name)
                XCTAssertEqual(
                    signer.trailerSignature(
                        previous: previous, trailerHash: hash, credentials: creds,
                        date: date), t.signature, "\(ex.name) trailer")
            }
        }
    }

    // MARK: S3 key encoding

    func testCanonicalURIForOddKeys() {
        let s = SigV4Signer(region: "us-east-1")
        let cases: [(String, String)] = [
            ("/b/a b", "/b/a%20b"), ("/b/caf\u{e9}", "/b/caf%C3%A9"), ("/b/1+1=2", "/b/1%2B1%3D2"),
            ("/b/x#y", "/b/x%23y"), ("/b/100%", "/b/100%25"), ("/b/~tilde", "/b/~tilde"),
            ("/b/dir//x/", "/b/dir//x/"), ("/b/a&b?c", "/b/a%26b%3Fc"), ("/b/./x/../y", "/b/./x/../y"),
            ("/b/\u{1F600}", "/b/%F0%9F%98%80"), ("/b/a:b@c", "/b/a%3Ab%40c"), ("/b/$", "/b/%24"),
        ]
        for (path, uri) in cases { XCTAssertEqual(s.canonicalURI(path), uri, path) }
        XCTAssertEqual(
            SigV4Signer.canonicalQuery([
                .init("uploads", nil), .init("prefix", "a b/c+d"),
                .init("b", "2"), .init("b", "1"),
            ]),
            "b=1&b=2&prefix=a%20b%2Fc%2Bd&uploads=")
        XCTAssertEqual(SigV4Signer.percentDecode("a%20b+c%2B", plusAsSpace: true), "a b c+")
        XCTAssertEqual(SigV4Signer.percentDecode("a%2"), "a%2")
    }

    func testRedaction() {
        let url =
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F2013&"
            + "X-Amz-Security-Token=tok%2Ben&X-Amz-Signature=abcdef&x-id=GetObject"
        let r = Redaction.url(url)
        XCTAssertFalse(r.contains("AKID"))
        XCTAssertFalse(r.contains("tok"))
        XCTAssertFalse(r.contains("abcdef"))
        XCTAssertTrue(r.contains("X-Amz-Algorithm=AWS4-HMAC-SHA256"))
        XCTAssertTrue(r.contains("x-id=GetObject"))
        XCTAssertEqual(Redaction.url("http://h/k"), "http://h/k")
        XCTAssertEqual(Redaction.header(name: "Authorization", value: "AWS4 secret"), "REDACTED")
    }
}
