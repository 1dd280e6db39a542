import ArgumentParser

struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Low-level object commands, like `aws s3`: ls, get, put, rm, presign, probe, mb.",
        subcommands: []
    )
}
