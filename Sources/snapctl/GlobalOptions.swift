import ArgumentParser
import Foundation
import Logging
import StrataCore

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Store URL: s3://bucket[/prefix] or file:///dir (default: $STRATA_STORE).",
            valueName: "url"))
    var store: String?

    @Option(name: .long, help: "AWS profile from ~/.aws/config and ~/.aws/credentials (default: $AWS_PROFILE).")
    var profile: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error (default: info).")
    var logLevel: String?

    @Option(name: .long, help: "Log format: human or json (default: human on a terminal, json otherwise).")
    var logFormat: String?

    var environment: [String: String] { ProcessInfo.processInfo.environment }

    func location() throws -> StoreLocation {
        guard let raw = store ?? environment["STRATA_STORE"], !raw.isEmpty else {
            throw CLIError.usage(
                "no store given: pass --store s3://bucket[/prefix] or file:///dir, or set STRATA_STORE")
        }
        return try StoreLocation.parse(raw)
    }

    func logger(_ label: String = "snapctl") -> Logger {
        StrataLogHandler.bootstrapOnce(format: logFormat, level: logLevel, environment: environment)
        return Logger(label: label)
    }

    func openStore() throws -> (store: any ObjectStore, layout: Layout, location: StoreLocation) {
        let loc = try location()
        let (store, layout) = try StoreFactory.open(
            loc, environment: environment, profile: profile,
            logger: logger("strata.store"))
        return (store, layout, loc)
    }
}

extension StrataLogHandler {
    private static let once = NSLock()
    nonisolated(unsafe) private static var done = false
    static func bootstrapOnce(format: String?, level: String?, environment: [String: String]) {
        once.lock()
        defer { once.unlock() }
        if done { return }
        done = true
        bootstrap(format: format, level: level, environment: environment)
    }
}
