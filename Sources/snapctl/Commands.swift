import ArgumentParser

extension Snapctl {
    /// Every top-level command. Each lives in its own file.
    static let commands: [ParsableCommand.Type] = [
        StoreCommand.self,
        ProduceCommand.self,
        CompactCommand.self,
        CompactorCommand.self,
        HealthCommand.self,
        VerifyCommand.self,
        GetCommand.self,
        QueryCommand.self,
        LsCommand.self,
        VersionsCommand.self,
        ShowCommand.self,
        RunsCommand.self,
        RollbackCommand.self,
        GcCommand.self,
        PresignCommand.self,
        PullCommand.self,
        PinCommand.self,
    ]
}
