import Foundation
import Logging
import ServiceLifecycle
import StrataCompactor
import StrataCore
import Synchronization

/// The compactor worker as a swift-service-lifecycle `Service`. The worker's loop is synchronous
/// (the store API blocks), so it runs on its own thread; graceful shutdown (SIGTERM, SIGINT via
/// the ServiceGroup) or task cancellation sets the worker's `StopFlag`, which the compactor checks
/// between steps: a round stops before its upload, or finishes when it is past it. The pointer
/// moves in one conditional PUT, so no stop, however late, leaves a half-published version.
/// `shutdownGrace` bounds the wait: past it, `run` returns and the process may exit with the step
/// unfinished (its files become orphans that `snapctl gc` removes; the pointer is untouched or moved).
// Unchecked: `worker` is not Sendable; only the one thread that `run` starts uses it. The rest is Sendable.
public final class CompactorService: Service, @unchecked Sendable {
    public let stop = StopFlag()
    let worker: CompactorWorker
    let metrics: CompactorMetrics?
    let logger: Logger
    let shutdownGrace: Double
    let onSummary: @Sendable (CompactionSummary) -> Void

    public init(
        worker: CompactorWorker, metrics: CompactorMetrics?, logger: Logger, shutdownGrace: Double = 25,
        onSummary: @escaping @Sendable (CompactionSummary) -> Void = { _ in }
    ) {
        self.worker = worker
        self.metrics = metrics
        self.logger = logger
        self.shutdownGrace = shutdownGrace
        self.onSummary = onSummary
    }

    /// Starts a pass now (POST /wake).
    public func wake() { stop.wake() }

    public func run() async throws {
        let once = Once()
        let (stop, metrics, logger, grace, onSummary) =
            (self.stop, self.metrics, self.logger, self.shutdownGrace, self.onSummary)
        await withTaskCancellationOrGracefulShutdownHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                once.set(c)
                let thread = Thread {
                    self.worker.run(
                        stop: stop,
                        onSummary: { s in
                            metrics?.record(s)
                            onSummary(s)
                        },
                        onError: { collection, error in
                            metrics?.recordError(collection: collection, error)
                        }, onPass: { _ in metrics?.recordPass() })
                    once.resume()
                }
                thread.name = "strata-compactor"
                thread.stackSize = 8 << 20
                thread.start()
            }
        } onCancelOrGracefulShutdown: {
            guard !stop.isSet else { return }
            logger.notice(
                "stop requested; finishing the current step",
                metadata: ["grace_seconds": "\(grace)"])
            stop.set()
            DispatchQueue.global().asyncAfter(deadline: .now() + grace) {
                if once.resume() {
                    logger.warning(
                        """
                        the current step did not end within the grace period; exiting anyway (the pointer \
                        is either untouched or moved whole; unfinished uploads are orphans for `snapctl gc`)
                        """, metadata: ["grace_seconds": "\(grace)"])
                }
            }
        }
    }

    /// Resumes a continuation exactly once, from whichever side gets there first.
    final class Once: Sendable {
        private let state = Mutex<(continuation: CheckedContinuation<Void, Never>?, done: Bool)>((nil, false))

        func set(_ c: CheckedContinuation<Void, Never>) {
            let done = state.withLock {
                if !$0.done { $0.continuation = c }
                return $0.done
            }
            if done { c.resume() }
        }

        /// True when this call resumed it.
        @discardableResult
        func resume() -> Bool {
            state.withLock {
                guard !$0.done else { return false }
                $0.done = true
                $0.continuation?.resume()
                $0.continuation = nil
                return true
            }
        }
    }
}
