import ArgumentParser

struct QueryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Exact nearest neighbours of an id or a vector in a collection's snapshot.")
}
