import Foundation

/// Removes secrets from what is logged or put in an error: signatures, credentials and session
/// tokens in presigned URLs, and the Authorization and token headers.
public enum Redaction {
    static let secretQueryNames: Set<String> = ["x-amz-signature", "x-amz-credential", "x-amz-security-token"]
    static let secretHeaderNames: Set<String> = ["authorization", "x-amz-security-token"]

    /// The URL with the values of `X-Amz-Signature`, `X-Amz-Credential` and `X-Amz-Security-Token`
    /// replaced by `REDACTED`.
    public static func url(_ url: String) -> String {
        guard let q = url.firstIndex(of: "?") else { return url }
        let base = url[..<q]
        var rest = url[url.index(after: q)...]
        var fragment = ""
        if let hash = rest.firstIndex(of: "#") {
            fragment = String(rest[hash...])
            rest = rest[..<hash]
        }
        let parts = rest.split(separator: "&", omittingEmptySubsequences: false).map { part -> String in
            guard let eq = part.firstIndex(of: "=") else { return String(part) }
            let name = SigV4Signer.percentDecode(String(part[..<eq])).lowercased()
            return secretQueryNames.contains(name) ? "\(part[..<eq])=REDACTED" : String(part)
        }
        return base + "?" + parts.joined(separator: "&") + fragment
    }

    /// The value to show for a header: secret ones replaced.
    public static func header(name: String, value: String) -> String {
        secretHeaderNames.contains(name.lowercased()) ? "REDACTED" : value
    }
}
