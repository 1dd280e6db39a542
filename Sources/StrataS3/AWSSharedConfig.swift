import Foundation
import StrataCore

/// Both AWS shared files, found as the SDKs find them: `AWS_SHARED_CREDENTIALS_FILE` or
/// `~/.aws/credentials`, and `AWS_CONFIG_FILE` or `~/.aws/config`. A missing file is simply empty.
public struct AWSSharedConfig: Sendable {
    public let credentialsPath: String
    public let configPath: String
    public let credentialsFile: AWSConfigFile?
    public let configFile: AWSConfigFile?

    public init(
        credentialsFile: AWSConfigFile?, configFile: AWSConfigFile?, credentialsPath: String,
        configPath: String
    ) {
        self.credentialsFile = credentialsFile
        self.configFile = configFile
        self.credentialsPath = credentialsPath
        self.configPath = configPath
    }

    /// Reads both files. Throws a `.configuration` error naming the file and line when one is
    /// malformed, `.io` when one exists but cannot be read.
    public static func load(environment: [String: String], homeDirectory: String) throws -> AWSSharedConfig {
        let credentialsPath = AWSPaths.expand(
            environment.nonEmpty("AWS_SHARED_CREDENTIALS_FILE") ?? "~/.aws/credentials", home: homeDirectory)
        let configPath = AWSPaths.expand(
            environment.nonEmpty("AWS_CONFIG_FILE") ?? "~/.aws/config",
            home: homeDirectory)
        return AWSSharedConfig(
            credentialsFile: try AWSConfigFile.load(path: credentialsPath, kind: .credentials),
            configFile: try AWSConfigFile.load(path: configPath, kind: .config),
            credentialsPath: credentialsPath, configPath: configPath)
    }

    /// The files in lookup order: a profile's settings in the credentials file win over the same
    /// settings in the config file.
    public var files: [AWSConfigFile] { [credentialsFile, configFile].compactMap { $0 } }

    public func profileExists(_ name: String) -> Bool {
        files.contains { $0.profiles[name] != nil }
    }

    /// The error for a profile that was asked for by name and is in neither file, with what is
    /// there instead.
    public func missingProfileError(_ name: String, namedBy: String) -> StoreError {
        var lines: [String] = []
        for (path, file) in [(credentialsPath, credentialsFile), (configPath, configFile)] {
            guard let file else {
                lines.append("\(path) does not exist")
                continue
            }
            let names = file.profiles.keys.sorted()
            lines.append("\(path) has " + (names.isEmpty ? "no profiles" : "profiles " + names.joined(separator: ", ")))
        }
        var hint = "create it (aws configure --profile \(name)), or set AWS_PROFILE to one of the profiles listed"
        if let header = configFile?.misplacedProfiles[name] {
            hint = "in \(configPath) write the section as [profile \(name)], not \(header)"
        } else if let header = credentialsFile?.misplacedProfiles[name] {
            hint = "in \(credentialsPath) write the section as [\(name)], not \(header)"
        }
        return StoreError(
            .configuration, operation: "select AWS profile", key: name,
            message: "profile \"\(name)\" (from \(namedBy)) does not exist in either file: "
                + lines.joined(separator: "; "),
            hint: hint)
    }
}

/// A setting and where it came from, for diagnostics ("AWS_REGION", "profile dev in /h/.aws/config").
public struct AWSSetting: Sendable, Equatable, CustomStringConvertible {
    public var value: String
    public var source: String

    public init(_ value: String, source: String) {
        self.value = value
        self.source = source
    }

    public var description: String { "\(value) from \(source)" }
}

/// The selected profile: its name, what selected it, and its settings across both files.
public struct AWSProfile: Sendable {
    public let name: String
    /// What chose this profile: "AWS_PROFILE", "the --profile option", or "default".
    public let selectedBy: String
    public let shared: AWSSharedConfig

    public init(name: String, selectedBy: String, shared: AWSSharedConfig) {
        self.name = name
        self.selectedBy = selectedBy
        self.shared = shared
    }

    public var exists: Bool { shared.profileExists(name) }

    /// The profile's section in one file, if that file has it.
    public func section(in file: AWSConfigFile?) -> AWSConfigFile.Section? { file?.profiles[name] }

    /// A setting of the profile (credentials file first, then config file). Empty values count
    /// as unset.
    public func setting(_ key: String) -> AWSSetting? {
        for file in shared.files {
            if let v = file.profiles[name]?[key], !v.isEmpty {
                return AWSSetting(v, source: "profile \(name) in \(file.path)")
            }
        }
        return nil
    }

    /// A key of a nested block of the profile (`s3` → `addressing_style`).
    public func nestedSetting(_ block: String, _ key: String) -> AWSSetting? {
        for file in shared.files {
            if let v = file.profiles[name]?.nested[block.lowercased()]?[key.lowercased()], !v.isEmpty {
                return AWSSetting(v, source: "profile \(name) (\(block).\(key)) in \(file.path)")
            }
        }
        return nil
    }

    /// `endpoint_url` for `service` from the `[services NAME]` section that the profile names with
    /// `services = NAME` (config file only, as the SDKs do).
    public func serviceEndpoint(_ service: String) -> AWSSetting? {
        guard let sectionName = setting("services")?.value, let config = shared.configFile,
            let section = config.sections["services"]?[sectionName],
            let v = section.nested[service]?["endpoint_url"], !v.isEmpty
        else { return nil }
        return AWSSetting(v, source: "[services \(sectionName)] \(service).endpoint_url in \(config.path)")
    }
}

enum AWSPaths {
    /// Expands a leading `~` or `~/` with the given home directory, as the SDKs do for paths in
    /// environment variables and shared files.
    static func expand(_ path: String, home: String) -> String {
        if path == "~" { return home }
        if path.hasPrefix("~/") {
            let base = home.hasSuffix("/") ? String(home.dropLast()) : home
            return base + path.dropFirst()
        }
        return path
    }
}

extension Dictionary where Key == String, Value == String {
    /// The variable's value, or nil when unset or empty (an empty variable counts as unset, as
    /// in the SDKs: `docker run -e AWS_PROFILE=` must not select a profile named "").
    func nonEmpty(_ name: String) -> String? {
        guard let v = self[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else { return nil }
        return v
    }

    /// A boolean variable: "true"/"false" in any case; anything else is nil.
    func flag(_ name: String) -> Bool? {
        switch nonEmpty(name)?.lowercased() {
        case "true": return true
        case "false": return false
        default: return nil
        }
    }
}
