import Foundation
import Logging
import StrataCore
import StrataCrypto
import StrataEmbed

#if canImport(Glibc)
    import Glibc
#endif

extension RunProducer {
    /// The default checkpoint file of a directory (hidden, so it is never taken for an input).
    public static let checkpointFileName = ".strata-produce-checkpoint.json"

    /// Publishes every job of `directory`, one at a time in name order, recording progress in a
    /// checkpoint file (default `directory/.strata-produce-checkpoint.json`). Run it again after
    /// an interruption: published jobs are skipped, the interrupted one is retried with the same
    /// run id, and no job is published twice.
    ///
    /// A job that fails (a bad line, labels, a rejected or malformed embedding, a dimension) is
    /// marked `failed` with its reason and the queue goes on with the next job; failed jobs are
    /// set aside until `retryFailed`, or until their files change (when nothing of them was
    /// uploaded). A store failure or an embedding server that stays unavailable stops the pass
    /// (every later job would fail the same way); the job stays planned and is resumed next time.
    /// A published job whose files changed is reported failed and left as published.
    /// `maxJobs` limits the jobs tried (published or failed) in this pass.
    ///
    /// Published jobs are not hashed again: each input's size, mtime and inode are kept with its
    /// hash, and only a changed stamp is hashed.
    ///
    /// Write jobs into the directory atomically (write elsewhere, then rename in): a job is read
    /// as it is when its turn comes.
    public func produceDirectory(
        _ directory: String, layout dirLayout: DirectoryLayout,
        labels: [String: String] = [:], checkpointPath: String? = nil, retryFailed: Bool = false,
        maxJobs: Int? = nil
    ) throws
        -> DirectoryReport
    {
        let checkpointPath = checkpointPath ?? directory + "/" + RunProducer.checkpointFileName
        let lock = try FileLock(checkpointPath + ".lock", what: "directory \(directory)")
        defer { withExtendedLifetime(lock) {} }
        var checkpoint = try Checkpoint.load(checkpointPath, store: store.location, prefix: layout.prefix)
        let jobs = try listJobs(directory, dirLayout)
        logger.info("producing a directory", metadata: ["directory": "\(directory)", "jobs": "\(jobs.count)"])
        let spoolRoot = settings.spoolDirectory ?? directory + "/.strata-embed-spool"

        var report = DirectoryReport(jobs: [], checkpointPath: checkpointPath)
        var tried = 0
        for job in jobs {
            var entry = checkpoint.jobs[job.name]
            func setAside() {
                report.jobs.append(.init(name: job.name, runs: [], skipped: true, failed: entry?.reason))
            }
            if let limit = maxJobs, tried >= limit, entry?.state != .published {
                report.stoppedAtMaxJobs = true
                break
            }
            func fail(
                _ reason: String, beforeUpload: Bool, fingerprint: String? = nil,
                stamps: [String: Checkpoint.FileStamp]? = nil
            ) throws {
                var e =
                    entry
                    ?? Checkpoint.Job(
                        runId: Identifiers.make(), fingerprint: "", state: .failed, runIds: [], updatedAt: "")
                if let fingerprint { e.fingerprint = fingerprint }
                if let stamps { e.files = stamps }
                e.state = .failed
                e.reason = reason
                e.failedBeforeUpload = beforeUpload
                e.updatedAt = RunRecord.timestamp(Date())
                entry = e
                checkpoint.jobs[job.name] = e
                try checkpoint.save(checkpointPath)
                logger.error("job failed", metadata: ["job": "\(job.name)", "reason": "\(reason)"])
                report.jobs.append(.init(name: job.name, runs: [], skipped: false, failed: reason))
            }
            if let problem = job.problem {
                if entry?.state == .failed && !retryFailed {
                    setAside()
                    continue
                }
                tried += 1
                try fail(problem.description, beforeUpload: true)
                continue
            }
            var jobLabels = labels
            let stamps: [String: Checkpoint.FileStamp]
            let fingerprint: String
            do {
                for (k, v) in try readLabels(job.labelsPath) { jobLabels[k] = v }
                try check(inputs: job.inputs, labels: jobLabels)
                stamps = try fileStamps(job.inputs, known: entry?.files)
                fingerprint = self.fingerprint(job.inputs, stamps: stamps, labels: jobLabels)
            } catch let e as StrataError {
                if entry?.state == .published {
                    report.jobs.append(.init(name: job.name, runs: [], skipped: true, failed: e.description))
                    continue
                }
                if entry?.state == .failed && !retryFailed {
                    setAside()
                    continue
                }
                tried += 1
                try fail(e.description, beforeUpload: true)
                continue
            }
            if let e = entry, e.state == .failed, !retryFailed,
                e.fingerprint == fingerprint || e.failedBeforeUpload != true
            {
                // Set aside until --retry-failed, or until its files are fixed.
                setAside()
                continue
            }
            if let e = entry, e.fingerprint != fingerprint, !e.fingerprint.isEmpty {
                if e.state == .published || (e.state == .planned) || e.failedBeforeUpload != true {
                    let reason = StrataError(
                        .refused, object: "\(directory)/\(job.name)",
                        message:
                            "changed after it was \(e.state == .published ? "published" : "planned") as run \(e.runId)",
                        fix: "a published job is never changed: put new data in a new job; if run \(e.runId) was "
                            + "never published (snapctl verify), remove the job's entry from \(checkpointPath)"
                    ).description
                    if e.state == .published {
                        report.jobs.append(.init(name: job.name, runs: [], skipped: true, failed: reason))
                    } else {
                        tried += 1
                        try fail(reason, beforeUpload: false)
                    }
                    continue
                }
                // Failed before anything was uploaded, and changed since (fixed): plan it again.
                entry!.fingerprint = fingerprint
            }
            if let e = entry, e.state == .published {
                logger.debug("already published", metadata: ["job": "\(job.name)", "run": "\(e.runId)"])
                if e.files != stamps {
                    // Stamps changed but not the content (touched, copied): remember the new ones.
                    entry!.files = stamps
                    checkpoint.jobs[job.name] = entry
                    try checkpoint.save(checkpointPath)
                }
                report.jobs.append(.init(name: job.name, runs: [], skipped: true))
                continue
            }
            tried += 1
            if entry == nil || entry!.fingerprint.isEmpty {
                // Persist the run id before anything is uploaded, so a retry reuses it.
                entry = Checkpoint.Job(
                    runId: entry?.runId ?? Identifiers.make(), fingerprint: fingerprint, state: .planned, runIds: [],
                    updatedAt: RunRecord.timestamp(Date()))
            }
            entry!.state = .planned
            entry!.reason = nil
            entry!.failedBeforeUpload = nil
            entry!.files = stamps
            checkpoint.jobs[job.name] = entry
            try checkpoint.save(checkpointPath)
            let statsBefore = embeddingStats
            let runs: [PublishedRun]
            do {
                runs = try produceJob(inputs: job.inputs, labels: jobLabels, runId: entry!.runId, spoolRoot: spoolRoot)
            } catch let f as JobFailure {
                if RunProducer.stopsTheQueue(f.error) {
                    // The job stays planned: the next pass resumes it under the same run id.
                    throw f.error
                }
                try fail(
                    String(describing: f.error), beforeUpload: f.beforeUpload, fingerprint: fingerprint, stamps: stamps)
                report.jobs[report.jobs.count - 1].embedding = embeddingStats.map {
                    $0.since(statsBefore ?? EmbeddingStats())
                }
                continue
            }
            entry!.state = .published
            entry!.runIds = runs.map(\.runId)
            entry!.updatedAt = RunRecord.timestamp(Date())
            checkpoint.jobs[job.name] = entry
            try checkpoint.save(checkpointPath)
            report.jobs.append(
                .init(
                    name: job.name, runs: runs, skipped: false,
                    embedding: embeddingStats.map { $0.since(statsBefore ?? EmbeddingStats()) }))
        }
        return report
    }

    /// Failures every later job would meet too: the store, or an embedding server that stays
    /// unavailable. Anything else is the job's own (its input, labels, texts, dimension).
    static func stopsTheQueue(_ error: Error) -> Bool {
        if error is StoreError { return true }
        if let e = error as? EmbeddingError { return e.kind == .unavailable || e.kind == .configuration }
        if let e = error as? StrataError { return e.kind == .io || e.kind == .conflict && e.object.hasPrefix("runs/") }
        return false
    }

    /// Every job of `directory` and its state in the checkpoint, without touching the store.
    public static func directoryStatus(
        _ directory: String, layout dirLayout: DirectoryLayout, checkpointPath: String? = nil
    ) throws -> DirectoryStatus {
        let checkpointPath = checkpointPath ?? directory + "/" + RunProducer.checkpointFileName
        let data = FileManager.default.contents(atPath: checkpointPath)
        var jobsInCheckpoint: [String: Checkpoint.Job] = [:]
        if let data {
            do { jobsInCheckpoint = try JSONDecoder().decode(Checkpoint.self, from: data).jobs } catch {
                throw StrataError(
                    .corrupt, object: checkpointPath, message: "is not a producer checkpoint: \(error)",
                    fix: "restore it from a backup")
            }
        }
        let producer = RunProducer(store: NoStore())
        var names = Set<String>()
        var out: [DirectoryStatus.Job] = []
        for job in try producer.listJobs(directory, dirLayout) {
            names.insert(job.name)
            guard let e = jobsInCheckpoint[job.name] else {
                out.append(.init(name: job.name, state: .pending, reason: job.problem?.description))
                continue
            }
            let state: DirectoryStatus.Job.State =
                switch e.state {
                case .planned: .planned
                case .published: .published
                case .failed: .failed
                }
            out.append(.init(name: job.name, state: state, runId: e.runId, reason: e.reason, updatedAt: e.updatedAt))
        }
        // Jobs recorded but no longer in the directory (moved away after publishing).
        for (name, e) in jobsInCheckpoint.sorted(by: { $0.key < $1.key }) where !names.contains(name) {
            let state: DirectoryStatus.Job.State =
                e.state == .published ? .published : (e.state == .failed ? .failed : .planned)
            out.append(.init(name: name, state: state, runId: e.runId, reason: e.reason, updatedAt: e.updatedAt))
        }
        return DirectoryStatus(jobs: out, checkpointPath: checkpointPath)
    }

    struct Job {
        var name: String
        var inputs: [ProducerInput]
        var labelsPath: String
        /// Why the job cannot be produced as it is laid out (no inputs); nil when it can.
        var problem: StrataError? = nil
    }

    static func isInputName(_ name: String) -> Bool {
        !name.hasPrefix(".") && (name.hasSuffix(".ndjson") || name.hasSuffix(".jsonl"))
    }

    static func stem(_ name: String) -> String {
        name.hasSuffix(".ndjson") ? String(name.dropLast(7)) : String(name.dropLast(6))
    }

    func listJobs(_ directory: String, _ dirLayout: DirectoryLayout) throws -> [Job] {
        func entries(_ dir: String) throws -> [String] {
            do {
                return try FileManager.default.contentsOfDirectory(atPath: dir)
                    .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            } catch {
                throw StrataError(
                    .notFound, object: dir, message: "cannot list the directory: \(error.localizedDescription)",
                    fix: "check the path")
            }
        }
        func kind(_ path: String) -> FileAttributeType? {
            (try? FileManager.default.attributesOfItem(atPath: path))?[.type] as? FileAttributeType
        }
        switch dirLayout {
        case .files(let collection):
            return try entries(directory).filter {
                RunProducer.isInputName($0) && kind(directory + "/" + $0) == .typeRegular
            }
            .map { name in
                Job(
                    name: name, inputs: [ProducerInput(collection: collection, path: directory + "/" + name)],
                    labelsPath: directory + "/" + RunProducer.stem(name) + ".labels.json")
            }
        case .jobDirectories:
            var jobs: [Job] = []
            for name in try entries(directory)
            where !name.hasPrefix(".") && kind(directory + "/" + name) == .typeDirectory {
                let dir = directory + "/" + name
                let inputs = try entries(dir).filter {
                    RunProducer.isInputName($0) && kind(dir + "/" + $0) == .typeRegular
                }
                .map { ProducerInput(collection: RunProducer.stem($0), path: dir + "/" + $0) }
                var job = Job(name: name, inputs: inputs, labelsPath: dir + "/labels.json")
                if inputs.isEmpty {
                    job.problem = StrataError(
                        .invalidInput, object: dir, message: "holds no <collection>.ndjson file",
                        fix: "put e.g. lines.ndjson and words.ndjson in each job directory")
                }
                jobs.append(job)
            }
            return jobs
        }
    }

    /// A labels file: a flat JSON object of string values; none when the file does not exist.
    func readLabels(_ path: String) throws -> [String: String] {
        guard FileManager.default.fileExists(atPath: path) else { return [:] }
        guard let data = FileManager.default.contents(atPath: path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else {
            throw StrataError(
                .invalidInput, object: path, message: "is not a JSON object",
                fix: "write labels as {\"image_id\": \"...\"}")
        }
        var labels: [String: String] = [:]
        for (k, v) in object {
            guard let s = v as? String else {
                throw StrataError(
                    .invalidInput, object: path, field: k, message: "is not a string",
                    fix: "label values are strings; quote numbers")
            }
            labels[k] = s
        }
        return labels
    }

    /// Each input's stamp (size, mtime, inode) and hash; the hash is reused from `known` when the
    /// stamp is unchanged, so a published job is not read again on every pass.
    func fileStamps(_ inputs: [ProducerInput], known: [String: Checkpoint.FileStamp]?) throws
        -> [String: Checkpoint.FileStamp]
    {
        var out: [String: Checkpoint.FileStamp] = [:]
        for input in inputs {
            var st = stat()
            guard stat(input.path, &st) == 0 else {
                throw StrataError(.io, object: input.path, message: "cannot read: \(String(cString: strerror(errno)))")
            }
            let size = Int64(st.st_size)
            let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
            let inode = UInt64(st.st_ino)
            if let k = known?[input.path], k.size == size, k.mtimeNs == mtime, k.inode == inode {
                out[input.path] = k
                continue
            }
            let hash: String
            do { hash = try SHA256.hexOfFile(atPath: input.path).hex } catch {
                throw StrataError(.io, object: input.path, message: "cannot read: \(error.localizedDescription)")
            }
            out[input.path] = Checkpoint.FileStamp(size: size, mtimeNs: mtime, inode: inode, sha256: hash)
        }
        return out
    }

    /// SHA-256 over each input (collection, dimension, file hash) and the labels.
    func fingerprint(_ inputs: [ProducerInput], stamps: [String: Checkpoint.FileStamp], labels: [String: String])
        -> String
    {
        var text = ""
        for input in inputs.sorted(by: { $0.collection < $1.collection }) {
            let hash = stamps[input.path]?.sha256 ?? "-"
            text += "input\t\(input.collection)\t\(input.dimension.map(String.init) ?? "-")\t\(hash)\n"
        }
        for (k, v) in labels.sorted(by: { $0.key < $1.key }) {
            text += "label\t\(escapeField(k))\t\(escapeField(v))\n"
        }
        return SHA256.hex(text)
    }
}

/// The store of `directoryStatus`, which reads only local files.
private final class NoStore: ObjectStore, Sendable {
    var location: String { "none" }
    func fail() -> StoreError { StoreError(.configuration, operation: "status", message: "no store is used") }
    func head(_ key: String) throws -> ObjectInfo? { throw fail() }
    func get(_ key: String, toFile path: String, range: Range<Int64>?) throws -> ObjectInfo { throw fail() }
    func getData(_ key: String) throws -> (data: Data, info: ObjectInfo) { throw fail() }
    func put(_ key: String, body: PutBody, condition: WriteCondition, options: PutOptions) throws -> ObjectInfo {
        throw fail()
    }
    func delete(_ key: String) throws { throw fail() }
    func delete(keys: [String]) throws -> [DeleteFailure] { throw fail() }
    func listPage(prefix: String, delimiter: String?, continuation: String?, maxKeys: Int) throws -> ListPage {
        throw fail()
    }
}

/// Escapes tabs and newlines so a fingerprint line cannot be forged by a label.
private func escapeField(_ s: String) -> String {
    s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\t", with: "\\t")
        .replacingOccurrences(of: "\n", with: "\\n")
}
