import Foundation
import StrataCore
import StrataCrypto
import StrataDelta

/// The published version: pointer, manifest, files.
extension Verifier {
    /// The pointer's version, or nil after a failed finding that says why there is none.
    func checkPointer(_ c: String, known: [String]) -> String? {
        let key = layout.pointerKey(c)
        do {
            guard let (version, _) = try locator.pointer(c) else {
                explainMissingPointer(c, key: key, known: known)
                return nil
            }
            var ev: VerifyEvidence = ["key": .string(key), "version": .string(version)]
            var message = "names version \(version)"
            if let made = Identifiers.date(of: version) {
                ev["version_age"] = .string(age(made))
                message += " (made \(age(made)) ago)"
            }
            add(VerifyCheck.pointer, c, .passed, message, ev)
            return version
        } catch let e as StrataError where e.kind == .corrupt {
            lostPointer(c, key: key, damage: e.message)
        } catch {
            addFailure(VerifyCheck.pointer, c, "cannot read the pointer", error)
        }
        return nil
    }

    /// No pointer: a collection never compacted, a deleted pointer, or a name that is not there.
    private func explainMissingPointer(_ c: String, key: String, known: [String]) {
        let versions = (try? locator.versions(c)) ?? []
        let naming = runsNaming(c)
        var ev: VerifyEvidence = [
            "key": .string(key), "versions": .int(versions.count), "runs_naming_collection": .int(naming.count),
        ]
        if !versions.isEmpty {
            lostPointer(c, key: key, damage: nil)
        } else if !naming.isEmpty {
            let oldest = naming.compactMap(\.createdDate).min()
            if let oldest { ev["oldest_run_age"] = .string(age(oldest)) }
            add(
                VerifyCheck.pointer, c, .failed,
                "no pointer: the collection was never published, although \(naming.count) "
                    + (naming.count == 1 ? "run names it" : "runs name it")
                    + (oldest.map { " (the oldest for \(age($0)))" } ?? ""), ev,
                hint:
                    "run `snapctl compact --collection \(c)`, or check that the compactor worker runs with this collection "
                    + "in --collections and can reach the store")
        } else {
            if !known.isEmpty { ev["collections_in_store"] = .list(known) }
            let exists =
                (try? store.listPage(
                    prefix: layout.collectionPrefix(c), delimiter: nil, continuation: nil,
                    maxKeys: 1
                ).objects.isEmpty == false) ?? false
            if !exists { absentCollections.insert(c) }
            add(
                VerifyCheck.pointer, c, .failed,
                exists
                    ? "no pointer, no versions and no runs: the collection holds only stray objects"
                    : "no such collection: nothing under \(layout.collectionPrefix(c)) and no run names it", ev,
                hint: "check the collection name and the --store prefix"
                    + (known.isEmpty ? "" : "; collections here: \(known.joined(separator: ", "))"))
        }
    }

    func checkManifest(_ c: String, version: String) -> SnapshotManifest? {
        let key = layout.manifestKey(collection: c, version: version)
        do {
            let m = try locator.manifest(c, version: version)
            var ev: VerifyEvidence = [
                "key": .string(key), "rows": .int(m.rowCount), "dimension": .int(m.dimension),
                "files": .int(m.files.count), "created_at": .string(StrataJSON.iso8601(m.createdAt)),
                "created_by": .string(
                    "\(m.createdBy.compactorId) on \(m.createdBy.host) (Strata \(m.createdBy.strataVersion))"),
                "runs_applied_in_version": .int(m.appliedRuns.count),
            ]
            if let p = m.parentVersion { ev["parent_version"] = .string(p) }
            if let note = m.note { ev["note"] = .string(note) }
            add(
                VerifyCheck.manifest, c, .passed,
                "version \(version): \(m.rowCount) rows of dimension \(m.dimension), \(m.appliedRuns.count) "
                    + "run\(m.appliedRuns.count == 1 ? "" : "s") applied in it, "
                    + "made \(age(m.createdAt)) ago", ev)
            return m
        } catch let e as StrataError where e.kind == .notFound {
            let present = ((try? store.list(prefix: layout.versionPrefix(collection: c, version: version))) ?? [])
                .map { String($0.key.dropFirst(layout.versionPrefix(collection: c, version: version).count)) }
            let good = newestCompleteVersion(c, before: version)
            var ev: VerifyEvidence = ["key": .string(key), "version_files_present": .list(present)]
            if let good { ev["newest_complete_version"] = .string(good) }
            add(
                VerifyCheck.manifest, c, .failed,
                "the pointer names version \(version), whose manifest is missing"
                    + (present.isEmpty
                        ? " (the version does not exist at all)" : " (its upload never finished, or it was deleted)"),
                ev,
                hint: good.map {
                    "roll back to the newest complete version: `"
                        + VersionHistory.restoreCommand(c, version: $0, reason: "the pointer's version has no manifest")
                        + "`"
                } ?? "no complete version is left; produce the rows again and compact")
        } catch let e as StrataError {
            let good = newestCompleteVersion(c, before: version)
            addFailure(
                VerifyCheck.manifest, c, "the manifest of version \(version) cannot be used", e,
                hint: e.kind == .unsupportedVersion
                    ? e.fix
                    : good.map {
                        "roll back to the newest complete version: `"
                            + VersionHistory.restoreCommand(
                                c, version: $0, reason: "the pointer's manifest is unusable") + "`"
                    })
        } catch {
            addFailure(VerifyCheck.manifest, c, "cannot read the manifest of version \(version)", error)
        }
        return nil
    }

    /// The newest complete version (older than `before`, when given): manifest present and valid,
    /// its files present with the manifest's sizes (VersionHistory).
    func newestCompleteVersion(_ c: String, before: String?) -> String? {
        let history = VersionHistory(store: store, layout: layout)
        guard let all = try? history.versions(c) else { return nil }
        for v in all.reversed().filter({ before == nil || $0 < before! }).prefix(20) {
            if (try? history.check(c, version: v))?.isComplete == true { return v }
        }
        return nil
    }

    /// A pointer that is missing while versions exist, or unreadable: readers find no snapshot,
    /// and the collection must be restored before anything else (SPEC invariant 12).
    func lostPointer(_ c: String, key: String, damage: String?) {
        var ev: VerifyEvidence = ["key": .string(key)]
        let history = VersionHistory(store: store, layout: layout)
        let survey: VersionHistory.Survey
        do { survey = try history.survey(c) } catch {
            addFailure(
                VerifyCheck.pointer, c,
                "the pointer is \(damage == nil ? "missing" : "unreadable") and the "
                    + "versions cannot be listed", error)
            return
        }
        ev["versions"] = .int(survey.versions.count)
        if let d = damage { ev["damage"] = .string(d) }
        let what =
            damage == nil
            ? "no pointer, but \(survey.versions.count) version\(survey.versions.count == 1 ? "" : "s") exist: the pointer "
                + "was deleted or lost"
            : "the pointer is damaged (\(damage!)); \(survey.versions.count) version\(survey.versions.count == 1 ? "" : "s") exist"
        if !survey.incomplete.isEmpty {
            ev["newer_incomplete_versions"] = listed(
                survey.incomplete.map {
                    "\($0.version): " + $0.problems.joined(separator: "; ")
                })
        }
        if damage == nil, (try? history.onlyUnpublishedFirstVersions(c, survey)) == true {
            add(
                VerifyCheck.pointer, c, .warning,
                "no pointer yet: \(survey.versions.count) unpublished first version"
                    + "\(survey.versions.count == 1 ? "" : "s") (a first compaction that failed before its pointer "
                    + "write); their runs are still pending", ev,
                hint: "the next compaction publishes \(c) from its pending runs; gc removes the unpublished "
                    + "versions after the grace period")
            return
        }
        guard let good = survey.newestComplete, let m = good.manifest else {
            add(
                VerifyCheck.pointer, c, .failed, what + "; none of them is complete", ev,
                hint: "no version can be restored; see `snapctl versions \(c)`. Compaction of \(c) stays stopped "
                    + "until the pointer names a complete version")
            return
        }
        restorable[c] = good.version
        ev["newest_complete_version"] = .string(good.version)
        ev["newest_complete_rows"] = .int(m.rowCount)
        ev["newest_complete_made"] = .string(StrataJSON.iso8601(m.createdAt))
        add(
            VerifyCheck.pointer, c, .failed,
            what + "; readers find no snapshot and compaction of \(c) is stopped. The newest complete version is "
                + "\(good.version) (\(m.rowCount) rows, made \(age(m.createdAt)) ago)", ev,
            hint: "restore the pointer: `" + VersionHistory.restoreCommand(c, version: good.version)
                + "`; the next compaction then applies the runs still pending on top of it")
    }

    /// The pointer's manifest and its ancestors, newest first, up to the history depth.
    func loadChain(_ c: String, _ st: inout CollectionState) {
        guard let m = st.manifest else { return }
        st.chain = [m]
        var next = m.parentVersion
        while let v = next {
            if st.chain.count >= max(2, settings.historyDepth) {
                st.chainEnd = "history depth \(settings.historyDepth) reached"
                return
            }
            do {
                let p = try locator.manifest(c, version: v)
                st.chain.append(p)
                next = p.parentVersion
            } catch {
                st.chainEnd = "the manifest of \(v) is gone (collected by gc?) or unreadable"
                return
            }
        }
    }

    /// Every file of the manifest: present with its size (HEAD), and the snapshot downloaded and
    /// its SHA-256 compared; with `deep`, every other file downloaded and hashed as well. Returns
    /// the local snapshot file when it matches.
    func checkFiles(_ c: String, manifest m: SnapshotManifest) -> String? {
        var problems: [String] = []
        var checked: [String] = []
        var ev = VerifyEvidence()
        // A page version's base and patches, or a whole-file version's files: each present with the
        // manifest's size; then the version is materialized, which checks each SHA-256 and the root.
        for f in m.objects(layout: layout) {
            let key = f.key
            do {
                guard let info = try store.head(key) else {
                    problems.append("\(f.name) is missing (\(key))")
                    continue
                }
                if info.size != f.size {
                    problems.append("\(f.name) is \(info.size) bytes; the manifest says \(f.size) (\(key))")
                } else if let sha = info.sha256, sha != f.sha256 {
                    problems.append(
                        "\(f.name): the store records SHA-256 \(sha); the manifest says \(f.sha256) (\(key))")
                } else {
                    checked.append("\(f.name) (\(Verifier.mib(f.size)))")
                }
            } catch {
                addFailure(VerifyCheck.files, c, "cannot HEAD \(key)", error)
                return nil
            }
        }
        if !m.isPageVersion, m.file(SnapshotFormat.fileName) == nil {
            problems.append("the manifest lists no \(SnapshotFormat.fileName)")
        }
        var snapshotPath: String? = nil
        if problems.isEmpty {
            do {
                snapshotPath = try locator.fetch(c, version: m.version, into: workDirectory).path
                if settings.deep {
                    for f in m.files where f.name != SnapshotFormat.fileName {
                        let key = layout.versionFileKey(collection: c, version: m.version, file: f.name)
                        let path = workDirectory + "/deep-\(UUID().uuidString)"
                        defer { try? FileManager.default.removeItem(atPath: path) }
                        try store.get(key, toFile: path)
                        let (sha, size) = try SHA256.hexOfFile(atPath: path)
                        if sha != f.sha256 || size != f.size {
                            problems.append(
                                "\(f.name) is \(size) bytes with SHA-256 \(sha); the manifest says \(f.size) bytes, \(f.sha256) "
                                    + "(\(key))"
                            )
                        }
                    }
                }
            } catch let e as StrataError where e.kind == .corrupt {
                problems.append("\(e.field ?? SnapshotFormat.fileName): checksum mismatch: \(e.message) (\(e.object))")
            } catch let e as StrataError where e.kind == .notFound {
                problems.append("\(e.field ?? "an object") is missing: \(e.message) (\(e.object))")
            } catch let e as StoreError where e.kind == .integrity {
                problems.append("\(SnapshotFormat.fileName): checksum mismatch: \(e.message) (\(e.key ?? "?"))")
            } catch {
                addFailure(VerifyCheck.files, c, "cannot download the snapshot of version \(m.version)", error)
                return nil
            }
        }
        ev["version"] = .string(m.version)
        ev["checked"] = .string(
            settings.deep
                ? "presence and size (HEAD), every file downloaded and hashed"
                : "presence and size (HEAD), the snapshot downloaded and hashed")
        if problems.isEmpty {
            add(
                VerifyCheck.files, c, .passed,
                (m.isPageVersion
                    ? "base and \((m.patches ?? []).count) patch(es) present with the manifest's sizes and SHA-256, "
                        + "materialized to its page root: "
                    : "\(m.files.count) file\(m.files.count == 1 ? "" : "s") present with the manifest's sizes and SHA-256: ")
                    + checked.joined(separator: ", "), ev)
            return snapshotPath
        }
        if problems.count > 1 { ev["problems"] = listed(problems) }
        let parent = m.parentVersion.flatMap { p in (try? locator.manifest(c, version: p)).map { _ in p } }
        if let parent { ev["parent_version"] = .string(parent) }
        add(
            VerifyCheck.files, c, .failed,
            "version \(m.version) is damaged: " + problems.joined(separator: "; "), ev,
            hint: (parent.map {
                "roll back to the version before it and apply its runs again: `"
                    + VersionHistory.restoreCommand(c, version: $0, reason: "version \(m.version) is damaged")
                    + " --requeue`"
            }
                ?? "no earlier version is left; produce the rows again and compact")
                + "; find who writes to \(layout.versionsPrefix(c)) besides the compactor")
        if let snapshotPath { try? FileManager.default.removeItem(atPath: snapshotPath) }
        return nil
    }
}
