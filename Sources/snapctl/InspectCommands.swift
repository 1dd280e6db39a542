import ArgumentParser
import Foundation
import StrataCore
import StrataInspect

func mib(_ bytes: Int64) -> String { String(format: "%.2f MiB", Double(bytes) / 1_048_576) }

func printJSON<T: Encodable>(_ value: T) throws {
    print(String(decoding: try StrataJSON.encoder().encode(value), as: UTF8.self))
}

struct LsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List collections with their pointer version, rows, size and pending runs.",
        discussion: "Example: snapctl ls --store s3://my-bucket")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print JSON.") var json = false

    struct Row: Codable {
        var collection: String
        var version: String?
        var rows: Int?
        var bytes: Int64?
        var pending: Int
        var quarantined: Int
        var oldestPendingAgeSeconds: Double?
    }

    func run() throws {
        try runReportingErrors {
            let (store, layout, _) = try global.openStore()
            let ledger = RunLedger(store: store, layout: layout)
            var rows: [Row] = []
            for c in try SnapshotLocator(store: store, layout: layout).collections() {
                let l = try ledger.ledger(c)
                let head = l.history.first
                let oldest = l.pending.first?.createdDate.map { Date().timeIntervalSince($0) }
                rows.append(
                    Row(
                        collection: c, version: l.pointerVersion, rows: head?.rowCount,
                        bytes: head.map(\.materializedSize), pending: l.pending.count,
                        quarantined: l.quarantined.count, oldestPendingAgeSeconds: oldest))
            }
            if json { return try printJSON(rows) }
            if rows.isEmpty {
                print("no collections in \(store.location)")
                return
            }
            print(
                "COLLECTION".padding(toLength: 16, withPad: " ", startingAt: 0)
                    + "VERSION".padding(toLength: 34, withPad: " ", startingAt: 0)
                    + "ROWS".leftPadded(10) + "SIZE".leftPadded(12) + "PENDING".leftPadded(9)
                    + "QUARANTINED".leftPadded(13))
            for r in rows {
                print(
                    r.collection.padding(toLength: 16, withPad: " ", startingAt: 0)
                        + (r.version ?? "(none)").padding(toLength: 34, withPad: " ", startingAt: 0)
                        + (r.rows.map(String.init) ?? "-").leftPadded(10) + (r.bytes.map(mib) ?? "-").leftPadded(12)
                        + String(r.pending).leftPadded(9) + String(r.quarantined).leftPadded(13))
            }
        }
    }
}

struct VersionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "versions",
        abstract: "A collection's versions, newest first: rows, size, runs applied, and which is the pointer's.",
        discussion: "Example: snapctl versions lines")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Collection.") var collection: String
    @Flag(help: "Print JSON.") var json = false

    struct Row: Codable {
        var version: String
        var current: Bool
        var published: Bool
        var parent: String?
        var rows: Int?
        var bytes: Int64?
        var runsApplied: Int?
        var note: String?
        var createdAt: Date?
    }

    func run() throws {
        try runReportingErrors {
            try Layout.validate(collection: collection)
            let (store, layout, _) = try global.openStore()
            let ledger = RunLedger(store: store, layout: layout)
            let (pointer, history) = try ledger.history(collection)
            let ancestry = Set(history.map(\.version))
            let locator = SnapshotLocator(store: store, layout: layout)
            var rows: [Row] = []
            for v in try locator.versions(collection).reversed() {
                let m = history.first { $0.version == v } ?? (try? locator.manifest(collection, version: v))
                rows.append(
                    Row(
                        version: v, current: v == pointer, published: ancestry.contains(v), parent: m?.parentVersion,
                        rows: m?.rowCount, bytes: m.map(\.materializedSize),
                        runsApplied: m?.appliedRuns.count, note: m?.note, createdAt: m?.createdAt))
            }
            if json { return try printJSON(rows) }
            if rows.isEmpty {
                print("\(collection) has no versions")
                return
            }
            for r in rows {
                let mark = r.current ? "* " : (r.published ? "  " : "? ")
                var line =
                    mark + r.version
                    + (r.rows.map { String($0).leftPadded(10) + " rows" } ?? "  (no manifest)".leftPadded(15))
                line += (r.bytes.map(mib) ?? "").leftPadded(12) + "  +\(r.runsApplied ?? 0) runs"
                if let n = r.note { line += "  \(n)" }
                print(line)
            }
            print("\n* the pointer's version   ? not in the pointer's history (unpublished; `snapctl gc` removes it)")
        }
    }
}

struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "A version's manifest and statistics (default: the pointer's version).",
        discussion: "Example: snapctl show lines 20261121T204743355Z-39f9a720b193")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Collection.") var collection: String
    @Argument(help: "Version (default: the pointer's).") var version: String?

    func run() throws {
        try runReportingErrors {
            try Layout.validate(collection: collection)
            let (store, layout, _) = try global.openStore()
            let locator = SnapshotLocator(store: store, layout: layout)
            guard let v = try version ?? locator.pointer(collection)?.version else {
                throw CLIError.failed(
                    "\(collection) has no pointer; name a version (see `snapctl versions \(collection)`)")
            }
            try printJSON(try locator.manifest(collection, version: v))
        }
    }
}

struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs",
        abstract: "COMPACTION_RUN records per collection: pending, applied, rolled_back, quarantined (with reasons), "
            + "invalid or deferred.",
        discussion: "Example: snapctl runs --quarantined --collection lines")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Only this collection (repeatable).") var collection: [String] = []
    @Flag(help: "Only pending runs.") var pending = false
    @Flag(help: "Only quarantined runs.") var quarantined = false
    @Flag(help: "Print JSON.") var json = false

    struct Row: Codable {
        var runId: String
        var collection: String
        var status: String
        var createdAt: String?
        var upserts: Int?
        var deletes: Int?
        var reason: String?
        var detail: String?
        var labels: [String: String]?
    }

    func run() throws {
        try runReportingErrors {
            let (store, layout, _) = try global.openStore()
            let ledger = RunLedger(store: store, layout: layout)
            try ledger.loadRecords()
            let names =
                collection.isEmpty ? try SnapshotLocator(store: store, layout: layout).collections() : collection
            var rows: [Row] = []
            for c in names {
                // One state per run, as the compactor and verify classify it (the shared RunIndex).
                for run in try ledger.ledger(c).runs.runs.values.sorted(by: { $0.runId < $1.runId }) {
                    let d = run.record?.delta(for: c)
                    let q = run.state == .quarantined ? run.quarantine : nil
                    let reason =
                        q?.reason ?? (run.state == .invalid ? "invalidRecord" : run.requeued ? "requeued" : nil)
                    rows.append(
                        Row(
                            runId: run.runId, collection: c, status: run.state.rawValue,
                            createdAt: run.record?.createdAt, upserts: d?.upserts, deletes: d?.deletes,
                            reason: reason, detail: q?.detail ?? run.problem?.error,
                            labels: run.record.flatMap { $0.labels.isEmpty ? nil : $0.labels }))
                }
            }
            if pending { rows = rows.filter { $0.status == "pending" } }
            if quarantined { rows = rows.filter { $0.status == "quarantined" } }
            if json { return try printJSON(rows) }
            for r in rows {
                var line =
                    "\(r.runId)  \(r.collection.padding(toLength: 12, withPad: " ", startingAt: 0)) \(r.status.padding(toLength: 12, withPad: " ", startingAt: 0))"
                if let u = r.upserts, let d = r.deletes { line += " +\(u) -\(d)" }
                if let reason = r.reason { line += "  \(reason): \(r.detail ?? "")" }
                print(line)
            }
            if rows.isEmpty { print("no runs match") }
            for (key, why) in ledger.unreadable.sorted(by: { $0.key < $1.key }) { print("UNREADABLE \(key): \(why)") }
        }
    }
}

struct PresignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "presign",
        abstract: "Presigned URLs for every object of a version and its manifest, for a reader without credentials.",
        discussion: "Example: snapctl presign lines --expires 2h > urls.txt")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Collection.") var collection: String
    @Argument(help: "Version (default: the pointer's).") var version: String?
    @Option(help: "Lifetime: seconds, or with a unit (30m, 1h, 7d); at most 7 days.") var expires: String = "1h"

    func run() throws {
        try runReportingErrors {
            try Layout.validate(collection: collection)
            let seconds = try parseDuration(expires, option: "--expires")
            let (store, layout, _) = try global.openStore()
            let locator = SnapshotLocator(store: store, layout: layout)
            guard let v = try version ?? locator.pointer(collection)?.version else {
                throw CLIError.failed("\(collection) has no pointer; name a version")
            }
            let m = try locator.manifest(collection, version: v)
            // Every object the version needs (a page version: base, then patches in order), manifest last.
            let named =
                m.objects(layout: layout).map { ($0.name, $0.key) }
                + [(Layout.manifestFileName, layout.manifestKey(collection: collection, version: v))]
            for (name, key) in named {
                print("\(name)\t\(try S3Support.presign(store: store, key: key, put: false, expires: Int(seconds)))")
            }
        }
    }
}

struct RollbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Publish a new version with the rows of an older one, recording why.",
        discussion: """
            The pointer only moves forward: the rollback is a new version whose rows are those of
            VERSION (verified against its manifest first). Runs applied after VERSION are recorded
            as rolled back and are not applied again, unless --requeue makes them pending again
            (their deltas must still exist). The pointer moves with a conditional write: if a
            compactor publishes meanwhile, nothing changes and you are told.
            Example: snapctl rollback lines 20261121T204743355Z-39f9a720b193 --reason "bad OCR batch"
            """)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Collection.") var collection: String
    @Argument(help: "The version whose rows to restore.") var version: String
    @Option(help: "Why, recorded in the new version's manifest.") var reason: String
    @Flag(help: "Make the runs applied after VERSION pending again instead of dropping them.") var requeue = false
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try runReportingErrors {
            try Layout.validate(collection: collection)
            let (store, layout, _) = try global.openStore()
            var host = [CChar](repeating: 0, count: 256)
            gethostname(&host, 255)
            let creator = VersionCreator(
                compactorId: "snapctl-rollback-\(getpid())", host: String(cString: host),
                strataVersion: StrataVersion.current)
            let r = try Rollback(store: store, layout: layout, creator: creator, workDirectory: NSTemporaryDirectory())
                .run(collection: collection, to: version, reason: reason, requeue: requeue)
            if json { return try printJSON(r) }
            print("\(collection): published \(r.newVersion) with the \(r.rows) rows of \(r.to) (was \(r.from))")
            if !r.rolledBack.isEmpty {
                print("  rolled back (not applied again): \(r.rolledBack.joined(separator: ", "))")
            }
            if !r.requeued.isEmpty { print("  requeued (pending again): \(r.requeued.joined(separator: ", "))") }
        }
    }
}

struct GcCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Delete old versions, fully applied runs, orphaned deltas and stale uploads.",
        discussion: """
            Never deletes the pointer's version, the newest --keep versions of its history, anything
            younger than --grace, or the record or delta of a run some collection has not processed.
            Quarantined runs are kept for --quarantine-retention. Prints what it would delete
            (--dry-run) or what it deleted.
            Example: snapctl gc --dry-run --keep 5 --grace 24h
            """)
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print what would be deleted; delete nothing.") var dryRun = false
    @Option(help: "Versions kept along the pointer's history.") var keep: Int = 10
    @Option(help: "Nothing younger than this is deleted (e.g. 24h).") var grace: String = "24h"
    @Option(help: "How long quarantined runs are kept (e.g. 30d).") var quarantineRetention: String = "30d"
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try runReportingErrors {
            guard keep >= 1 else {
                throw CLIError.usage("--keep must be at least 1 (the pointer's version is always kept)")
            }
            let policy = GCPolicy(
                keepVersions: keep, grace: try parseDuration(grace, option: "--grace"),
                quarantineRetention: try parseDuration(quarantineRetention, option: "--quarantine-retention"))
            let (store, layout, _) = try global.openStore()
            let gc = GarbageCollector(
                store: store, layout: layout, policy: policy, uploads: S3Support.uploadCleaner(store),
                logger: global.logger("strata.gc"))
            let plan = try gc.plan()
            let failures = dryRun ? [] : try gc.execute(plan)
            if json {
                struct Out: Codable {
                    var dryRun: Bool
                    var plan: GCPlan
                    var failures: [String]
                }
                return try printJSON(
                    Out(dryRun: dryRun, plan: plan, failures: failures.map { "\($0.key): \($0.code) \($0.message)" }))
            }
            let verb = dryRun ? "would delete" : "deleted"
            for item in plan.items where !failures.contains(where: { $0.key == item.key }) {
                print("\(verb) \(item.kind.rawValue) \(item.key)  (\(item.reason))")
            }
            for f in failures { print("FAILED \(f.key): \(f.code) \(f.message)") }
            for k in plan.kept { print("kept: \(k)") }
            print(
                "\(verb) \(plan.items.count - failures.count) objects"
                    + (failures.isEmpty ? "" : ", \(failures.count) failed"))
            if !failures.isEmpty { throw ExitCode(ExitCodes.failure) }
        }
    }
}
