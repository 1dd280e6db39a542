import Foundation
import StrataCore
import StrataCrypto

/// Runs: pending, quarantined, missing deltas, orphans, unreadable records; and the lease.
extension Verifier {
    /// Lists `runs/` once for every collection (through the shared run catalog). Records are read
    /// lazily, each at most once.
    func listRuns() {
        do {
            runListing = try index.list()
            runKeys = runListing.records
            strayRunKeys = runListing.stray.sorted()
            runsListed = true
        } catch {
            addFailure(VerifyCheck.runRecords, nil, "cannot list \(layout.runsPrefix)", error)
        }
    }

    /// The record of `runId`, or nil when it cannot be used or read (remembered for `runs.records`).
    func record(_ runId: String) -> RunRecord? {
        if let r = records[runId] { return r }
        guard let info = runKeys[runId], unreadableRecords[info.key] == nil, newerRecords[info.key] == nil,
            failedReads[info.key] == nil
        else {
            return nil
        }
        do {
            switch try index.entryIfExists(runId: runId, key: info.key) {
            case nil:
                runKeys[runId] = nil  // removed since the listing
                runListing.records[runId] = nil
                return nil
            case .record(let r):
                records[runId] = r
                return r
            case .invalid(let bad):
                unreadableRecords[info.key] = bad.error
            case .newer(let bad):
                newerRecords[info.key] = bad.error
            }
        } catch {
            failedReads[info.key] = Verifier.explain(error).0
        }
        return nil
    }

    /// Every record naming `c` (reads all records not read yet).
    func runsNaming(_ c: String, excluding: Set<String> = []) -> [RunRecord] {
        runKeys.keys.sorted().filter { !excluding.contains($0) }.compactMap(record).filter { $0.delta(for: c) != nil }
    }

    /// Classifies `c`'s runs with the shared run catalog, from what the snapshot (or the manifests)
    /// says was processed, exactly as the compactor's next round will see them.
    func checkRuns(_ c: String, _ st: inout CollectionState) {
        let known = st.processed != nil
        let processed = st.processed ?? .nothing("nothing (the published version cannot be read)")

        // Quarantine records: why a run could not be applied.
        var quarantineRecords: [String: QuarantineRecord] = [:]
        var quarantineOK = true
        do {
            quarantineRecords = try index.quarantineRecords(collection: c)
        } catch {
            quarantineOK = false
            addFailure(
                VerifyCheck.runsQuarantined, c, "cannot list or read \(layout.quarantinePrefix(c))", error,
                status: .warning)
        }
        guard runsListed else {
            add(
                VerifyCheck.runsPending, c, .info,
                "cannot tell which runs are pending: \(layout.runsPrefix) cannot be "
                    + "listed (see \(VerifyCheck.runRecords))")
            return
        }
        let runs: CollectionRuns
        do {
            runs = try index.classify(
                collection: c, processed: processed, quarantine: RunIndex.Quarantine(records: quarantineRecords),
                listing: runListing)
        } catch {
            addFailure(
                VerifyCheck.runsPending, c, "cannot read the run catalog (the compactor fails its round on this too)",
                error)
            return
        }
        for run in runs.runs.values where run.record != nil { records[run.runId] = run.record }
        for run in runs.runs.values {
            guard let bad = run.problem, let key = run.listed?.key else { continue }
            if run.state == .deferred { newerRecords[key] = bad.error } else { unreadableRecords[key] = bad.error }
        }
        let pending = runs.pending
        if known {
            checkPending(c, pending, runs: runs)
        } else {
            add(
                VerifyCheck.runsPending, c, .info,
                "cannot tell which runs are pending: the published version cannot be read (see above); "
                    + "\(pending.count) run\(pending.count == 1 ? " names" : "s name") \(c) in all",
                ["runs_naming_collection": .int(pending.count)])
        }

        // Quarantined runs (a leftover quarantine record of a run applied since is not one), and
        // invalid records the next compaction quarantines.
        let quarantinedRuns = runs.inOrder(.quarantined)
        let invalid = runs.inOrder(.invalid)
        if quarantineOK {
            var quarantined: [String: String] = [:]  // run id -> "reason: detail"
            var reasonOf: [String: String] = [:]  // run id -> reason
            for run in quarantinedRuns {
                guard let q = run.quarantine else { continue }
                quarantined[run.runId] =
                    q.reason == "unreadable" && q.compactorId == "?"
                    ? "unreadable quarantine record: \(q.detail)"
                    : "\(q.reason): \(q.detail) (at \(StrataJSON.iso8601(q.quarantinedAt)) by \(q.compactorId))"
                if !(q.reason == "unreadable" && q.compactorId == "?") { reasonOf[run.runId] = q.reason }
            }
            var ev: VerifyEvidence = ["count": .int(quarantined.count)]
            if !invalid.isEmpty {
                ev["invalid_records"] = listed(invalid.map { "\($0.runId): \($0.problem?.error ?? "?")" })
                for run in invalid { reasonOf[run.runId] = "invalidRecord" }
            }
            if quarantined.isEmpty && invalid.isEmpty {
                add(VerifyCheck.runsQuarantined, c, .passed, "no quarantined runs")
            } else {
                let items = quarantined.keys.sorted().map { "\($0): \(quarantined[$0]!)" }
                ev["runs"] = listed(items)
                let reasons = Set(quarantined.values.map { String($0.prefix { $0 != ":" }) }).sorted()
                var what: [String] = []
                if !quarantined.isEmpty {
                    what.append(
                        "\(quarantined.count) run\(quarantined.count == 1 ? " is" : "s are") quarantined "
                            + "(\(reasons.joined(separator: ", ")))")
                }
                if !invalid.isEmpty {
                    what.append(
                        "\(invalid.count) run record\(invalid.count == 1 ? " is" : "s are") invalid, and the next "
                            + "compaction quarantines \(invalid.count == 1 ? "it" : "them") invalidRecord")
                }
                let n = quarantined.count + invalid.count
                add(
                    VerifyCheck.runsQuarantined, c, .failed,
                    what.joined(separator: "; ") + ": " + (n == 1 ? "its rows are" : "their rows are")
                        + " not in the snapshot", ev, hint: quarantineHint(c, reasonOf))
            }
        }

        if known { checkPendingDeltas(c, pending) }
        checkOrphans(c)
    }

    private func checkPending(_ c: String, _ pending: [RunRecord], runs: CollectionRuns) {
        let processed = runs.processed
        var ev: VerifyEvidence = [
            "pending": .int(pending.count), "applied_or_rolled_back": .int(processed.processed.count),
            "applied_from": .string(processed.source),
        ]
        if !processed.rolledBack.isEmpty { ev["rolled_back"] = .int(processed.rolledBack.count) }
        let requeued = runs.inOrder(.pending).filter(\.requeued).map(\.runId)
        if !requeued.isEmpty { ev["requeued"] = listed(requeued) }
        let deferred = runs.inOrder(.deferred)
        if !deferred.isEmpty {
            ev["deferred_newer_format"] = listed(deferred.map { "\($0.runId): \($0.problem?.error ?? "?")" })
        }
        guard let oldest = pending.first else {
            if deferred.isEmpty {
                add(VerifyCheck.runsPending, c, .passed, "no pending runs", ev)
            } else {
                add(
                    VerifyCheck.runsPending, c, .warning,
                    "no pending runs this compactor can read; \(deferred.count) run "
                        + "record\(deferred.count == 1 ? " is" : "s are") of a newer format and wait for a newer "
                        + "compactor", ev,
                    hint: "upgrade the compactor (and snapctl) to the release of the producers that wrote them")
            }
            return
        }
        let created = oldest.createdDate ?? Identifiers.date(of: oldest.runId) ?? now
        let waited = now.timeIntervalSince(created)
        let rows = pending.reduce(0) { sum, r in sum + (r.delta(for: c).map { $0.upserts + $0.deletes } ?? 0) }
        ev["oldest_run"] = .string(oldest.runId)
        ev["oldest_created_at"] = .string(oldest.createdAt)
        ev["oldest_age"] = .string(age(created))
        ev["rows_waiting"] = .int(rows)
        ev["runs"] = listed(pending.map(\.runId))
        let what =
            "\(pending.count) run\(pending.count == 1 ? "" : "s") (\(rows) rows) pending, the oldest for \(age(created))"
        if waited > settings.pendingAge {
            ev["pending_age_limit"] = .string(VerifySettings.describe(duration: settings.pendingAge))
            add(
                VerifyCheck.runsPending, c, .failed,
                "compaction is not running: \(what), longer than \(VerifySettings.describe(duration: settings.pendingAge))",
                ev,
                hint:
                    "readers do not see these rows yet. Run `snapctl compact --collection \(c)` now; then find out why the "
                    + "compactor did not: is a worker running with \(c) in its --collections, can it reach the store, what do "
                    + "its logs say? The lease check shows whether one holds \(c) right now")
        } else {
            add(VerifyCheck.runsPending, c, .info, "\(what): the next compaction applies them", ev)
        }
    }

    /// The deltas pending runs name must exist with the record's size (and SHA-256, with `deep`),
    /// or the compactor will quarantine those runs.
    private func checkPendingDeltas(_ c: String, _ pending: [RunRecord]) {
        guard !pending.isEmpty else {
            add(VerifyCheck.runsDeltas, c, .passed, "no pending runs, so no deltas to check")
            return
        }
        var problems: [String] = []
        for r in pending {
            guard let d = r.delta(for: c) else { continue }
            do {
                guard let info = try store.head(d.key) else {
                    problems.append("\(r.runId): \(d.key) is missing")
                    continue
                }
                if info.size != d.size {
                    problems.append("\(r.runId): \(d.key) is \(info.size) bytes; the record says \(d.size)")
                } else if let sha = info.sha256, sha != d.sha256 {
                    problems.append("\(r.runId): \(d.key) has SHA-256 \(sha); the record says \(d.sha256)")
                } else if settings.deep {
                    let path = workDirectory + "/delta-\(r.runId).tar.gz"
                    defer { try? FileManager.default.removeItem(atPath: path) }
                    try store.get(d.key, toFile: path)
                    let (sha, _) = try SHA256.hexOfFile(atPath: path)
                    if sha != d.sha256 {
                        problems.append("\(r.runId): \(d.key) has SHA-256 \(sha); the record says \(d.sha256)")
                    }
                }
            } catch {
                problems.append("\(r.runId): \(Verifier.explain(error).0)")
            }
        }
        if problems.isEmpty {
            add(
                VerifyCheck.runsDeltas, c, .passed,
                "the deltas of \(pending.count) pending run\(pending.count == 1 ? "" : "s") are present"
                    + (settings.deep ? " and match their records' SHA-256" : " with their records' sizes"),
                ["checked": .int(pending.count)])
        } else {
            add(
                VerifyCheck.runsDeltas, c, .failed,
                "\(problems.count) pending run\(problems.count == 1 ? " names a delta that is" : "s name deltas that are") missing or damaged",
                ["checked": .int(pending.count), "problems": listed(problems)],
                hint:
                    "these runs cannot be applied: the next compaction quarantines them (missingDelta, checksumMismatch) and "
                    + "their rows are lost unless produced again as a new run. Check lifecycle rules and anything else that "
                    + "deletes or rewrites \(layout.deltasPrefix(c))")
        }
    }

    /// Deltas with no run record: a producer that uploaded but never wrote its record. Young
    /// ones are uploads in progress (the record comes last).
    private func checkOrphans(_ c: String) {
        guard runsListed else { return }
        let prefix = layout.deltasPrefix(c)
        let objects: [ObjectInfo]
        do { objects = try store.list(prefix: prefix) } catch {
            addFailure(VerifyCheck.runsOrphans, c, "cannot list \(prefix)", error, status: .warning)
            return
        }
        var old: [String] = []
        var young: [String] = []
        for o in objects {
            let (runId, isDelta) = layout.deltaObject(o.key, collection: c) ?? ("", false)
            if isDelta, runKeys[runId] != nil, records[runId].map({ $0.delta(for: c)?.key == o.key }) ?? true {
                continue
            }
            let when = o.lastModified ?? .distantPast
            let item = "\(o.key) (\(age(when)) old\(isDelta ? "" : ", not a delta key"))"
            if now.timeIntervalSince(when) >= settings.orphanGrace { old.append(item) } else { young.append(item) }
        }
        var ev: VerifyEvidence = [
            "deltas": .int(objects.count), "grace": .string(VerifySettings.describe(duration: settings.orphanGrace)),
        ]
        if !young.isEmpty { ev["in_progress"] = listed(young) }
        if !old.isEmpty {
            ev["orphans"] = listed(old)
            add(
                VerifyCheck.runsOrphans, c, .failed,
                "\(old.count) orphaned delta\(old.count == 1 ? "" : "s") with no run record, older than "
                    + VerifySettings.describe(duration: settings.orphanGrace), ev,
                hint:
                    "a producer uploaded deltas but never wrote the record (crashed, killed, or the record write failed): "
                    + "no compaction will ever apply their rows. Re-run that job with the same run id (its checkpoint keeps it) to publish it; "
                    + "`snapctl gc` removes orphans after its grace period")
        } else if !young.isEmpty {
            add(
                VerifyCheck.runsOrphans, c, .info,
                "\(young.count) delta\(young.count == 1 ? "" : "s") without a record yet, younger than "
                    + "\(VerifySettings.describe(duration: settings.orphanGrace)): uploads in progress", ev)
        } else {
            add(VerifyCheck.runsOrphans, c, .passed, "every delta (\(objects.count)) has a run record", ev)
        }
    }

    /// Records that exist but cannot be used: the compactor quarantines them `invalidRecord` in
    /// every collection they name (all, when they name none readably), so their rows never arrive.
    /// Records of a newer format wait for a newer compactor.
    func checkRunRecords() {
        guard runsListed else { return }
        var ev: VerifyEvidence = [
            "records": .int(runKeys.count),
            "read": .int(records.count + unreadableRecords.count + newerRecords.count),
        ]
        let bad = unreadableRecords.keys.sorted().map { key in
            unreadableRecords[key]!.contains(key) ? unreadableRecords[key]! : "\(key): \(unreadableRecords[key]!)"
        }
        if !strayRunKeys.isEmpty { ev["not_record_keys"] = listed(strayRunKeys) }
        if !newerRecords.isEmpty { ev["newer_format"] = listed(newerRecords.keys.sorted()) }
        if !failedReads.isEmpty {
            ev["read_failures"] = listed(failedReads.keys.sorted().map { failedReads[$0]! })
            add(
                VerifyCheck.runRecords, nil, .failed,
                "\(failedReads.count) run record\(failedReads.count == 1 ? "" : "s") could not be read from the store: "
                    + "the compactor fails its rounds until \(failedReads.count == 1 ? "it" : "they") can be read", ev,
                hint: "see the errors; check the store's health and permissions on \(layout.runsPrefix), then "
                    + "verify again")
            return
        }
        if bad.isEmpty {
            let newer = newerRecords.count
            add(
                VerifyCheck.runRecords, nil, strayRunKeys.isEmpty && newer == 0 ? .passed : .warning,
                (runKeys.isEmpty
                    ? "no run records"
                    : "\(runKeys.count) run record\(runKeys.count == 1 ? "" : "s"); every one read parses "
                        + "(records of runs applied everywhere are not read)")
                    + (newer == 0
                        ? "" : "; \(newer) of a newer format than this snapctl reads wait for a newer compactor")
                    + (strayRunKeys.isEmpty ? "" : "; \(strayRunKeys.count) other objects under \(layout.runsPrefix)"),
                ev,
                hint: strayRunKeys.isEmpty && newer == 0
                    ? nil
                    : [
                        newer == 0 ? nil : "upgrade the compactor and snapctl to the producers' release",
                        strayRunKeys.isEmpty
                            ? nil : "only {run_id}.json belongs under \(layout.runsPrefix); move the others away",
                    ]
                    .compactMap { $0 }.joined(separator: "; "))
        } else {
            ev["unreadable"] = listed(bad)
            add(
                VerifyCheck.runRecords, nil, .failed,
                "\(bad.count) run record\(bad.count == 1 ? "" : "s") cannot be used: the compactor quarantines "
                    + "\(bad.count == 1 ? "it" : "them") (invalidRecord) in the collections named, so "
                    + "\(bad.count == 1 ? "its" : "their") rows are never applied",
                ev,
                hint:
                    "fix the producer that wrote \(bad.count == 1 ? "it" : "them") (Docs/FORMATS.md, \"Run record\"); then delete "
                    + "the bad record (`snapctl store rm runs/RUN.json`) and publish the job again")
        }
    }

    func checkLease(_ c: String) {
        let key = layout.leaseKey(c)
        do {
            guard let (data, _) = try store.getDataIfExists(key) else {
                add(VerifyCheck.lease, c, .passed, "no compactor holds the lease", ["key": .string(key)])
                return
            }
            guard let lease = try? StrataJSON.decode(Lease.self, from: data, object: key) else {
                add(
                    VerifyCheck.lease, c, .warning, "the lease cannot be read",
                    ["key": .string(key), "bytes": .int(data.count)],
                    hint: "the next compactor takes an unreadable lease over; nothing to do unless runs stay pending")
                return
            }
            let holder = "\(lease.owner) on \(lease.host)" + (lease.pid.map { " (pid \($0))" } ?? "")
            let ev: VerifyEvidence = [
                "key": .string(key), "owner": .string(lease.owner), "host": .string(lease.host),
                "pid": lease.pid.map { .int(Int($0)) } ?? .string("-"),
                "acquired_at": .string(StrataJSON.iso8601(lease.acquiredAt)),
                "expires_at": .string(StrataJSON.iso8601(lease.expiresAt)),
            ]
            if lease.expiresAt > now, lease.host == settings.host, let pid = lease.pid, !Verifier.processExists(pid) {
                add(
                    VerifyCheck.lease, c, .failed,
                    "stale lease: \(holder) holds it for another "
                        + "\(VerifySettings.describe(duration: lease.expiresAt.timeIntervalSince(now))), but process \(pid) "
                        + "no longer exists on this host", ev,
                    hint:
                        "its compactor died or was killed mid-round (OOM, SIGKILL): find out why in its logs. A compactor "
                        + "on this host takes the lease over at once; elsewhere it waits for the expiry")
            } else if lease.expiresAt > now {
                add(
                    VerifyCheck.lease, c, .info,
                    "held by \(holder) since \(age(lease.acquiredAt)) ago, for another "
                        + VerifySettings.describe(duration: lease.expiresAt.timeIntervalSince(now)), ev)
            } else {
                add(
                    VerifyCheck.lease, c, .failed,
                    "stale lease: \(holder) let it expire \(age(lease.expiresAt)) ago without releasing it", ev,
                    hint:
                        "its compactor died or was killed mid-round (OOM, SIGKILL, a lost node): find out why in its logs. "
                        + "The next compactor takes the lease over, so no run is blocked; if runs stay pending, none is running: "
                        + "start one (`snapctl compactor`)")
            }
        } catch {
            addFailure(VerifyCheck.lease, c, "cannot read the lease", error, status: .warning)
        }
    }

    /// What to do about quarantined runs, by reason: the late-run window (`tooLate`, with the
    /// command that applies each anyway), a producer's clock (`futureRunId`), a bad record
    /// (`invalidRecord`), and the rest (deltas that are missing or damaged).
    func quarantineHint(_ c: String, _ reasonOf: [String: String]) -> String {
        var parts: [String] = []
        let late = reasonOf.filter { $0.value == "tooLate" }.keys.sorted()
        if !late.isEmpty {
            let shown = late.prefix(settings.maxListed).map { "`snapctl compact --collection \(c) --allow-late \($0)`" }
            parts.append(
                "tooLate: the run is older than the late-run window, so it may overwrite newer rows or bring back "
                    + "deleted ones; if its rows are still wanted, apply it anyway: " + shown.joined(separator: ", ")
                    + (late.count > shown.count ? " (and \(late.count - shown.count) more)" : ""))
        }
        if reasonOf.values.contains("futureRunId") {
            parts.append(
                "futureRunId: the run id is dated more than an hour ahead of the compactor's clock: fix the clock (NTP) "
                    + "of the producer that made it, then produce the rows again as a new run")
        }
        if reasonOf.values.contains("invalidRecord") {
            parts.append(
                "invalidRecord: the run record cannot be parsed or is invalid (the detail says why): fix the producer "
                    + "(Docs/FORMATS.md, \"Run record\") and publish the job again as a new run")
        }
        let other = reasonOf.filter { !["tooLate", "futureRunId", "invalidRecord"].contains($0.value) }.keys.sorted()
        if !other.isEmpty {
            let shown = other.prefix(settings.maxListed).map {
                "`snapctl store rm \(Layout().quarantineKey(collection: c, runId: $0))`"  // keys relative to --store
            }
            parts.append(
                (parts.isEmpty ? "fix" : "otherwise fix")
                    + " the cause (the producer, a lifecycle rule deleting deltas), then produce the rows again "
                    + "as a new run, or re-queue a run whose delta is now good by deleting its quarantine record (the "
                    + "next compaction retries it): " + shown.joined(separator: ", ")
                    + (other.count > shown.count ? " (and \(other.count - shown.count) more)" : ""))
        }
        return "see `snapctl runs --quarantined`. " + parts.joined(separator: "; ")
    }
}
