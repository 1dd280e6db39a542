import Foundation
import Logging
import StrataCore

/// A role assumed with an OIDC token: STS `AssumeRoleWithWebIdentity` (EKS IRSA, GitHub Actions,
/// any OIDC provider), from `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`
/// [+ `AWS_ROLE_SESSION_NAME`], or from a profile's `role_arn` + `web_identity_token_file`.
///
/// The call is unsigned (the token is the proof). The token file is read again on every refresh
/// because EKS rotates it. The STS endpoint is regional (`https://sts.REGION.amazonaws.com/`)
/// unless `AWS_ENDPOINT_URL_STS` (or another configured endpoint) says otherwise.
public struct WebIdentityCredentialSource: CredentialSource {
    public struct Settings: Sendable {
        public var roleArn: String
        public var tokenFile: String
        public var sessionName: String?
        /// What configured it: "AWS_WEB_IDENTITY_TOKEN_FILE" or "profile dev".
        public var origin: String

        public init(roleArn: String, tokenFile: String, sessionName: String? = nil, origin: String) {
            self.roleArn = roleArn
            self.tokenFile = tokenFile
            self.sessionName = sessionName
            self.origin = origin
        }
    }

    public let environment: [String: String]
    let makeProvider: @Sendable (Settings) -> any CredentialsProvider

    public var name: String { "web identity" }

    init(environment: [String: String], makeProvider: @escaping @Sendable (Settings) -> any CredentialsProvider) {
        self.environment = environment
        self.makeProvider = makeProvider
    }

    public func resolve() throws -> CredentialSourceResult {
        let tokenFile = environment.nonEmpty("AWS_WEB_IDENTITY_TOKEN_FILE")
        let roleArn = environment.nonEmpty("AWS_ROLE_ARN")
        switch (tokenFile, roleArn) {
        case (nil, nil):
            return .skipped("AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN are not set")
        case (.some, nil), (nil, .some):
            let missing = tokenFile == nil ? "AWS_WEB_IDENTITY_TOKEN_FILE" : "AWS_ROLE_ARN"
            let present = tokenFile == nil ? "AWS_ROLE_ARN" : "AWS_WEB_IDENTITY_TOKEN_FILE"
            throw StoreError(
                .configuration, operation: "resolve AWS credentials", key: missing,
                message: "\(present) is set but \(missing) is not; web identity needs both",
                hint: "set \(missing), or unset \(present)")
        case (.some(let file), .some(let arn)):
            return .provider(
                makeProvider(
                    Settings(
                        roleArn: arn, tokenFile: file, sessionName: environment.nonEmpty("AWS_ROLE_SESSION_NAME"),
                        origin: "AWS_WEB_IDENTITY_TOKEN_FILE")))
        }
    }

    /// The refreshing provider for `settings`: each fetch reads the token file and calls STS.
    public static func provider(
        _ settings: Settings, stsEndpoint: String, httpClient: any HTTPClient,
        now: @escaping @Sendable () -> Date = { Date() },
        logger: Logger = AWSLog.noop
    ) -> RefreshingCredentialsProvider {
        let client = STSWebIdentityClient(endpoint: stsEndpoint, httpClient: httpClient)
        let source =
            "web identity (role \(settings.roleArn), token file \(settings.tokenFile), "
            + "from \(settings.origin))"
        return RefreshingCredentialsProvider(source: source, now: now, logger: logger) {
            let token = try CredentialHTTP.readTokenFile(
                settings.tokenFile, what: "web identity token",
                operation: "AssumeRoleWithWebIdentity")
            let session = settings.sessionName ?? "strata-\(Int(now().timeIntervalSince1970))"
            return try client.assumeRole(roleArn: settings.roleArn, sessionName: session, token: token)
        }
    }
}

/// The regional STS endpoint for `region` (aws, aws-cn, aws-us-gov partitions).
enum STSEndpoint {
    static func forRegion(_ region: String) -> String {
        region.hasPrefix("cn-") ? "https://sts.\(region).amazonaws.com.cn/" : "https://sts.\(region).amazonaws.com/"
    }
}

/// The one STS call Strata makes.
struct STSWebIdentityClient: Sendable {
    let endpoint: String
    let httpClient: any HTTPClient

    private static let operation = "AssumeRoleWithWebIdentity"

    func assumeRole(roleArn: String, sessionName: String, token: String) throws -> Credentials {
        let body = CredentialHTTP.formEncode([
            ("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"), ("RoleArn", roleArn),
            ("RoleSessionName", sessionName), ("WebIdentityToken", token),
        ])
        let request = HTTPRequest(
            method: "POST", url: endpoint,
            headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("Accept", "text/xml")],
            body: Data(body.utf8), timeout: 15)
        return try CredentialHTTP.send(httpClient, request, attempts: 3) { response in
            try parse(response, roleArn: roleArn)
        }
    }

    func parse(_ response: HTTPResponse, roleArn: String) throws -> Credentials {
        let xml = String(decoding: response.body, as: UTF8.self)
        guard response.status == 200 else { throw error(response, xml: xml, roleArn: roleArn) }
        let scope = "Credentials"
        guard let keyId = CredentialHTTP.xmlValue("AccessKeyId", in: xml, within: scope),
            let secret = CredentialHTTP.xmlValue("SecretAccessKey", in: xml, within: scope),
            let token = CredentialHTTP.xmlValue("SessionToken", in: xml, within: scope),
            !keyId.isEmpty, !secret.isEmpty
        else {
            throw StoreError(
                .invalidRequest, operation: Self.operation, key: endpoint, status: response.status,
                message: "the response (\(response.body.count) bytes) has no Credentials element "
                    + "with AccessKeyId, SecretAccessKey and SessionToken",
                hint: "check that the STS endpoint \(endpoint) is really STS")
        }
        var expiration: Date?
        if let e = CredentialHTTP.xmlValue("Expiration", in: xml, within: scope) {
            guard let d = CredentialHTTP.parseDate(e) else {
                throw StoreError(
                    .invalidRequest, operation: Self.operation, key: endpoint,
                    message: "unreadable Expiration \"\(CredentialHTTP.clip(e, 40))\"")
            }
            expiration = d
        }
        return Credentials(accessKeyId: keyId, secretAccessKey: secret, sessionToken: token, expiration: expiration)
    }

    func error(_ response: HTTPResponse, xml: String, roleArn: String) -> StoreError {
        let code = CredentialHTTP.xmlValue("Code", in: xml)
        let message =
            CredentialHTTP.xmlValue("Message", in: xml).map { CredentialHTTP.clip($0) }
            ?? "HTTP \(response.status) from STS"
        let requestId = CredentialHTTP.xmlValue("RequestId", in: xml) ?? response.headers["x-amzn-requestid"]
        let kind: StoreError.Kind
        var hint: String?
        switch (code ?? "", response.status) {
        case ("InvalidIdentityToken", _), ("ExpiredTokenException", _):
            kind = .invalidCredentials
            hint =
                "STS refused the token: check that it is current and that the role's identity provider "
                + "(OIDC issuer and audience) matches it"
        case ("AccessDenied", _), ("IDPRejectedClaim", _), (_, 403):
            kind = .accessDenied
            hint =
                "check that the trust policy of \(roleArn) allows sts:AssumeRoleWithWebIdentity "
                + "for this identity provider and subject (on EKS: the service account's role annotation)"
        case ("Throttling", _), (_, 429):
            kind = .throttled
        case ("IDPCommunicationError", _), (_, 500...599):
            kind = .transient
        default:
            kind = .invalidRequest
        }
        return StoreError(
            kind, operation: Self.operation, key: roleArn, status: response.status, code: code,
            message: message, requestId: requestId, hint: hint)
    }
}
