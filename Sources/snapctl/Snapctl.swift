import ArgumentParser
import Foundation

@main
struct Snapctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapctl",
        abstract: "Operate Strata: vector-collection snapshots on S3-compatible object storage.",
        discussion: """
            Every command takes --store URL (s3://bucket[/prefix] or file:///dir), defaulting to
            $STRATA_STORE. For S3, endpoint, region and credentials follow the AWS conventions:
            AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_REGION / AWS_DEFAULT_REGION,
            AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE with
            ~/.aws/credentials and ~/.aws/config, web identity, ECS and EC2 instance roles.
            """,
        version: StrataVersion.current,
        subcommands: Snapctl.commands
    )

    /// Like ArgumentParser's, but a usage error exits 2 (our documented code), not 64.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(ExitCodes.usage)
            }
            exit(withError: error)
        }
    }
}

enum StrataVersion {
    static let current = "0.1.0"
}
