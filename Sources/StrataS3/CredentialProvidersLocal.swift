import Foundation
import StrataCore

/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optional `AWS_SESSION_TOKEN`.
public struct EnvironmentCredentialSource: CredentialSource {
    public let environment: [String: String]
    public var name: String { "environment" }

    public init(environment: [String: String]) {
        self.environment = environment
    }

    public func resolve() throws -> CredentialSourceResult {
        guard let keyId = environment.nonEmpty("AWS_ACCESS_KEY_ID") else {
            if environment.nonEmpty("AWS_SECRET_ACCESS_KEY") != nil {
                return .skipped("AWS_ACCESS_KEY_ID is not set (AWS_SECRET_ACCESS_KEY is set, but is unused without it)")
            }
            return .skipped("AWS_ACCESS_KEY_ID is not set")
        }
        guard let secret = environment.nonEmpty("AWS_SECRET_ACCESS_KEY") else {
            throw StoreError(
                .configuration, operation: "resolve AWS credentials", key: "AWS_SECRET_ACCESS_KEY",
                message: "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
                hint: "set AWS_SECRET_ACCESS_KEY too, or unset AWS_ACCESS_KEY_ID to use another source")
        }
        let token = environment.nonEmpty("AWS_SESSION_TOKEN")
        let what =
            token == nil
            ? "environment (AWS_ACCESS_KEY_ID)" : "environment (AWS_ACCESS_KEY_ID, AWS_SESSION_TOKEN)"
        return .provider(
            StaticCredentialsProvider(
                Credentials(accessKeyId: keyId, secretAccessKey: secret, sessionToken: token), source: what))
    }
}

/// The selected profile of the shared files: static keys, or a role assumed with a web identity
/// token (`role_arn` + `web_identity_token_file`).
///
/// Profiles that need what Strata does not implement (`source_profile` / `credential_source`
/// role chaining, `sso_*`, `credential_process`) fail with an error that says so, rather than
/// falling through to a different identity.
public struct ProfileCredentialSource: CredentialSource {
    public let profile: AWSProfile
    /// Builds the web identity provider for a profile with `role_arn` + `web_identity_token_file`.
    let webIdentity: @Sendable (WebIdentityCredentialSource.Settings) -> any CredentialsProvider

    public var name: String { "profile \(profile.name)" }

    init(
        profile: AWSProfile,
        webIdentity: @escaping @Sendable (WebIdentityCredentialSource.Settings) -> any CredentialsProvider
    ) {
        self.profile = profile
        self.webIdentity = webIdentity
    }

    private func unsupported(_ what: String, _ setting: AWSSetting) -> StoreError {
        StoreError(
            .configuration, operation: "resolve AWS credentials", key: "profile \(profile.name)",
            message: "\(setting.source) uses \(what), which Strata does not support",
            hint: "export temporary keys into the environment with "
                + "`eval \"$(aws configure export-credentials --profile \(profile.name) --format env)\"`, "
                + "or use a profile with aws_access_key_id/aws_secret_access_key")
    }

    public func resolve() throws -> CredentialSourceResult {
        let shared = profile.shared
        guard profile.exists else {
            if profile.selectedBy != "default" {
                throw shared.missingProfileError(profile.name, namedBy: profile.selectedBy)
            }
            return .skipped("no [default] profile in \(shared.credentialsPath) or \(shared.configPath)")
        }
        if let roleArn = profile.setting("role_arn") {
            if let tokenFile = profile.setting("web_identity_token_file") {
                let settings = WebIdentityCredentialSource.Settings(
                    roleArn: roleArn.value, tokenFile: tokenFile.value,
                    sessionName: profile.setting("role_session_name")?.value,
                    origin: "profile \(profile.name)")
                return .provider(webIdentity(settings))
            }
            if let s = profile.setting("source_profile") {
                throw unsupported("role_arn with source_profile (AssumeRole chaining)", s)
            }
            if let s = profile.setting("credential_source") {
                throw unsupported("role_arn with credential_source (AssumeRole)", s)
            }
            throw StoreError(
                .configuration, operation: "resolve AWS credentials", key: "profile \(profile.name)",
                message: "\(roleArn.source) sets role_arn but neither web_identity_token_file, "
                    + "source_profile nor credential_source",
                hint: "add web_identity_token_file, or remove role_arn")
        }
        if let s = profile.setting("sso_session") ?? profile.setting("sso_start_url") {
            throw unsupported("IAM Identity Center (SSO)", s)
        }
        // Key id, secret and token come from the same file: the first one that has a key id.
        for file in shared.files {
            guard let section = file.profiles[profile.name] else { continue }
            guard let keyId = section["aws_access_key_id"], !keyId.isEmpty else { continue }
            let at = "profile \(profile.name) in \(file.path)"
            guard let secret = section["aws_secret_access_key"], !secret.isEmpty else {
                let header =
                    file.kind == .config && profile.name != "default"
                    ? "[profile \(profile.name)]" : "[\(profile.name)]"
                throw StoreError(
                    .configuration, operation: "resolve AWS credentials", key: at,
                    message: "\(at) sets aws_access_key_id but not aws_secret_access_key",
                    hint: "add aws_secret_access_key to \(header) in \(file.path)")
            }
            let token = section["aws_session_token"].flatMap { $0.isEmpty ? nil : $0 }
            return .provider(
                StaticCredentialsProvider(
                    Credentials(accessKeyId: keyId, secretAccessKey: secret, sessionToken: token), source: at))
        }
        if let s = profile.setting("credential_process") {
            throw unsupported("credential_process", s)
        }
        return .skipped(
            "profile \(profile.name) has no aws_access_key_id (looked in "
                + shared.files.map(\.path).joined(separator: " and ") + ")")
    }
}
