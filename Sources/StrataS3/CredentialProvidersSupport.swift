import Foundation
import StrataCore

/// Small pieces shared by the HTTP credential sources (STS, container, instance metadata).
enum CredentialHTTP {
    /// Sends `request`, retrying `.transient` / `.throttled` failures up to `attempts` times with a
    /// short backoff. `check` turns a response into a value or a `StoreError`.
    static func send<T>(
        _ client: any HTTPClient, _ request: HTTPRequest, attempts: Int,
        check: (HTTPResponse) throws -> T
    ) throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try check(try client.send(request))
            } catch let e as StoreError where e.isRetryable && attempt < attempts {
                Thread.sleep(forTimeInterval: 0.1 * Double(attempt * attempt))
            }
        }
    }

    /// `application/x-www-form-urlencoded` with RFC 3986 unreserved characters kept.
    static func formEncode(_ pairs: [(String, String)]) -> String {
        pairs.map { "\(percentEncode($0.0))=\(percentEncode($0.1))" }.joined(separator: "&")
    }

    static func percentEncode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                out += String(format: "%%%02X", b)
            }
        }
        return out
    }

    /// Parses the ISO 8601 timestamps of STS, ECS and IMDS ("2026-01-02T03:04:05Z", with or
    /// without fractional seconds, or with an offset).
    static func parseDate(_ s: String) -> Date? {
        let trimmed = s.trimmingCharacters(in: .whitespacesAndNewlines)
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        if let d = f.date(from: trimmed) { return d }
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: trimmed)
    }

    /// The text of the first `<tag>…</tag>` inside `xml` (after `within`'s opening tag, when
    /// given), entity-decoded. STS responses are small, flat and unprefixed, so this is enough;
    /// a full XML parser would pull FoundationXML into every program that links StrataS3.
    static func xmlValue(_ tag: String, in xml: String, within: String? = nil) -> String? {
        var scope = xml[...]
        if let within {
            guard let r = scope.range(of: "<\(within)>") else { return nil }
            scope = scope[r.upperBound...]
        }
        guard let open = scope.range(of: "<\(tag)>"),
            let close = scope.range(of: "</\(tag)>", range: open.upperBound..<scope.endIndex)
        else { return nil }
        return xmlUnescape(String(scope[open.upperBound..<close.lowerBound]))
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func xmlUnescape(_ s: String) -> String {
        guard s.contains("&") else { return s }
        var out = ""
        var rest = s[...]
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            guard let semi = rest[amp...].firstIndex(of: ";"), rest.distance(from: amp, to: semi) <= 10 else {
                out += "&"
                rest = rest[rest.index(after: amp)...]
                continue
            }
            let entity = rest[rest.index(after: amp)..<semi]
            var decoded: String?
            switch entity {
            case "amp": decoded = "&"
            case "lt": decoded = "<"
            case "gt": decoded = ">"
            case "quot": decoded = "\""
            case "apos": decoded = "'"
            default:
                if entity.hasPrefix("#x"), let v = UInt32(entity.dropFirst(2), radix: 16),
                    let u = Unicode.Scalar(v)
                {
                    decoded = String(Character(u))
                } else if entity.hasPrefix("#"), let v = UInt32(entity.dropFirst()), let u = Unicode.Scalar(v) {
                    decoded = String(Character(u))
                }
            }
            if let decoded {
                out += decoded
                rest = rest[rest.index(after: semi)...]
            } else {
                out += "&"
                rest = rest[rest.index(after: amp)...]
            }
        }
        out += rest
        return out
    }

    /// A server message fit to show: one line, bounded. Only used for error bodies, which hold
    /// no credentials.
    static func clip(_ s: String, _ limit: Int = 300) -> String {
        let one = s.split(whereSeparator: \.isNewline).joined(separator: " ")
            .trimmingCharacters(in: .whitespaces)
        return one.count <= limit ? one : String(one.prefix(limit)) + "…"
    }

    /// The JSON credential document of ECS/EKS and IMDS:
    /// `{"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}`. The body is never quoted in
    /// errors: it holds a secret.
    static func decodeJSONCredentials(_ body: Data, operation: String, key: String) throws -> Credentials {
        guard let obj = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else {
            throw StoreError(
                .invalidRequest, operation: operation, key: key,
                message: "the response (\(body.count) bytes) is not a JSON object")
        }
        if let code = obj["Code"] as? String, code != "Success" {
            throw StoreError(
                .invalidCredentials, operation: operation, key: key, code: code,
                message: clip((obj["Message"] as? String) ?? "the service did not return credentials"))
        }
        guard let keyId = obj["AccessKeyId"] as? String, !keyId.isEmpty,
            let secret = obj["SecretAccessKey"] as? String, !secret.isEmpty
        else {
            let missing = ["AccessKeyId", "SecretAccessKey"].filter { (obj[$0] as? String)?.isEmpty ?? true }
            throw StoreError(
                .invalidRequest, operation: operation, key: key,
                message: "the response has no " + missing.joined(separator: " or "))
        }
        var expiration: Date?
        if let e = obj["Expiration"] as? String {
            guard let d = parseDate(e) else {
                throw StoreError(
                    .invalidRequest, operation: operation, key: key,
                    message: "the response has an unreadable Expiration \"\(clip(e, 40))\"")
            }
            expiration = d
        }
        let token = (obj["Token"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        return Credentials(accessKeyId: keyId, secretAccessKey: secret, sessionToken: token, expiration: expiration)
    }

    /// Reads a small token file (web identity, container authorization), trimmed.
    static func readTokenFile(_ path: String, what: String, operation: String) throws -> String {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw StoreError(
                .configuration, operation: operation, key: path,
                message: "cannot read the \(what) file: \(error.localizedDescription)",
                hint: FileManager.default.fileExists(atPath: path)
                    ? "check the file's permissions" : "check the path; the file does not exist")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if token.isEmpty {
            throw StoreError(.configuration, operation: operation, key: path, message: "the \(what) file is empty")
        }
        return token
    }

    /// The host of a URL (no brackets for IPv6), lower-cased.
    static func host(of url: String) -> String? {
        URLComponents(string: url)?.host?.lowercased()
            .trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
    }

    /// True for 127.0.0.0/8, ::1 and localhost.
    static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        let parts = host.split(separator: ".")
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }
}
