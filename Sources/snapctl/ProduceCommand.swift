import ArgumentParser

struct ProduceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce",
        abstract: "Publish NDJSON rows as a run: one delta per collection and one COMPACTION_RUN record.")
}
