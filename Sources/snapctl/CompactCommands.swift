import ArgumentParser
import Dispatch
import Foundation
import Logging
import ServiceLifecycle
import StrataCompactor
import StrataCore
import StrataPages
import StrataService
import Synchronization

/// Options shared by `compact` and `compactor`.
struct CompactorOptions: ParsableArguments {
    @Option(help: "Runs applied per publish at most.") var maxRuns: Int = 500
    @Option(help: "Rows (upserts + deletes) applied per publish at most.") var maxRows: Int = 2_000_000
    @Option(help: "Delta bytes applied per publish at most.") var maxBytes: Int64 = 4 << 30
    @Option(help: "Where the base snapshot lives: s3 (temporary directory), cache (keep verified versions), auto.")
    var cacheMode: String = "auto"
    @Option(help: "Cache directory for cache/auto mode (default: $STRATA_CACHE_DIR).") var cacheDir: String?
    @Flag(help: "Allow a store without conditional writes; run exactly one compactor then.") var singleWriter = false
    @Option(help: "Lease duration in seconds.") var leaseSeconds: Double = 120
    @Flag(help: "Skip SQLite's quick_check of the merged snapshot.") var noIntegrityCheck = false
    @Option(
        help: ArgumentHelp(
            "How long deletes are kept as tombstones (e.g. 7d, 36h, 90m); runs created earlier are quarantined tooLate.",
            valueName: "duration"))
    var lateRunWindow: String = "7d"
    @Option(
        help: ArgumentHelp(
            "Also write each version, materialized, to DIR/{collection}/{version}/ (shared-directory mode).",
            valueName: "dir"))
    var publishDir: String?
    @Option(help: "Versions kept per collection in --publish-dir.") var publishKeep: Int = 3
    @Option(help: "How patch pages are stored: zero-run, zlib (level 1), zlib:N (level N, 1-9) or none.")
    var pageCompression: String = "zero-run"
    @Option(help: "Single patches at the end of a chain before they are merged into one (chain policy K).")
    var chainMaxTail: Int = PageChainPolicy().maxTailLength
    @Option(help: "Merged patches on a chain before every patch is merged into one.")
    var chainMaxMerged: Int = PageChainPolicy().maxMergedPatches
    @Option(help: "A new base when a chain's bytes would pass this share of the base's (0-1; cold reads <= 1+share).")
    var chainPatchShare: Double = PageChainPolicy().maxPatchShare

    func settings(environment: [String: String]) throws -> CompactorSettings {
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        let hostname = String(cString: host)
        var s = CompactorSettings(
            compactorId: "\(hostname)-\(getpid())-\(Identifiers.make().suffix(6))", host: hostname)
        guard let mode = CacheMode(rawValue: cacheMode) else {
            throw CLIError.usage("--cache-mode \(cacheMode): expected s3, cache or auto")
        }
        guard maxRuns > 0, maxRows > 0, maxBytes > 0 else {
            throw CLIError.usage("--max-runs, --max-rows and --max-bytes must be positive")
        }
        s.cacheMode = mode
        s.cacheDirectory = cacheDir ?? environment["STRATA_CACHE_DIR"]
        s.maxRunsPerPublish = maxRuns
        s.maxRowsPerPublish = maxRows
        s.maxBytesPerPublish = maxBytes
        s.singleWriter = singleWriter
        s.leaseDuration = leaseSeconds
        s.integrityCheck = !noIntegrityCheck
        guard let window = CompactorSettings.parseDuration(lateRunWindow), window > 0 else {
            throw CLIError.usage("--late-run-window \(lateRunWindow): expected a positive duration like 7d, 36h or 90m")
        }
        s.lateRunWindow = window
        switch pageCompression {
        case "zlib": s.pageCompression = .zlib(level: 1)
        case "zero-run": s.pageCompression = .zeroRun
        case "none": s.pageCompression = .none
        case let z where z.hasPrefix("zlib:"):
            guard let level = Int32(z.dropFirst(5)), (1...9).contains(level) else {
                throw CLIError.usage("--page-compression \(z): the zlib level is 1 to 9 (zlib:1)")
            }
            s.pageCompression = .zlib(level: level)
        default:
            throw CLIError.usage("--page-compression \(pageCompression): expected zlib, zlib:N, zero-run or none")
        }
        guard chainMaxTail >= 1, chainMaxMerged >= 1, chainPatchShare > 0, chainPatchShare <= 1 else {
            throw CLIError.usage(
                "--chain-max-tail and --chain-max-merged must be at least 1, --chain-patch-share in (0, 1]")
        }
        s.chainPolicy.maxTailLength = chainMaxTail
        s.chainPolicy.maxMergedPatches = chainMaxMerged
        s.chainPolicy.maxPatchShare = chainPatchShare
        s.strataVersion = StrataVersion.current
        s.crashAt = environment["STRATA_CRASH_AT"]
        s.pauseAt = environment["STRATA_PAUSE_AT"]
        if let t = environment["TMPDIR"] { s.workDirectory = t }
        return s
    }
}

struct CompactCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compact",
        abstract: "Apply every pending run to a collection and publish one new version (one-shot).",
        discussion: """
            Reads the pointer, takes the base snapshot (from the cache when it holds it), applies
            pending runs in order, checks the counts and SQLite's integrity, uploads the version
            (manifest last) and moves the pointer with a conditional write. Runs that cannot be
            applied are quarantined with a reason and listed with their quarantine record's key;
            the rest proceed. Each id is written only by a run later (creation time, then run id)
            than the run that last wrote it, so a run that arrives late never overwrites newer rows.
            A run created before the late-run window (--late-run-window, default 7d) is quarantined
            tooLate; --allow-late RUN_ID applies it anyway under the same per-row rule.
            Exit codes: 0 every collection published or up to date; 1 a collection failed (the
            others still ran); 2 usage or configuration error; 3 no failure, but a run was
            quarantined or deferred to a later round (by the limits, deletes waiting for a
            collection's first upsert, or a run record of a newer format than this snapctl reads).
            Example: snapctl compact --collection lines --collection words
            Example: snapctl compact --collection lines --allow-late 20261121T201408123Z-4f1c0a9be203
            """)
    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "Collection to compact (repeatable).") var collection: [String]
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Apply this run even though it is older than the late-run window (repeatable).", valueName: "run-id"))
    var allowLate: [String] = []
    @OptionGroup var options: CompactorOptions
    @Flag(help: "Print the summary as JSON.") var json = false

    func run() throws {
        try runReportingErrors {
            guard !collection.isEmpty else { throw CLIError.usage("name at least one --collection") }
            let (store, layout, _) = try global.openStore()
            for id in allowLate where !Identifiers.isValid(id) {
                throw CLIError.usage("--allow-late \(id): not a run id (see `snapctl verify` or `snapctl runs`)")
            }
            var settings = try options.settings(environment: global.environment)
            settings.allowLateRuns = Set(allowLate)
            let compactor = Compactor(
                store: store, layout: layout, settings: settings,
                logger: global.logger("strata.compactor"))
            var failed = false
            var attention = false
            var summaries: [CompactionSummary] = []
            let publishDir = try PublishDirSupport(
                options: options, store: store, layout: layout,
                environment: global.environment)
            for c in collection {
                do {
                    let s = try Progress.run("compacting \(c)", total: nil, json: json) {
                        try compactor.compact(collection: c)
                    }
                    summaries.append(s)
                    if !json { printSummary(s) }
                    if !s.runsQuarantined.isEmpty || s.runsDeferred > 0 { attention = true }
                    do { try publishDir?.sync(s, logger: global.logger("strata.publish-dir")) } catch {
                        failed = true
                        FileHandle.standardError.write(
                            Data("snapctl: \(c): could not write --publish-dir: \(describe(error).1)\n".utf8))
                    }
                } catch {
                    failed = true
                    let (_, text) = describe(error)
                    FileHandle.standardError.write(Data("snapctl: compaction of \(c) failed: \(text)\n".utf8))
                }
            }
            if json {
                let data = try StrataJSON.encoder().encode(summaries)
                print(String(decoding: data, as: UTF8.self))
            }
            if failed { throw ExitCode(ExitCodes.failure) }
            if attention { throw ExitCode(ExitCodes.quarantinedOrDeferred) }
        }
    }
}

func printSummary(_ s: CompactionSummary) {
    func mib(_ b: Int64) -> String { String(format: "%.2f MiB", Double(b) / 1_048_576) }
    switch s.outcome {
    case .leaseHeld:
        print("\(s.collection): skipped, lease held by \(s.leaseHolder ?? "another compactor")")
        return
    case .upToDate:
        print(
            "\(s.collection): up to date at \(s.baseVersion ?? "(no version yet)")"
                + (s.runsDeferred > 0 ? " (\(s.runsDeferred) run(s) deferred)" : ""))
    case .published:
        print("\(s.collection): published \(s.newVersion!) (parent \(s.baseVersion ?? "none"))")
    }
    if s.outcome == .published {
        print(
            "  runs applied    \(s.runsApplied.count)"
                + (s.runsDeferred > 0 ? " (\(s.runsDeferred) left for the next round)" : ""))
        print(
            "  rows            \(s.rowsBefore) -> \(s.rowsAfter)  (upserted \(s.rowsUpserted), new \(s.newIds), deleted \(s.rowsDeleted), of which existed \(s.deletedExisting))"
        )
        print(
            "  bytes           down \(mib(s.bytesDownloaded))\(s.baseFromCache ? " (base from cache)" : ""), up \(mib(s.bytesUploaded))"
        )
        if s.writesSuperseded > 0 {
            print("  superseded      \(s.writesSuperseded) write(s) lost to a later run's write of the same id")
        }
        let purged = s.tombstonesPurged > 0 ? " (\(s.tombstonesPurged) purged, past the window)" : ""
        print("  tombstones      \(s.tombstones)" + purged)
        if s.upgradedFromFormat != nil { print("  format          snapshot upgraded from format 1 to 2") }
        if s.conflicts > 0 { print("  conflicts       \(s.conflicts) (rebuilt on a newer version)") }
    }
    for q in s.runsQuarantined {
        print("  QUARANTINED     \(q.runId): \(q.reason)")
        if let k = q.key { print("    record        \(k)") }
        if let d = q.deltaKey { print("    delta         \(d)") }
        print("    why           \(q.detail)")
    }
    let order = ["pointer", "base", "plan", "deltas", "merge", "check", "upload", "publish", "total"]
    let steps = order.compactMap { k in s.seconds[k].map { "\(k) \(String(format: "%.3f", $0))s" } }
    print("  time            " + steps.joined(separator: ", "))
}

struct CompactorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compactor",
        abstract: "Run the compactor worker: poll collections and publish new versions until stopped.",
        discussion: """
            The container's entry point. Compacts each collection in turn, sleeps --poll between
            passes, backs off a failing collection, and stops cleanly on SIGTERM or SIGINT (the
            current round is abandoned before its upload or finished if it is past it; never half
            published; --shutdown-grace bounds the wait). Several workers may share a bucket: a
            lease avoids duplicate work and the conditional pointer write keeps them correct.
            With --metrics-addr (or $STRATA_METRICS_ADDR) it serves GET /metrics (Prometheus),
            /healthz, /readyz and POST /wake (start a pass now) on that address.
            Example: snapctl compactor --collections lines,words --poll 10 --metrics-addr 0.0.0.0:9090
            """)
    @OptionGroup var global: GlobalOptions
    @Option(help: "Comma-separated collections.") var collections: String
    @Option(help: "Seconds between passes.") var poll: Double = 10
    @Option(help: "Longest backoff for a failing collection, in seconds.") var maxBackoff: Double = 300
    @Option(help: "Stop after this many passes (default: run until stopped).") var passes: Int?
    @Option(
        help: ArgumentHelp(
            "Serve /metrics, /healthz, /readyz and POST /wake here (default: $STRATA_METRICS_ADDR; "
                + "off when neither is set).", valueName: "host:port"))
    var metricsAddr: String?
    @Option(help: "Seconds a stop waits for the current step before exiting anyway.") var shutdownGrace: Double = 25
    @Flag(
        help: ArgumentHelp(
            "Share the collections with the other workers on this store: heartbeats under "
                + ".strata-workers/ and rendezvous hashing; a dead worker's collections move after "
                + "--lease-seconds (default: $STRATA_COOPERATE=1)."))
    var cooperate = false
    @OptionGroup var options: CompactorOptions

    func run() throws {
        try runReportingErrors {
            let list = collections.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
                !$0.isEmpty
            }
            guard !list.isEmpty else { throw CLIError.usage("--collections: name at least one collection") }
            for c in list { try Layout.validate(collection: c) }
            guard shutdownGrace > 0 else { throw CLIError.usage("--shutdown-grace must be positive") }
            let env = global.environment
            var listen: ListenAddress? = nil
            if let raw = metricsAddr ?? env["STRATA_METRICS_ADDR"], !raw.isEmpty {
                do {
                    listen = try ListenAddress.parse(
                        raw, what: metricsAddr != nil ? "--metrics-addr" : "STRATA_METRICS_ADDR")
                } catch let e as StrataError {
                    throw CLIError.usage(e.description)
                }
            }
            let (rawStore, layout, _) = try global.openStore()
            let logger = global.logger("strata.compactor")
            let metrics = listen == nil ? nil : CompactorMetrics()
            let store: any ObjectStore = metrics.map { MetricsStore(rawStore, metrics: $0) } ?? rawStore
            let settings = try options.settings(environment: env)
            let compactor = Compactor(store: store, layout: layout, settings: settings, logger: logger)
            do { try compactor.checkStore() } catch {
                compactor.reportRefusal(collections: list, error)  // leaves a status verify shows
                throw error
            }
            var workerSettings = CompactorWorker.Settings(
                collections: list, pollInterval: poll, maxBackoff: maxBackoff,
                maxPasses: passes)
            var membership: WorkerMembership? = nil
            if cooperate || env["STRATA_COOPERATE"] == "1" {
                let m = try WorkerMembership(
                    store: store, layout: layout, workerId: settings.compactorId,
                    host: settings.host, ttl: settings.leaseDuration,
                    logger: global.logger("strata.workers"))
                workerSettings.maxSleep = m.beatInterval
                membership = m
            }
            let publishDir = try PublishDirSupport(
                options: options, store: store, layout: layout,
                environment: global.environment)
            let worker = CompactorWorker(settings: workerSettings, logger: logger) { c, stop in
                let s = try compactor.compact(collection: c, stop: stop)
                do { try publishDir?.sync(s, logger: logger) } catch {
                    logger.error(
                        "could not write the shared directory", metadata: ["collection": "\(c)", "error": "\(error)"])
                }
                return s
            }
            if let membership { worker.assign = { membership.assign($0) } }
            let service = CompactorService(
                worker: worker, metrics: metrics, logger: logger, shutdownGrace: shutdownGrace)
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
            if let listen, let metrics {
                metrics.register(collections: list)
                let readiness = Readiness(store: store, layout: layout)
                readiness.markProbePassed()
                let health = try HealthServer(
                    address: listen, metrics: metrics, readiness: readiness,
                    logger: global.logger("strata.metrics")
                ) { service.wake() }
                services.append(.init(service: health, serviceName: "metrics"))
            }
            // Shut down in reverse order: the worker first, the metrics server (scrapable meanwhile) last.
            // The worker ending (--passes, or a stop) shuts the group down gracefully; that is not a failure.
            services.append(
                .init(
                    service: service, successTerminationBehavior: .gracefullyShutdownGroup,
                    serviceName: "compactor"))
            let group = ServiceGroup(
                configuration: .init(
                    services: services, gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: global.logger("strata.lifecycle")))
            let failure = ResultBox()
            let done = DispatchSemaphore(value: 0)
            Task {
                do { try await group.run() } catch { failure.error = error }
                done.signal()
            }
            done.wait()
            membership?.leave()
            if let error = failure.error { throw error }
        }
    }

    final class ResultBox: Sendable {
        private let value = Mutex<Error?>(nil)
        var error: Error? {
            get { value.withLock { $0 } }
            set { value.withLock { $0 = newValue } }
        }
    }
}
