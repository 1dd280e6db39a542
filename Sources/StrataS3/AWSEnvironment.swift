import Foundation
import Logging
import StrataCore
import Synchronization

/// Everything `AWSEnvironment` resolved from the environment and the shared files, with where
/// each value came from. No network is involved.
public struct AWSResolvedSettings: Sendable, CustomStringConvertible {
    public var profile: AWSProfile
    public var region: AWSSetting
    /// The S3 endpoint; nil means AWS.
    public var endpoint: AWSSetting?
    /// Where `AssumeRoleWithWebIdentity` goes.
    public var stsEndpoint: AWSSetting
    public var caBundle: AWSSetting?
    /// `s3.addressing_style` of the profile: path (true), virtual (false); nil means the default
    /// (path style for a custom endpoint).
    public var forcePathStyle: Bool?
    public var addressingStyle: AWSSetting?
    public var maxAttempts: AWSSetting?
    public var instanceMetadata: InstanceMetadataCredentialSource.Settings

    /// One line per setting: "region eu-west-1 from AWS_REGION".
    public var lines: [String] {
        var out: [String] = []
        var profileLine = "profile \(profile.name) from \(profile.selectedBy)"
        if !profile.exists {
            profileLine += " (not in \(profile.shared.credentialsPath) or \(profile.shared.configPath))"
        }
        out.append(profileLine)
        out.append("region \(region)")
        if let endpoint {
            out.append("endpoint \(endpoint)")
        } else {
            out.append("endpoint AWS (no AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or profile endpoint_url set)")
        }
        if let addressingStyle {
            out.append("addressing style \(addressingStyle)")
        } else {
            out.append(
                "addressing style "
                    + (endpoint == nil
                        ? "virtual-hosted (default for AWS)"
                        : "path (default for a custom endpoint)"))
        }
        if let caBundle { out.append("CA bundle \(caBundle)") }
        if let maxAttempts { out.append("max attempts \(maxAttempts)") }
        return out
    }

    public var description: String { lines.joined(separator: "; ") }
}

/// Resolves S3 settings and credentials the way the AWS CLI and SDKs do, from an environment
/// and a home directory that the CLI passes in (this library never reads the process
/// environment itself).
///
/// - Profile: the `profile` argument (the CLI's `--profile`), else `AWS_PROFILE`, else
///   `AWS_DEFAULT_PROFILE`, else `default`. A profile named explicitly must exist.
/// - Region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, else `us-east-1`.
/// - S3 endpoint: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's `[services]` section
///   `s3.endpoint_url`, its nested `s3.endpoint_url`, its `endpoint_url`; none means AWS.
///   `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true` (or `ignore_configured_endpoint_urls`) ignores them.
/// - `AWS_CA_BUNDLE` or `ca_bundle`; `AWS_MAX_ATTEMPTS` or `max_attempts`; the profile's
///   `s3.addressing_style` (`path`, `virtual`, `auto`).
/// - Credentials: environment, profile, web identity, container (ECS/EKS), EC2 instance metadata,
///   resolved on the first request (see `AWSCredentialChain`) and shared by every configuration
///   this object returns.
///
/// Thread-safe. The shared files are read once, on the first call that needs them.
public final class AWSEnvironment: Sendable {
    public let environment: [String: String]
    public let homeDirectory: String
    public let httpClient: any HTTPClient
    /// The profile asked for by the caller (`--profile`), which wins over `AWS_PROFILE`.
    public let explicitProfile: String?
    let now: @Sendable () -> Date
    let logger: Logger
    /// Base URL for `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (the ECS agent; tests override it).
    let containerAgentBase: String

    private let cachedSettings = Mutex<Result<AWSResolvedSettings, Error>?>(nil)
    private let cachedChain = Mutex<AWSCredentialChain?>(nil)

    /// - Parameters:
    ///   - environment: the process environment (the CLI passes `ProcessInfo.processInfo.environment`).
    ///   - homeDirectory: where `~/.aws` is.
    ///   - httpClient: used for STS, the container agent and IMDS, only when credentials are needed.
    ///   - profile: a profile chosen on the command line; overrides `AWS_PROFILE`.
    ///   - logger: logs which source provided credentials and failed refreshes; no-op by default.
    ///   - now: the clock for credential expiry (tests inject one).
    public convenience init(
        environment: [String: String], homeDirectory: String, httpClient: any HTTPClient,
        profile: String? = nil,
        logger: Logger = Logger(label: "strata.aws", factory: { _ in SwiftLogNoOpLogHandler() }),
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.init(
            environment: environment, homeDirectory: homeDirectory, httpClient: httpClient, profile: profile,
            logger: logger, now: now, containerAgentBase: ContainerCredentialSource.ecsAgentBase)
    }

    init(
        environment: [String: String], homeDirectory: String, httpClient: any HTTPClient, profile: String?,
        logger: Logger, now: @escaping @Sendable () -> Date, containerAgentBase: String
    ) {
        self.environment = environment
        self.homeDirectory = homeDirectory
        self.httpClient = httpClient
        self.explicitProfile = profile.flatMap { $0.isEmpty ? nil : $0 }
        self.logger = logger
        self.now = now
        self.containerAgentBase = containerAgentBase
    }

    /// The S3 settings of `bucket` with the lazily resolved credential chain. Throws a
    /// `.configuration` error for a missing named profile, a malformed shared file or setting.
    public func s3Configuration(bucket: String) throws -> S3Configuration {
        let s = try settings()
        var config = S3Configuration(
            bucket: bucket, region: s.region.value, endpoint: s.endpoint?.value,
            forcePathStyle: s.forcePathStyle, credentials: try credentialChain())
        config.caBundle = s.caBundle?.value
        if let attempts = s.maxAttempts.flatMap({ Int($0.value) }) { config.retry.maxAttempts = attempts }
        try AWSTransferSettings.resolve(s.profile).apply(to: &config)
        return config
    }

    /// The credential chain shared by every configuration from this environment. Building it does
    /// no I/O beyond reading the shared files.
    public func credentialChain() throws -> AWSCredentialChain {
        let s = try settings()
        return cachedChain.withLock {
            if let cached = $0 { return cached }
            let chain = makeChain(s)
            $0 = chain
            return chain
        }
    }

    /// Where each setting comes from, one line each, for `snapctl` diagnostics. With
    /// `resolveCredentials` the chain is resolved (this may call STS, the container agent or
    /// IMDS) and the line says which source won, or why none did. Never shows a secret.
    public func describe(resolveCredentials: Bool = false) -> String {
        let s: AWSResolvedSettings
        do {
            s = try settings()
        } catch {
            return "configuration error: \(error)"
        }
        var lines = s.lines
        guard let chain = try? credentialChain() else { return lines.joined(separator: "\n") }
        if resolveCredentials {
            do {
                let c = try chain.credentials()
                var line = "credentials from \(chain.source), access key \(Self.mask(c.accessKeyId))"
                if let exp = c.expiration {
                    line += ", expiring \(ISO8601DateFormatter().string(from: exp))"
                }
                lines.append(line)
            } catch {
                lines.append("credentials: \(error)")
            }
        } else if let p = chain.resolvedProvider {
            lines.append("credentials from \(p.source)")
        } else {
            lines.append(
                "credentials not yet resolved; sources in order: "
                    + chain.sources.map(\.name).joined(separator: ", "))
        }
        return lines.joined(separator: "\n")
    }

    /// `AKIA…WXYZ`: enough to tell keys apart, as `aws configure list` does.
    static func mask(_ keyId: String) -> String {
        keyId.count <= 8 ? "****" : String(keyId.prefix(4)) + "…" + String(keyId.suffix(4))
    }

    /// Reads the shared files (once) and resolves every setting.
    public func settings() throws -> AWSResolvedSettings {
        let result = cachedSettings.withLock {
            if let cached = $0 { return cached }
            let result = Result { try resolveSettings() }
            $0 = result
            return result
        }
        return try result.get()
    }

    // MARK: - Resolution

    private func resolveSettings() throws -> AWSResolvedSettings {
        let env = environment
        let shared = try AWSSharedConfig.load(environment: env, homeDirectory: homeDirectory)

        let profileName: String
        let selectedBy: String
        if let p = explicitProfile {
            (profileName, selectedBy) = (p, "the --profile option")
        } else if let p = env.nonEmpty("AWS_PROFILE") {
            (profileName, selectedBy) = (p, "AWS_PROFILE")
        } else if let p = env.nonEmpty("AWS_DEFAULT_PROFILE") {
            (profileName, selectedBy) = (p, "AWS_DEFAULT_PROFILE")
        } else {
            (profileName, selectedBy) = ("default", "default")
        }
        let profile = AWSProfile(name: profileName, selectedBy: selectedBy, shared: shared)
        if selectedBy != "default" && !profile.exists {
            throw shared.missingProfileError(profileName, namedBy: selectedBy)
        }

        func fromEnv(_ name: String) -> AWSSetting? { env.nonEmpty(name).map { AWSSetting($0, source: name) } }

        let region =
            fromEnv("AWS_REGION") ?? fromEnv("AWS_DEFAULT_REGION") ?? profile.setting("region")
            ?? AWSSetting("us-east-1", source: "the default (no AWS_REGION, AWS_DEFAULT_REGION or profile region set)")

        let ignoreEndpoints =
            (env.flag("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
                ?? profile.setting("ignore_configured_endpoint_urls").map { $0.value.lowercased() == "true" }) ?? false
        var endpoint: AWSSetting?
        var stsEndpoint = AWSSetting(STSEndpoint.forRegion(region.value), source: "the regional STS endpoint")
        if !ignoreEndpoints {
            endpoint =
                fromEnv("AWS_ENDPOINT_URL_S3") ?? fromEnv("AWS_ENDPOINT_URL") ?? profile.serviceEndpoint("s3")
                ?? profile.nestedSetting("s3", "endpoint_url") ?? profile.setting("endpoint_url")
            if let e = endpoint { endpoint = try Self.validateEndpoint(e) }
            if let sts = fromEnv("AWS_ENDPOINT_URL_STS") ?? fromEnv("AWS_ENDPOINT_URL")
                ?? profile.serviceEndpoint("sts") ?? profile.setting("endpoint_url")
            {
                stsEndpoint = try Self.validateEndpoint(sts)
            }
        }

        var caBundle = fromEnv("AWS_CA_BUNDLE") ?? profile.setting("ca_bundle")
        if var ca = caBundle {
            ca.value = AWSPaths.expand(ca.value, home: homeDirectory)
            guard FileManager.default.fileExists(atPath: ca.value) else {
                throw StoreError(
                    .configuration, operation: "resolve AWS settings", key: ca.value,
                    message: "the CA bundle named by \(ca.source) does not exist",
                    hint: "point it at a PEM file of trusted certificates, or unset it")
            }
            caBundle = ca
        }

        var forcePathStyle: Bool?
        let addressing = profile.nestedSetting("s3", "addressing_style")
        if let addressing {
            switch addressing.value.lowercased() {
            case "path": forcePathStyle = true
            case "virtual": forcePathStyle = false
            case "auto": forcePathStyle = nil
            default:
                throw StoreError(
                    .configuration, operation: "resolve AWS settings", key: addressing.source,
                    message: "addressing_style \"\(addressing.value)\" is not path, virtual or auto")
            }
        }

        let maxAttempts = fromEnv("AWS_MAX_ATTEMPTS") ?? profile.setting("max_attempts")
        if let m = maxAttempts, (Int(m.value) ?? 0) < 1 {
            throw StoreError(
                .configuration, operation: "resolve AWS settings", key: m.source,
                message: "max attempts \"\(m.value)\" is not a whole number of at least 1")
        }

        return AWSResolvedSettings(
            profile: profile, region: region, endpoint: endpoint, stsEndpoint: stsEndpoint, caBundle: caBundle,
            forcePathStyle: forcePathStyle, addressingStyle: addressing, maxAttempts: maxAttempts,
            instanceMetadata: InstanceMetadataCredentialSource.Settings.resolve(environment: env, profile: profile))
    }

    /// An endpoint must be an absolute http(s) URL with a host; a trailing slash is dropped.
    static func validateEndpoint(_ setting: AWSSetting) throws -> AWSSetting {
        var s = setting
        while s.value.hasSuffix("/") { s.value.removeLast() }
        guard let comps = URLComponents(string: s.value), let scheme = comps.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = comps.host, !host.isEmpty
        else {
            throw StoreError(
                .configuration, operation: "resolve AWS settings", key: setting.source,
                message: "endpoint \"\(setting.value)\" is not an http(s) URL with a host",
                hint: "write it like https://s3.example.com or http://127.0.0.1:9000")
        }
        return s
    }

    private func makeChain(_ s: AWSResolvedSettings) -> AWSCredentialChain {
        let client = httpClient
        let now = self.now
        let home = homeDirectory
        let sts = s.stsEndpoint.value
        let logger = self.logger
        let webIdentity: @Sendable (WebIdentityCredentialSource.Settings) -> any CredentialsProvider = { w in
            var w = w
            w.tokenFile = AWSPaths.expand(w.tokenFile, home: home)
            return WebIdentityCredentialSource.provider(
                w, stsEndpoint: sts, httpClient: client, now: now,
                logger: logger)
        }
        return AWSCredentialChain(
            sources: [
                EnvironmentCredentialSource(environment: environment),
                ProfileCredentialSource(profile: s.profile, webIdentity: webIdentity),
                WebIdentityCredentialSource(environment: environment, makeProvider: webIdentity),
                ContainerCredentialSource(
                    environment: environment, httpClient: client, now: now,
                    relativeBase: containerAgentBase, logger: logger),
                InstanceMetadataCredentialSource(
                    settings: s.instanceMetadata, httpClient: client, now: now,
                    logger: logger),
            ], logger: logger)
    }
}
