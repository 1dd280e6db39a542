import Foundation
import StrataCore
import StrataCrypto

/// Runs: pending, quarantined, missing deltas, orphans, unreadable records; and the lease.
extension Verifier {
    /// Lists `runs/` once for every collection. Records are read lazily, each at most once.
    func listRuns() {
        do {
            for o in try store.list(prefix: layout.runsPrefix) {
                if let id = layout.runId(fromRecordKey: o.key) { runKeys[id] = o } else { strayRunKeys.append(o.key) }
            }
            runsListed = true
        } catch {
            addFailure(VerifyCheck.runRecords, nil, "cannot list \(layout.runsPrefix)", error)
        }
    }

    /// The record of `runId`, or nil when it cannot be read (remembered for `runs.records`).
    func record(_ runId: String) -> RunRecord? {
        if let r = records[runId] { return r }
        guard let info = runKeys[runId], unreadableRecords[info.key] == nil else { return nil }
        do {
            let (data, _) = try store.getData(info.key)
            let r = try RunRecord.decode(data, key: info.key, layout: layout)
            records[runId] = r
            return r
        } catch let e as StoreError where e.kind == .notFound {
            runKeys[runId] = nil  // removed since the listing
            return nil
        } catch {
            unreadableRecords[info.key] = Verifier.explain(error).0
            return nil
        }
    }

    /// Every record naming `c` (reads all records not read yet).
    func runsNaming(_ c: String, excluding: Set<String> = []) -> [RunRecord] {
        runKeys.keys.sorted().filter { !excluding.contains($0) }.compactMap(record).filter { $0.delta(for: c) != nil }
    }

    func checkRuns(_ c: String, _ st: inout CollectionState) {
        let processed = st.processed ?? []
        let known = st.processed != nil

        // Quarantine records: why a run could not be applied.
        var quarantined: [String: String] = [:]  // run id -> "reason: detail"
        var reasonOf: [String: String] = [:]  // run id -> reason
        var quarantineOK = true
        do {
            let prefix = layout.quarantinePrefix(c)
            for o in try store.list(prefix: prefix) where o.key.hasSuffix(".json") {
                let runId = String(o.key.dropFirst(prefix.count).dropLast(5))
                do {
                    let (data, _) = try store.getData(o.key)
                    let q = try StrataJSON.decode(QuarantineRecord.self, from: data, object: o.key)
                    quarantined[runId] =
                        "\(q.reason): \(q.detail) (at \(StrataJSON.iso8601(q.quarantinedAt)) by \(q.compactorId))"
                    reasonOf[runId] = q.reason
                } catch {
                    quarantined[runId] = "unreadable quarantine record: \(Verifier.explain(error).0)"
                }
            }
        } catch {
            quarantineOK = false
            addFailure(
                VerifyCheck.runsQuarantined, c, "cannot list \(layout.quarantinePrefix(c))", error, status: .warning)
        }

        // Pending: named by a record, not applied (or rolled back), not quarantined.
        let pending = runsNaming(c, excluding: processed.union(quarantined.keys)).sorted { a, b in
            let (da, db) = (a.createdDate ?? .distantPast, b.createdDate ?? .distantPast)
            return da != db ? da < db : a.runId < b.runId
        }
        if known {
            checkPending(c, pending, processed: processed, source: st.processedSource)
        } else {
            add(
                VerifyCheck.runsPending, c, .info,
                "cannot tell which runs are pending: the published version cannot be read (see above); "
                    + "\(pending.count) run\(pending.count == 1 ? " names" : "s name") \(c) in all",
                ["runs_naming_collection": .int(pending.count)])
        }

        if quarantineOK {
            if quarantined.isEmpty {
                add(VerifyCheck.runsQuarantined, c, .passed, "no quarantined runs")
            } else {
                let items = quarantined.keys.sorted().map { "\($0): \(quarantined[$0]!)" }
                let reasons = Set(quarantined.values.map { String($0.prefix { $0 != ":" }) }).sorted()
                let hint = quarantineHint(c, reasonOf)
                add(
                    VerifyCheck.runsQuarantined, c, .failed,
                    "\(quarantined.count) run\(quarantined.count == 1 ? " is" : "s are") quarantined (\(reasons.joined(separator: ", "))): "
                        + (quarantined.count == 1 ? "its rows are" : "their rows are") + " not in the snapshot",
                    ["count": .int(quarantined.count), "runs": listed(items)],
                    hint: hint)
            }
        }

        if known { checkPendingDeltas(c, pending) }
        checkOrphans(c)
    }

    private func checkPending(_ c: String, _ pending: [RunRecord], processed: Set<String>, source: String) {
        var ev: VerifyEvidence = [
            "pending": .int(pending.count), "applied_or_rolled_back": .int(processed.count),
            "applied_from": .string(source),
        ]
        guard let oldest = pending.first else {
            add(VerifyCheck.runsPending, c, .passed, "no pending runs", ev)
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
            let rest = o.key.dropFirst(prefix.count)
            let runId = String(rest.prefix { $0 != "/" })
            let isDelta = o.key == layout.deltaKey(collection: c, runId: runId)
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

    /// Records that exist but cannot be read: the compactor skips them, so their rows never arrive.
    func checkRunRecords() {
        guard runsListed else { return }
        var ev: VerifyEvidence = [
            "records": .int(runKeys.count), "read": .int(records.count + unreadableRecords.count),
        ]
        let bad = unreadableRecords.keys.sorted().map { unreadableRecords[$0]! }
        if !strayRunKeys.isEmpty { ev["not_record_keys"] = listed(strayRunKeys) }
        if bad.isEmpty {
            add(
                VerifyCheck.runRecords, nil, strayRunKeys.isEmpty ? .passed : .warning,
                (runKeys.isEmpty
                    ? "no run records"
                    : "\(runKeys.count) run record\(runKeys.count == 1 ? "" : "s"); every one read parses "
                        + "(records of runs applied everywhere are not read)")
                    + (strayRunKeys.isEmpty ? "" : "; \(strayRunKeys.count) other objects under \(layout.runsPrefix)"),
                ev,
                hint: strayRunKeys.isEmpty
                    ? nil : "only {run_id}.json belongs under \(layout.runsPrefix); move the others away")
        } else {
            ev["unreadable"] = listed(bad)
            add(
                VerifyCheck.runRecords, nil, .failed,
                "\(bad.count) run record\(bad.count == 1 ? "" : "s") cannot be read: the compactor skips "
                    + "\(bad.count == 1 ? "it" : "them"), so \(bad.count == 1 ? "its" : "their") rows are never applied",
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
                (parts.isEmpty ? "fix" : "otherwise fix") + " the cause (the producer, a lifecycle rule deleting deltas), then produce the rows again "
                    + "as a new run, or re-queue a run whose delta is now good by deleting its quarantine record (the "
                    + "next compaction retries it): " + shown.joined(separator: ", ")
                    + (other.count > shown.count ? " (and \(other.count - shown.count) more)" : ""))
        }
        return "see `snapctl runs --quarantined`. " + parts.joined(separator: "; ")
    }
}
