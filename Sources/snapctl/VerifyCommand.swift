import ArgumentParser
import Foundation
import StrataCore
import StrataInspect

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Explain what is wrong with a store, its collections and runs, and what to do.",
        discussion: """
            Read-only. Each check is reported as passed, info, warning or failed,
            with its evidence and a hint:
              store     the store answers and the credentials work; names a wrong
                        key or secret, clock skew, a missing bucket, access
                        denied or a wrong region. Run records parse.
              version   the pointer exists and names a version whose manifest
                        exists and whose files have the manifest's sizes and
                        SHA-256 (each damaged file named with its key); a lost
                        pointer names the newest complete version and the
                        rollback that restores it.
              snapshot  downloaded to a temporary directory (removed afterwards)
                        and opened read-only: quick_check, format, dimension, a
                        row count that matches the manifest and is not zero
                        (unless deletes emptied it), sampled embeddings (length,
                        finite) and metadata (flat JSON), ids vs --id-pattern;
                        with --deep a query smoke test.
              history   row counts of recent versions add up: no drop to zero,
                        no large drop without deletes; versions newer than the
                        pointer that were never published.
              runs      pending runs and the oldest's age, quarantined runs and
                        why, pending runs whose deltas are missing, deltas with
                        no run record (orphans), the newest run's age
                        (--max-run-age), the compactor's lease (stale when its
                        process is gone from this host), and the status a
                        failed compaction round left.
            --id-pattern: {uuid}, {N digits}, {digits}, {hex} and {any} are
            placeholders; everything else is literal ({{ and }} for braces).
            Built-in: receipt-line = IMAGE#{uuid}#RECEIPT#{5 digits}#LINE#{5 digits},
            receipt-word = the same plus #WORD#{5 digits}.
            Exit status: 0 nothing failed (warnings allowed), 1 something
            failed, 2 usage or configuration error. Docs/RUNBOOK.md explains
            every finding and what to do.
            Examples:
              snapctl verify --store s3://receipts
              snapctl verify --store s3://receipts --collection lines --deep \\
                --id-pattern 'IMAGE#{uuid}#RECEIPT#{5 digits}#LINE#{5 digits}' \\
                --pending-age 30m --json
              snapctl verify --store s3://receipts --id-pattern lines=receipt-line \\
                --id-pattern words=receipt-word --max-run-age 6h
            """)

    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "Collection to check (repeatable; default: every collection in the store).")
    var collection: [String] = []
    @Flag(help: "Check every row instead of a sample, run integrity_check, and hash pending runs' deltas.")
    var deep = false
    @Flag(help: "Print the findings as JSON (check, collection, status, message, evidence, hint).")
    var json = false
    @Option(
        help: ArgumentHelp(
            "The shape of ids (repeatable): C=PATTERN for collection C, or PATTERN for all; PATTERN may be "
                + "receipt-line or receipt-word, or e.g. 'IMAGE#{uuid}#LINE#{5 digits}'.",
            valueName: "[C=]pattern"))
    var idPattern: [String] = []
    @Option(
        help: ArgumentHelp(
            "Fail when a collection's newest run is older than this (e.g. 6h, 2d); without it, older than a day warns.",
            valueName: "duration"))
    var maxRunAge: String?
    @Option(
        help: ArgumentHelp(
            "A run pending longer than this fails: compaction is not running (e.g. 30m, 1h, 0s).",
            valueName: "duration"))
    var pendingAge: String = "1h"
    @Option(
        help: ArgumentHelp(
            "Fail a version that lost more than this fraction of its parent's rows without deletes.",
            valueName: "fraction"))
    var dropThreshold: Double = 0.5
    @Option(
        help: ArgumentHelp(
            "A delta with no run record older than this is an orphan; younger ones are uploads in progress.",
            valueName: "duration"))
    var orphanGrace: String = "1h"
    @Option(help: "Rows whose embedding and metadata are checked, spread over the table.")
    var sample: Int = 1000
    @Option(help: "Published versions whose row counts are compared.")
    var history: Int = 20
    @Option(help: "Items listed per finding at most (offending ids, runs, keys); the counts are always complete.")
    var maxItems: Int = 10
    @Flag(help: "Show the evidence of passed checks too.")
    var verbose = false

    func settings() throws -> VerifySettings {
        var s = VerifySettings()
        for c in collection {
            do { try Layout.validate(collection: c) } catch let e as StrataError {
                throw CLIError.usage("--collection \(c): \(e.message)")
            }
        }
        s.collections = collection.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        s.deep = deep
        for text in idPattern {
            do {
                let (c, pattern) = try IDPattern.parseOption(text)
                if let c { s.idPatterns[c] = pattern } else { s.idPattern = pattern }
            } catch let e as IDPattern.ParseError {
                throw CLIError.usage(e.description)
            }
        }
        if let maxRunAge {
            guard let age = VerifySettings.parseDuration(maxRunAge) else {
                throw CLIError.usage("--max-run-age \(maxRunAge): expected a duration such as 6h, 2d or 90m")
            }
            s.maxRunAge = age
        }
        guard let pending = VerifySettings.parseDuration(pendingAge) else {
            throw CLIError.usage("--pending-age \(pendingAge): expected a duration such as 30m, 1h, 90s or 0s")
        }
        s.pendingAge = pending
        guard let grace = VerifySettings.parseDuration(orphanGrace) else {
            throw CLIError.usage("--orphan-grace \(orphanGrace): expected a duration such as 30m, 1h, 90s or 0s")
        }
        s.orphanGrace = grace
        guard dropThreshold > 0, dropThreshold <= 1 else {
            throw CLIError.usage(
                "--drop-threshold \(dropThreshold): expected a fraction above 0 and at most 1, e.g. 0.5")
        }
        s.dropThreshold = dropThreshold
        guard sample > 0 else { throw CLIError.usage("--sample must be positive") }
        s.sampleRows = sample
        guard history > 0 else { throw CLIError.usage("--history must be positive") }
        s.historyDepth = history
        guard maxItems > 0 else { throw CLIError.usage("--max-items must be positive") }
        s.maxListed = maxItems
        if let t = global.environment["TMPDIR"], !t.isEmpty { s.workDirectory = t }
        return s
    }

    func run() throws {
        try runReportingErrors {
            let settings = try settings()
            let report: VerifyReport
            var code: Int32
            do {
                let (store, layout, _) = try global.openStore()
                report = Verifier(
                    store: store, layout: layout, settings: settings, logger: global.logger("strata.verify")
                ).run()
                code = report.exitCode
                if report.findings(VerifyCheck.storeAccess).contains(where: {
                    $0.status == .failed && $0.evidence["error_kind"] == .string(StoreError.Kind.configuration.rawValue)
                }) {
                    code = ExitCodes.usage
                }
            } catch let e as CLIError {
                throw e
            } catch {
                // The store could not even be opened (no region, no credentials source, ...): still
                // answer with a report, so scripts reading --json see why.
                let location = (try? global.location().description) ?? (global.store ?? "$STRATA_STORE")
                report = VerifyReport(
                    store: location, checkedAt: Date(), collections: settings.collections,
                    findings: [Verifier.storeAccessFinding(error, location: location)])
                code = describe(error).0
            }
            if json {
                FileHandle.standardOutput.write(try report.json())
                FileHandle.standardOutput.write(Data("\n".utf8))
            } else {
                print(report.text(unicode: isatty(STDOUT_FILENO) != 0, verbose: verbose), terminator: "")
            }
            if code != 0 { throw ExitCode(code) }
        }
    }
}
