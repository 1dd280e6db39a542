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
}

enum StrataVersion {
    static let current = "0.1.0"
}
