import Foundation
import Logging
import StrataCore
import Synchronization

/// The EC2 instance profile role through the instance metadata service (IMDSv2):
/// `PUT /latest/api/token` for a session token, then `GET /latest/meta-data/iam/security-credentials/`
/// for the role name and `GET …/ROLE` for its credentials, both with `X-aws-ec2-metadata-token`.
///
/// Settings (environment first, then the profile, as the SDKs read them):
/// - `AWS_EC2_METADATA_DISABLED=true`: skip this source.
/// - `AWS_EC2_METADATA_SERVICE_ENDPOINT` / `ec2_metadata_service_endpoint`: the endpoint
///   (default `http://169.254.169.254`, or `http://[fd00:ec2::254]` when
///   `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE` / `ec2_metadata_service_endpoint_mode` is `IPv6`).
/// - `AWS_METADATA_SERVICE_TIMEOUT` / `metadata_service_timeout` (default 1 s) and
///   `AWS_METADATA_SERVICE_NUM_ATTEMPTS` / `metadata_service_num_attempts` (default 1): short,
///   so that a laptop without IMDS gives up fast.
/// - `AWS_EC2_METADATA_V1_DISABLED=true` / `ec2_metadata_v1_disabled`: never fall back to IMDSv1
///   (requests without a token) when the token request is refused with 403, 404 or 405.
///
/// When nothing answers, or the instance has no role, the source is skipped with the reason.
public struct InstanceMetadataCredentialSource: CredentialSource {
    public struct Settings: Sendable {
        /// Set when IMDS is disabled, with the variable that disabled it.
        public var disabled: AWSSetting?
        public var endpoint: AWSSetting
        public var timeout: Double
        public var attempts: Int
        public var allowV1Fallback: Bool

        public init(
            disabled: AWSSetting? = nil, endpoint: AWSSetting, timeout: Double = 1, attempts: Int = 1,
            allowV1Fallback: Bool = true
        ) {
            self.disabled = disabled
            self.endpoint = endpoint
            self.timeout = timeout
            self.attempts = attempts
            self.allowV1Fallback = allowV1Fallback
        }

        public static let defaultEndpoint = "http://169.254.169.254"
        public static let defaultIPv6Endpoint = "http://[fd00:ec2::254]"

        /// Reads the settings from the environment, then the profile.
        public static func resolve(environment env: [String: String], profile: AWSProfile?) -> Settings {
            func setting(_ variable: String, _ key: String) -> AWSSetting? {
                if let v = env.nonEmpty(variable) { return AWSSetting(v, source: variable) }
                return profile?.setting(key)
            }
            var disabled: AWSSetting?
            if let d = env.nonEmpty("AWS_EC2_METADATA_DISABLED"), d.lowercased() == "true" {
                disabled = AWSSetting(d, source: "AWS_EC2_METADATA_DISABLED")
            }
            var endpoint = AWSSetting(defaultEndpoint, source: "default")
            let mode = setting("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "ec2_metadata_service_endpoint_mode")
            if let e = setting("AWS_EC2_METADATA_SERVICE_ENDPOINT", "ec2_metadata_service_endpoint") {
                endpoint = e
            } else if let mode, mode.value.lowercased() == "ipv6" {
                endpoint = AWSSetting(defaultIPv6Endpoint, source: mode.source)
            }
            while endpoint.value.hasSuffix("/") { endpoint.value.removeLast() }
            var s = Settings(disabled: disabled, endpoint: endpoint)
            if let t = setting("AWS_METADATA_SERVICE_TIMEOUT", "metadata_service_timeout"),
                let seconds = Double(t.value), seconds > 0
            {
                s.timeout = seconds
            }
            if let n = setting("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "metadata_service_num_attempts"),
                let count = Int(n.value), count > 0
            {
                s.attempts = min(count, 10)
            }
            if let v1 = setting("AWS_EC2_METADATA_V1_DISABLED", "ec2_metadata_v1_disabled"),
                v1.value.lowercased() == "true"
            {
                s.allowV1Fallback = false
            }
            return s
        }
    }

    public let settings: Settings
    let httpClient: any HTTPClient
    let now: @Sendable () -> Date
    let logger: Logger

    public var name: String { "EC2 instance metadata" }

    public init(
        settings: Settings, httpClient: any HTTPClient, now: @escaping @Sendable () -> Date = { Date() },
        logger: Logger = AWSLog.noop
    ) {
        self.logger = logger
        self.settings = settings
        self.httpClient = httpClient
        self.now = now
    }

    public func resolve() throws -> CredentialSourceResult {
        if let d = settings.disabled { return .skipped("disabled by \(d.source)=\(d.value)") }
        let client = IMDSClient(settings: settings, httpClient: httpClient, now: now)
        let provider = RefreshingCredentialsProvider(
            source: "EC2 instance metadata at \(settings.endpoint.value)", now: now, logger: logger
        ) {
            try client.fetchCredentials()
        }
        do {
            _ = try provider.credentials()
            return .provider(provider)
        } catch let e as StoreError {
            if e.status == nil && e.kind == .transient {
                return .skipped(
                    "no answer from \(settings.endpoint.value) within \(settings.timeout) s "
                        + "(\(e.message)); not on EC2?")
            }
            var reason = e.message
            if let status = e.status { reason += " (HTTP \(status))" }
            return .skipped(reason)
        }
    }
}

/// An IMDSv2 session: caches the token until shortly before its TTL ends; a 401 drops it and
/// asks for a new one once.
final class IMDSClient: Sendable {
    let settings: InstanceMetadataCredentialSource.Settings
    let httpClient: any HTTPClient
    let now: @Sendable () -> Date
    static let tokenTTL = 21600

    private struct State {
        var token: (value: String, expires: Date)?
        /// Set when the token request was refused and IMDSv1 is allowed.
        var useV1 = false
    }
    private let state = Mutex(State())

    private static let operation = "fetch EC2 instance credentials"
    private static let credentialsPath = "/latest/meta-data/iam/security-credentials/"

    init(
        settings: InstanceMetadataCredentialSource.Settings, httpClient: any HTTPClient,
        now: @escaping @Sendable () -> Date
    ) {
        self.settings = settings
        self.httpClient = httpClient
        self.now = now
    }

    func fetchCredentials() throws -> Credentials {
        let listing = try get(Self.credentialsPath)
        guard listing.status == 200 else {
            if listing.status == 404 {
                throw StoreError(
                    .configuration, operation: Self.operation, key: settings.endpoint.value,
                    status: 404, message: "the instance has no IAM role (no instance profile attached)")
            }
            throw failure(listing, Self.credentialsPath)
        }
        let listingText = String(decoding: listing.body, as: UTF8.self)
        let roles = listingText.split(whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" })
            .map { String($0).trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        guard let role = roles.first else {
            throw StoreError(
                .configuration, operation: Self.operation, key: settings.endpoint.value,
                message: "the instance lists no IAM role")
        }
        let path = Self.credentialsPath + CredentialHTTP.percentEncode(role)
        let response = try get(path)
        guard response.status == 200 else { throw failure(response, path) }
        var creds = try CredentialHTTP.decodeJSONCredentials(
            response.body, operation: Self.operation,
            key: "instance role \(role)")
        // During an outage of the service behind it, IMDS keeps serving the last credentials, already
        // expired. Taken at face value they would make every request fetch again; like the SDKs, use
        // them for 5 to 10 more minutes (requests may fail, but IMDS is not hammered).
        let t = now()
        if let exp = creds.expiration, exp < t.addingTimeInterval(60) {
            creds.expiration = t.addingTimeInterval(300 + Double.random(in: 0...300))
        }
        return creds
    }

    private func failure(_ response: HTTPResponse, _ path: String) -> StoreError {
        let kind: StoreError.Kind
        switch response.status {
        case 401, 403: kind = .accessDenied
        case 429: kind = .throttled
        case 500...599: kind = .transient
        default: kind = .invalidRequest
        }
        return StoreError(
            kind, operation: Self.operation, key: settings.endpoint.value + path,
            status: response.status, message: "unexpected HTTP \(response.status) from IMDS")
    }

    /// GET with the session token; on 401 gets a new token and tries once more.
    private func get(_ path: String) throws -> HTTPResponse {
        var response = try getOnce(path, token: try sessionToken(forceNew: false))
        if response.status == 401 && !isV1 {
            response = try getOnce(path, token: try sessionToken(forceNew: true))
        }
        return response
    }

    private var isV1: Bool { state.withLock { $0.useV1 } }

    private func getOnce(_ path: String, token: String?) throws -> HTTPResponse {
        var headers: [(name: String, value: String)] = []
        if let token { headers.append(("X-aws-ec2-metadata-token", token)) }
        let request = HTTPRequest(
            method: "GET", url: settings.endpoint.value + path, headers: headers,
            timeout: settings.timeout)
        return try CredentialHTTP.send(httpClient, request, attempts: settings.attempts) { $0 }
    }

    /// The IMDSv2 session token, or nil when falling back to IMDSv1.
    private func sessionToken(forceNew: Bool) throws -> String? {
        let (useV1, token) = state.withLock { ($0.useV1, $0.token) }
        if useV1 { return nil }
        if !forceNew, let token, now() < token.expires { return token.value }

        let url = settings.endpoint.value + "/latest/api/token"
        let request = HTTPRequest(
            method: "PUT", url: url,
            headers: [("X-aws-ec2-metadata-token-ttl-seconds", String(Self.tokenTTL))],
            timeout: settings.timeout)
        let response = try CredentialHTTP.send(httpClient, request, attempts: settings.attempts) { $0 }
        switch response.status {
        case 200:
            let value = String(decoding: response.body, as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            guard !value.isEmpty else {
                throw StoreError(
                    .invalidRequest, operation: Self.operation, key: url, status: 200,
                    message: "IMDS returned an empty session token")
            }
            let expires = now().addingTimeInterval(Double(Self.tokenTTL - 60))
            state.withLock { $0.token = (value, expires) }
            return value
        case 403, 404, 405:
            guard settings.allowV1Fallback else {
                throw StoreError(
                    .accessDenied, operation: Self.operation, key: url, status: response.status,
                    message: "IMDS refused the session token request, and IMDSv1 fallback is disabled")
            }
            // IMDSv2 is unavailable here; plain IMDSv1 requests may still work.
            state.withLock { $0.useV1 = true }
            return nil
        default:
            let kind: StoreError.Kind = response.status >= 500 ? .transient : .accessDenied
            throw StoreError(
                kind, operation: Self.operation, key: url, status: response.status,
                message: "IMDS refused the session token request")
        }
    }
}
