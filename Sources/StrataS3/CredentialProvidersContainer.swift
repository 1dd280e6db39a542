import Foundation
import Logging
import StrataCore

/// Container credentials: an ECS task role (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, served at
/// `http://169.254.170.2`), or EKS Pod Identity and other agents
/// (`AWS_CONTAINER_CREDENTIALS_FULL_URI` with `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` or
/// `AWS_CONTAINER_AUTHORIZATION_TOKEN` sent as the `Authorization` header).
///
/// As in the SDKs, a full URI over plain HTTP must point at a loopback address or one of the
/// link-local agent addresses (169.254.170.2, 169.254.170.23, fd00:ec2::23), so that the
/// authorization token is never sent in clear across a network. Host names other than
/// `localhost` are not resolved to check this; use an IP address or https.
public struct ContainerCredentialSource: CredentialSource {
    public let environment: [String: String]
    let httpClient: any HTTPClient
    let now: @Sendable () -> Date
    /// Base of the relative URI; the ECS agent's address (tests point it at a local server).
    let relativeBase: String
    let logger: Logger

    public static let ecsAgentBase = "http://169.254.170.2"
    static let allowedHTTPHosts: Set<String> = ["169.254.170.2", "169.254.170.23", "fd00:ec2::23"]

    public var name: String { "container (ECS/EKS)" }

    public init(
        environment: [String: String], httpClient: any HTTPClient,
        now: @escaping @Sendable () -> Date = { Date() }, logger: Logger = AWSLog.noop
    ) {
        self.init(
            environment: environment, httpClient: httpClient, now: now, relativeBase: Self.ecsAgentBase,
            logger: logger)
    }

    init(
        environment: [String: String], httpClient: any HTTPClient, now: @escaping @Sendable () -> Date,
        relativeBase: String, logger: Logger
    ) {
        self.logger = logger
        self.environment = environment
        self.httpClient = httpClient
        self.now = now
        self.relativeBase = relativeBase
    }

    public func resolve() throws -> CredentialSourceResult {
        let url: String
        let origin: String
        if let relative = environment.nonEmpty("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
            url = relativeBase + (relative.hasPrefix("/") ? relative : "/" + relative)
            origin = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
        } else if let full = environment.nonEmpty("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
            try Self.validateFullURI(full)
            url = full
            origin = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
        } else {
            return .skipped("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI are not set")
        }
        let tokenFile = environment.nonEmpty("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        let fixedToken = environment.nonEmpty("AWS_CONTAINER_AUTHORIZATION_TOKEN")
        let client = httpClient
        var source = "container credentials from \(url) (\(origin))"
        if let tokenFile { source += " with the token in \(tokenFile)" }
        return .provider(
            RefreshingCredentialsProvider(source: source, now: now, logger: logger) {
                var headers: [(name: String, value: String)] = [("Accept", "application/json")]
                // The file wins over the variable, and is read on every fetch: agents rotate it.
                var token = fixedToken
                if let tokenFile {
                    token = try CredentialHTTP.readTokenFile(
                        tokenFile, what: "container authorization token",
                        operation: "fetch container credentials")
                }
                if let token {
                    if token.contains("\r") || token.contains("\n") {
                        throw StoreError(
                            .configuration, operation: "fetch container credentials", key: url,
                            message: "the container authorization token contains a line break")
                    }
                    headers.append(("Authorization", token))
                }
                let request = HTTPRequest(method: "GET", url: url, headers: headers, timeout: 5)
                return try CredentialHTTP.send(client, request, attempts: 3) { response in
                    try Self.check(response, url: url)
                }
            })
    }

    static func validateFullURI(_ full: String) throws {
        guard let comps = URLComponents(string: full), let scheme = comps.scheme?.lowercased(),
            let host = CredentialHTTP.host(of: full), !host.isEmpty
        else {
            throw StoreError(
                .configuration, operation: "resolve AWS credentials",
                key: "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                message: "\"\(full)\" is not an absolute http(s) URL")
        }
        if scheme == "https" { return }
        guard scheme == "http" else {
            throw StoreError(
                .configuration, operation: "resolve AWS credentials",
                key: "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                message: "\"\(full)\" must be an http or https URL")
        }
        if CredentialHTTP.isLoopback(host) || allowedHTTPHosts.contains(host) { return }
        throw StoreError(
            .configuration, operation: "resolve AWS credentials",
            key: "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            message: "plain http to \(host) is not allowed for container credentials",
            hint: "use https, a loopback address, or the agent addresses 169.254.170.2, "
                + "169.254.170.23 or fd00:ec2::23")
    }

    static func check(_ response: HTTPResponse, url: String) throws -> Credentials {
        let op = "fetch container credentials"
        if response.status == 200 {
            return try CredentialHTTP.decodeJSONCredentials(response.body, operation: op, key: url)
        }
        // Error bodies are `{"code": "...", "message": "..."}`; they carry no credentials.
        let obj = (try? JSONSerialization.jsonObject(with: response.body)) as? [String: Any]
        let code = (obj?["code"] ?? obj?["Code"]) as? String
        let message =
            ((obj?["message"] ?? obj?["Message"]) as? String).map { CredentialHTTP.clip($0) }
            ?? "HTTP \(response.status) from the credentials endpoint"
        let kind: StoreError.Kind
        var hint: String?
        switch response.status {
        case 401, 403:
            kind = .accessDenied
            hint =
                "the agent refused the authorization token: check AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE "
                + "(or AWS_CONTAINER_AUTHORIZATION_TOKEN)"
        case 404:
            kind = .configuration
            hint = "the URI names no credentials: check the task role or pod identity association"
        case 429:
            kind = .throttled
        case 500...599:
            kind = .transient
        default:
            kind = .invalidRequest
        }
        throw StoreError(
            kind, operation: op, key: url, status: response.status, code: code, message: message,
            hint: hint)
    }
}
