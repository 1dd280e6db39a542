import ArgumentParser

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Explain what is wrong with a store, its collections and runs, and what to do.")
}
