import Foundation
import Logging
import StrataCore

/// The long-running worker (the container's entry point): compacts each collection in turn,
/// sleeps `pollInterval` between passes, backs off a collection that keeps failing, and returns
/// when `stop` is set, never in the middle of a publish.
public final class CompactorWorker {
    public struct Settings: Sendable {
        public var collections: [String]
        public var pollInterval: Double = 10
        /// A failing collection waits pollInterval × 2^failures, up to this.
        public var maxBackoff: Double = 300
        /// Stop after this many passes (nil: until stopped). For tests and cron-like use.
        public var maxPasses: Int?
        /// Longest sleep between passes whatever pollInterval says (heartbeats must stay fresh).
        public var maxSleep: Double?

        public init(collections: [String], pollInterval: Double = 10, maxBackoff: Double = 300, maxPasses: Int? = nil) {
            self.collections = collections
            self.pollInterval = pollInterval
            self.maxBackoff = maxBackoff
            self.maxPasses = maxPasses
        }
    }

    let compact: (String, StopFlag) throws -> CompactionSummary
    let settings: Settings
    let logger: Logger
    /// Chooses, at the start of each pass, which of the collections this worker compacts (the
    /// rendezvous assignment among live workers); nil: all of them.
    public var assign: (([String]) -> [String])?

    /// `compact` is one round for one collection (normally `Compactor.compact`).
    public init(settings: Settings, logger: Logger, compact: @escaping (String, StopFlag) throws -> CompactionSummary) {
        self.settings = settings
        self.logger = logger
        self.compact = compact
    }

    /// Runs passes until `stop` is set (or `maxPasses`). `onSummary` sees every round's summary,
    /// `onError` every failed round (collection, error), `onPass` the end of every pass.
    public func run(
        stop: StopFlag, onSummary: (CompactionSummary) -> Void = { _ in },
        onError: (String, Error) -> Void = { _, _ in }, onPass: (Int) -> Void = { _ in }
    ) {
        var failures: [String: Int] = [:]
        var notBefore: [String: Date] = [:]
        var passes = 0
        logger.info(
            "compactor worker started",
            metadata: [
                "collections": "\(settings.collections.joined(separator: ","))",
                "poll_seconds": "\(settings.pollInterval)",
            ])
        while !stop.isSet {
            for c in assign?(settings.collections) ?? settings.collections {
                if stop.isSet { break }
                if let t = notBefore[c], t > Date() { continue }
                do {
                    let s = try compact(c, stop)
                    onSummary(s)
                    failures[c] = 0
                    notBefore[c] = nil
                    // Runs left by the per-publish limits: go again without sleeping.
                    if s.runsDeferred > 0 { notBefore[c] = Date.distantPast }
                } catch is CancellationError {
                    break
                } catch {
                    onError(c, error)
                    let n = (failures[c] ?? 0) + 1
                    failures[c] = n
                    let delay = min(settings.maxBackoff, settings.pollInterval * pow(2, Double(n - 1)))
                    notBefore[c] = Date().addingTimeInterval(delay)
                    logger.error(
                        "compaction failed",
                        metadata: [
                            "collection": "\(c)", "error": "\(error)",
                            "failures": "\(n)", "retry_in_seconds": "\(Int(delay))",
                        ])
                }
            }
            passes += 1
            onPass(passes)
            if let max = settings.maxPasses, passes >= max { break }
            let hurry = settings.collections.contains { notBefore[$0] == Date.distantPast }
            if !hurry { stop.wait(seconds: min(settings.pollInterval, settings.maxSleep ?? .infinity)) }
        }
        logger.info("compactor worker stopped", metadata: ["passes": "\(passes)"])
    }
}
